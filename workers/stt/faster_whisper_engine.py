"""Speech-to-text with faster-whisper (CTranslate2 Whisper), on this machine.

``model`` is a CTranslate2 model directory (what `parley models pull` writes) or a
faster-whisper size / Hugging Face id ("base.en", "Systran/faster-whisper-small").
A directory is loaded with local files only: it must hold ``tokenizer.json`` too, or
faster-whisper would fetch one from the network.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import faster_whisper
import numpy as np
import numpy.typing as npt

from parley.audio import AudioConverter
from parley.errors import ParleyError
from workers.engines import SttRequest, Transcript
from workers.errors import EngineError, InvalidRequest, ModelNotFound
from workers.threads import iterate_in_thread

log = logging.getLogger(__name__)

WHISPER_RATE = 16000
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")


def looks_like_path(model: str) -> bool:
    """True for a filesystem path; False for a size name or an "org/name" hub id."""
    if model.startswith(("/", "./", "../", "~", "\\")) or Path(model).expanduser().exists():
        return True
    return len(Path(model).parts) > 2 or Path(model).drive != ""


def check_model_dir(path: Path) -> None:
    """Raise ModelNotFound unless ``path`` is a complete CTranslate2 Whisper directory."""
    hint = "run `parley models pull` to fetch the configured models"
    if not path.is_dir():
        raise ModelNotFound(f"faster-whisper model directory {path} does not exist: {hint}")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ModelNotFound(
            f"faster-whisper model directory {path} lacks {', '.join(missing)}: {hint}"
        )


class FasterWhisperEngine:
    """Collects a turn's audio, transcribes it in a thread, yields the text.

    Each decoded segment yields a non-final Transcript holding the text so far; the last
    Transcript (``final=True``) holds the whole text, the language and the audio length.
    """

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        compute_type: str = "default",
        beam_size: int = 1,
        cpu_threads: int = 0,
        download_root: str | None = None,
        vad_filter: bool = False,
    ) -> None:
        self.model = model
        self.device = device
        self.compute_type = compute_type
        self.beam_size = beam_size
        self.cpu_threads = cpu_threads
        self.download_root = download_root
        self.vad_filter = vad_filter
        self._whisper: faster_whisper.WhisperModel | None = None

    def load(self) -> None:
        local = looks_like_path(self.model)
        source = self.model
        if local:
            path = Path(self.model).expanduser()
            check_model_dir(path)
            source = str(path)
        try:
            self._whisper = faster_whisper.WhisperModel(
                source,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=self.cpu_threads,
                download_root=self.download_root,
                local_files_only=local,
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelNotFound(f"cannot load faster-whisper model {self.model!r}: {exc}") from exc
        log.info("faster-whisper %s loaded on %s", self.model, self.device)

    @property
    def whisper(self) -> faster_whisper.WhisperModel:
        if self._whisper is None:
            raise EngineError("FasterWhisperEngine.run() before load()")
        return self._whisper

    async def run(
        self, request: SttRequest, audio: AsyncIterator[bytes]
    ) -> AsyncIterator[Transcript]:
        try:
            converter = AudioConverter(request.sample_rate, 1, WHISPER_RATE)
        except ParleyError as exc:
            raise InvalidRequest(str(exc)) from exc
        parts = []
        async for chunk in audio:
            parts.append(converter.convert(chunk))
        parts.append(converter.flush())
        samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        seconds = len(samples) / WHISPER_RATE
        if len(samples) == 0:
            yield Transcript("", final=True, language=request.language or "", audio_seconds=0.0)
            return

        info: dict[str, Any] = {}
        texts: list[str] = []
        produce = self._transcriber(samples, request, info)
        async with aclosing(iterate_in_thread(produce)) as segments:
            async for text in segments:
                texts.append(text)
                yield Transcript(_join(texts), final=False, language=info.get("language", ""))
        language = info.get("language") or request.language or ""
        yield Transcript(_join(texts), final=True, language=language, audio_seconds=seconds)

    def _transcriber(
        self, samples: npt.NDArray[np.float32], request: SttRequest, info: dict[str, Any]
    ) -> Callable[[threading.Event], Iterator[str]]:
        whisper = self.whisper

        def produce(stop: threading.Event) -> Iterator[str]:
            segments, details = whisper.transcribe(
                samples,
                language=request.language or None,
                initial_prompt=request.prompt or None,
                beam_size=self.beam_size,
                vad_filter=self.vad_filter,
                condition_on_previous_text=False,
            )
            info["language"] = details.language
            for segment in segments:  # decoding happens lazily, segment by segment
                if stop.is_set():
                    return
                yield segment.text

        return produce

    def close(self) -> None:
        self._whisper = None


def _join(texts: list[str]) -> str:
    return "".join(texts).strip()
