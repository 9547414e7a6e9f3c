"""Silero VAD run with onnxruntime (no torch), one small state object per stream.

The model scores one window at a time: 512 new samples at 16 kHz (256 at 8 kHz) with
the previous window's last 64 (32) samples in front, plus a recurrent state. Several
streams' windows can share one session call through the batch dimension; each
stream keeps its own :class:`VadStream`.

Cost on one thread of a 2-core x86 VM, in a tight loop: 0.2-0.3 ms per call at batch 1,
0.06-0.11 ms per window at batch 8 and 0.05-0.08 at 32 and more. Called once per 32 ms,
as a live stream does, each call finds its weights out of the caches: 0.3-0.9 ms per
window at batch 1. So a server scores all its streams' windows together
(server/vad_scheduler.py); figures in docs/BENCHMARKS.md (`parley bench load`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from parley.errors import ParleyError

_WINDOW = {16000: 512, 8000: 256}
_CONTEXT = {16000: 64, 8000: 32}
_INSTALL = "pip install --no-deps silero-vad"


class VadModelError(ParleyError):
    """The Silero VAD model (or onnxruntime) is missing or cannot be loaded."""


def default_model_path() -> Path:
    """silero_vad.onnx inside the installed silero-vad package (not imported: it needs torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadModelError(f"the Silero VAD model is missing: {_INSTALL} (its ONNX file is used)")
    path = Path(spec.submodule_search_locations[0]) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise VadModelError(f"{path} not found; reinstall with: {_INSTALL}")
    return path


@dataclass
class VadStream:
    """The recurrent state and audio context of one stream."""

    context: npt.NDArray[np.float32]  # last samples of the previous window
    state: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((2, 128), dtype=np.float32)
    )


class VadModel(Protocol):
    """What a turn detector needs from a VAD (SileroVad; fakes in tests)."""

    sample_rate: int
    window: int

    def new_stream(self) -> VadStream: ...

    def probability(self, stream: VadStream, window: npt.ArrayLike) -> float: ...


class SileroVad:
    """A loaded Silero VAD model; thread-safe, shared by every stream of a server."""

    def __init__(self, model_path: str | Path | None = None, sample_rate: int = 16000) -> None:
        if sample_rate not in _WINDOW:
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        try:
            import onnxruntime
        except ImportError:
            raise VadModelError("the VAD needs onnxruntime: pip install 'parley[server]'") from None
        path = Path(model_path) if model_path else default_model_path()
        if not path.is_file():
            raise VadModelError(f"VAD model {path} not found")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise VadModelError(f"cannot load VAD model {path}: {exc}") from exc
        self.model_path = path
        self.sample_rate = sample_rate
        self.window = _WINDOW[sample_rate]
        self.context = _CONTEXT[sample_rate]
        self._sr = np.array(sample_rate, dtype=np.int64)

    def new_stream(self) -> VadStream:
        return VadStream(context=np.zeros(self.context, dtype=np.float32))

    def probability(self, stream: VadStream, window: npt.ArrayLike) -> float:
        """Speech probability of one stream's next window (updates its state)."""
        x = np.asarray(window, dtype=np.float32).reshape(-1)
        self._check(x.shape[0])
        batch = np.concatenate((stream.context, x))[None, :]
        prob, state = self._session.run(
            None, {"input": batch, "state": stream.state[:, None, :], "sr": self._sr}
        )
        stream.state = state[:, 0, :]
        stream.context = x[-self.context :].copy()
        return float(prob[0, 0])

    def probabilities(
        self, streams: Sequence[VadStream], windows: npt.ArrayLike
    ) -> npt.NDArray[np.float32]:
        """Score one window for each of several streams in one call: windows [B, window]."""
        x = np.asarray(windows, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != len(streams):
            raise ValueError(f"expected windows of shape ({len(streams)}, {self.window})")
        self._check(x.shape[1])
        if not streams:
            return np.zeros(0, dtype=np.float32)
        # np.array of a list, not np.stack: it is several times faster for small rows.
        batch = np.empty((len(streams), self.context + self.window), dtype=np.float32)
        batch[:, : self.context] = np.array([s.context for s in streams])
        batch[:, self.context :] = x
        states = np.array([s.state for s in streams]).transpose(1, 0, 2)  # [2, B, 128]
        probs, new_states = self._session.run(
            None, {"input": batch, "state": np.ascontiguousarray(states), "sr": self._sr}
        )
        contexts = x[:, -self.context :].copy()  # ours: the caller may reuse ``windows``
        for i, stream in enumerate(streams):  # views of arrays nobody else holds
            stream.state = new_states[:, i, :]
            stream.context = contexts[i]
        return np.asarray(probs[:, 0], dtype=np.float32)

    def _check(self, samples: int) -> None:
        if samples != self.window:
            raise ValueError(
                f"a VAD window is {self.window} samples at {self.sample_rate} Hz, not {samples}"
            )
