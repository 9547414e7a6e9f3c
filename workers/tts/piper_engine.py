"""Text-to-speech with Piper (piper-tts 1.8: ONNX voices, espeak-ng phonemes).

``model`` is a voice file ``NAME.onnx``; its config is ``NAME.onnx.json`` unless
``config`` names another file. Each incoming text is synthesised in a thread as soon
as it arrives; piper yields one audio chunk per sentence of that text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path

from piper import PiperVoice, SynthesisConfig

from workers.engines import Speech, TtsRequest
from workers.errors import EngineError, InvalidRequest, ModelNotFound
from workers.threads import iterate_in_thread

log = logging.getLogger(__name__)

_HINT = "run `parley models pull` to fetch the configured models"


class PiperEngine:
    """Speaks each text in order; the last chunk of each text has ``sentence_end``.

    ``Speech.sentence`` is the index of the input text. A text with nothing to say
    (only punctuation, say) still ends with one empty ``sentence_end`` chunk.
    ``request.speed`` maps to Piper's ``length_scale = 1 / speed``; ``request.voice``
    picks a speaker of a multi-speaker voice (a name from its speaker map or an id).
    """

    def __init__(
        self,
        model: str,
        config: str | None = None,
        speaker: int | None = None,
        use_cuda: bool = False,
    ) -> None:
        self.model = model
        self.config = config
        self.speaker = speaker
        self.use_cuda = use_cuda
        self._voice: PiperVoice | None = None

    def load(self) -> None:
        model_path = Path(self.model).expanduser()
        config_path = Path(self.config).expanduser() if self.config else None
        config_path = config_path or model_path.with_name(model_path.name + ".json")
        for path, what in ((model_path, "voice model"), (config_path, "voice config")):
            if not path.is_file():
                raise ModelNotFound(f"piper {what} {path} does not exist: {_HINT}")
        try:
            self._voice = PiperVoice.load(model_path, config_path, use_cuda=self.use_cuda)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelNotFound(f"cannot load piper voice {model_path}: {exc}") from exc
        log.info("piper voice %s loaded (%d Hz)", model_path.name, self.sample_rate)

    @property
    def voice(self) -> PiperVoice:
        if self._voice is None:
            raise EngineError("PiperEngine.run() before load()")
        return self._voice

    @property
    def sample_rate(self) -> int:
        return int(self.voice.config.sample_rate)

    def synthesis_config(self, request: TtsRequest) -> SynthesisConfig:
        if request.speed is not None and request.speed <= 0:
            raise InvalidRequest(f"speed must be positive, got {request.speed}")
        length_scale = 1.0 / request.speed if request.speed else None
        return SynthesisConfig(speaker_id=self._speaker_id(request), length_scale=length_scale)

    def _speaker_id(self, request: TtsRequest) -> int | None:
        speakers = self.voice.config.speaker_id_map
        if self.voice.config.num_speakers <= 1 or not request.voice:
            return self.speaker
        if request.voice in speakers:
            return int(speakers[request.voice])
        if request.voice.isdigit() and int(request.voice) < self.voice.config.num_speakers:
            return int(request.voice)
        raise InvalidRequest(
            f"unknown speaker {request.voice!r}; this voice has {', '.join(sorted(speakers))}"
        )

    async def run(self, request: TtsRequest, text: AsyncIterator[str]) -> AsyncIterator[Speech]:
        voice, syn_config, rate = self.voice, self.synthesis_config(request), self.sample_rate
        index = 0
        async for sentence in text:

            def produce(stop: threading.Event, sentence: str = sentence) -> Iterator[bytes]:
                for chunk in voice.synthesize(sentence, syn_config=syn_config):
                    if stop.is_set():
                        return
                    yield chunk.audio_int16_bytes

            pending: bytes | None = None
            async with aclosing(iterate_in_thread(produce)) as audio:
                async for pcm in audio:
                    if pending is not None:
                        yield Speech(pending, rate, index)
                    pending = pcm
            yield Speech(pending or b"", rate, index, sentence_end=True)
            index += 1

    def close(self) -> None:
        self._voice = None
