"""Smart Turn v3.2: is the user's utterance complete? An end-of-turn model on onnxruntime.

The model (``smart-turn-v3.2-cpu.onnx``, 8.7 MB, BSD-2-Clause, by Daily for pipecat;
hub repository ``pipecat-ai/smart-turn-v3``) reads the Whisper log-mel spectrogram of
the last 8 s of the turn at 16 kHz and answers the probability that the speaker has
finished (a sigmoid output, 0..1). It hears intonation and the words' rhythm, so "I'd
like to book a table for" ... is incomplete however long the pause.

Input, as the model's own inference code prepares it: the turn's audio (float32 mono,
16 kHz), its last 8 s kept, or zeros put in front up to 8 s (128000 samples); scaled
to zero mean and unit variance; then the Whisper log-mel spectrogram (80 mel bands,
25 ms windows every 10 ms: 800 frames), computed with faster-whisper's numpy
``FeatureExtractor``. The ONNX input ``input_features`` is float32 [batch, 80, 800];
the output float32 [batch, 1].

Cost on one thread of this 2-core VM: ~20 ms of features and ~50-70 ms of model per
clip (docs/BENCHMARKS.md, ``parley bench endpointing``). :class:`SmartTurn` is
thread-safe and scores a batch in one call; a server shares one, through a
:class:`~server.vad_scheduler.BatchScheduler` on its own thread
(:func:`smart_turn_scheduler`), so many sessions' questions go in one call and the
event loop never waits for the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from parley.config import SMART_TURN_FILE, TURN_MODEL_FIX, Config
from parley.errors import ParleyError
from server.vad_scheduler import BatchScheduler

Float32Array = npt.NDArray[np.float32]

MODEL_FILE = SMART_TURN_FILE
SAMPLE_RATE = 16000
CLIP_SAMPLES = 8 * SAMPLE_RATE  # the model hears the last 8 s
N_MELS, N_FRAMES = 80, 800  # input_features [batch, 80, 800]
INPUT_NAME = "input_features"
THREAD_NAME = "parley-turn"  # the scoring thread's name in /proc
_NORM_EPS = 1e-7  # variance floor of the waveform normalisation


class SmartTurnError(ParleyError):
    """The Smart Turn model (or what it needs) is missing, or a file is not that model:
    ``problem``, then ``fix`` (what to do, where there is one) after a colon."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(f"{problem}: {fix}" if fix else problem)
        self.problem, self.fix = problem, fix


def model_paths(config: Config) -> list[Path]:
    """The model files the pipelines with strategy smart_turn need (one per distinct path)."""
    return sorted(
        {
            config.turn_model_path(config.turn_for(name))
            for name in config.pipelines
            if config.turn_for(name).strategy == "smart_turn"
        }
    )


def check_models(config: Config) -> None:
    """Load each model :func:`start_schedulers` would, and let it go: SmartTurnError when
    one is missing or wrong. A supervisor runs it once before starting its processes."""
    for path in model_paths(config):
        SmartTurn(path)


def start_schedulers(config: Config) -> dict[Path, BatchScheduler[ClipScorer]]:
    """Load the model(s) the pipelines with strategy smart_turn need (SmartTurnError when
    one is missing or wrong: the server does not start), one running scorer each."""
    schedulers = {path: smart_turn_scheduler(SmartTurn(path)) for path in model_paths(config)}
    for scheduler in schedulers.values():
        scheduler.start()
    return schedulers


def clip(audio: npt.ArrayLike) -> Float32Array:
    """The model's 8 s of audio: the last 128000 samples of ``audio`` (float32 mono,
    16 kHz), zeros in front when it is shorter. Shape [128000]."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if x.size >= CLIP_SAMPLES:
        return x[-CLIP_SAMPLES:].copy()
    out = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    out[CLIP_SAMPLES - x.size :] = x
    return out


class Features:
    """Whisper log-mel features of an 8 s clip: :meth:`__call__` gives [80, 800] float32.

    faster-whisper's ``FeatureExtractor`` (numpy, the same filters and log scaling as
    Whisper's): ``padding=0`` since the clip is exactly 8 s, so the centred STFT gives
    801 frames and it drops the last one. It takes the log ceiling over the whole
    array it is given, so clips go through it one at a time."""

    def __init__(self) -> None:
        try:
            from faster_whisper.feature_extractor import FeatureExtractor
        except ImportError:
            raise SmartTurnError(
                "the smart_turn strategy computes its features with faster-whisper: "
                "pip install 'parley[turn]'"
            ) from None
        self._extractor = FeatureExtractor(
            feature_size=N_MELS, sampling_rate=SAMPLE_RATE, hop_length=160, chunk_length=8
        )

    def __call__(self, audio: npt.ArrayLike) -> Float32Array:
        """``audio``: float32 mono at 16 kHz, any length (its last 8 s are used)."""
        x = clip(audio)
        x = (x - x.mean()) / np.sqrt(x.var() + _NORM_EPS)
        out = np.asarray(self._extractor(x, padding=0), dtype=np.float32)
        if out.shape != (N_MELS, N_FRAMES):  # a faster-whisper that cuts differently
            raise SmartTurnError(
                f"features of shape {out.shape}; Smart Turn v3 reads ({N_MELS}, {N_FRAMES})"
            )
        return out


class SmartTurn:
    """The loaded model; thread-safe, one per server.

    Raises SmartTurnError when the file is missing (naming ``parley models pull``), when
    it is not an ONNX model, or when its input is not ``input_features`` [batch, 80,
    800] (another model given by mistake)."""

    def __init__(self, model_path: str | Path, *, threads: int = 1) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise SmartTurnError(f"the end-of-turn model {path} is missing", TURN_MODEL_FIX)
        try:
            import onnxruntime
        except ImportError:
            raise SmartTurnError(
                "the smart_turn strategy needs onnxruntime: pip install 'parley[server]'"
            ) from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for unreadable files
            raise SmartTurnError(
                f"{path} is not a readable ONNX model ({exc})", TURN_MODEL_FIX
            ) from None
        inputs = self._session.get_inputs()
        shape = list(inputs[0].shape) if len(inputs) == 1 else []
        if (
            len(inputs) != 1
            or inputs[0].name != INPUT_NAME
            or len(shape) != 3
            or shape[1:] != [N_MELS, N_FRAMES]
        ):
            found = ", ".join(f"{i.name} {i.shape}" for i in inputs)
            raise SmartTurnError(
                f"{path} is not a Smart Turn v3 model: its inputs are {found}, expected "
                f"{INPUT_NAME} [batch, {N_MELS}, {N_FRAMES}]",
                TURN_MODEL_FIX,
            )
        self.path = path
        self.features = Features()

    def probability(self, audio: npt.ArrayLike) -> float:
        """The probability (0..1) that the utterance in ``audio`` (float32 mono, 16 kHz,
        the turn up to now; its last 8 s are used) is complete."""
        return float(self.probabilities([audio])[0])

    def probabilities(self, clips: Sequence[npt.ArrayLike]) -> Float32Array:
        """One probability per clip, in one model call; shape [len(clips)]."""
        if not len(clips):
            return np.zeros(0, dtype=np.float32)
        batch = np.stack([self.features(audio) for audio in clips])
        (out,) = self._session.run(None, {INPUT_NAME: batch})
        return np.asarray(out, dtype=np.float32).reshape(len(clips))


class ClipScorer:
    """:class:`SmartTurn` as a :class:`~server.vad_scheduler.BatchModel`: one "window"
    is one 8 s clip ([128000], from :func:`clip`), and a stream has no state."""

    window = CLIP_SAMPLES

    def __init__(self, model: SmartTurn) -> None:
        self.model = model

    def new_stream(self) -> None:
        return None

    def probabilities(self, streams: Sequence[None], windows: Float32Array) -> Float32Array:
        """``windows`` [B, 128000] -> probabilities [B], in one model call."""
        return self.model.probabilities(list(windows))


def smart_turn_scheduler(model: SmartTurn, *, max_batch: int = 16) -> BatchScheduler[ClipScorer]:
    """One scorer per server: every session's questions batched on one thread (a
    round every 4 ms at most, at most ``max_batch`` clips per model call)."""
    return BatchScheduler(
        ClipScorer(model),
        interval_s=0.004,
        max_batch=max_batch,
        max_depth=1,
        thread_name=THREAD_NAME,
    )
