"""Audio classification (e.g. speech emotion) with an ONNX model run by onnxruntime.

The model has the signature of a Hugging Face audio-classification export (wav2vec2,
HuBERT...): ``input_values`` float32 [batch, samples] at the model's rate (16 kHz)
-> ``logits`` [batch, labels]. Labels come from ``id2label`` in the ``config.json``
beside the model (or the ``labels`` option); the waveform is normalised to zero mean
and unit variance when ``preprocessor_config.json`` says ``do_normalize`` (the
``normalize`` option overrides). Scores are the softmax of the logits.

``parley models pull --only analyse`` fetches a public English speech-emotion model
in this format (see docs/configuration.md); the tests build a tiny random-weight one
with the same signature (workers/tiny_emotion.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from workers.errors import EngineError, InvalidRequest, ModelNotFound
from workers.kinds import AnalyseRequest, Label

log = logging.getLogger(__name__)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class OnnxAudioClassifier:
    """``model``: the .onnx file; ``labels``: comma-separated names in logit order
    (default: ``id2label`` of ``config``, default config.json beside the model);
    ``normalize``: zero-mean unit-variance input (default: the preprocessor config's
    ``do_normalize``, else true); ``sample_rate``: the model's (default: the
    preprocessor config's, else 16000); ``max_seconds``: longer audio is cut to its
    last ``max_seconds``; ``top_k``: labels returned (0: all); ``threads``."""

    def __init__(
        self,
        model: str,
        labels: str = "",
        config: str = "",
        normalize: bool | None = None,
        sample_rate: int = 0,
        max_seconds: float = 20.0,
        top_k: int = 0,
        threads: int = 1,
    ) -> None:
        self.model = model
        self._labels = [x.strip() for x in labels.split(",") if x.strip()]
        self.config = config
        self.normalize = normalize
        self.sample_rate = int(sample_rate)
        self.max_seconds = float(max_seconds)
        self.top_k = int(top_k)
        self.threads = int(threads)
        self.labels: list[str] = []
        self._session: onnxruntime.InferenceSession | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        path = Path(self.model).expanduser()
        if not path.is_file():
            raise ModelNotFound(
                f"ONNX model {path} does not exist: run `parley models pull --only analyse`"
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelNotFound(f"cannot load ONNX model {path}: {exc}") from exc
        inputs = [i.name for i in self._session.get_inputs()]
        if "input_values" not in inputs:
            raise ModelNotFound(f"{path} takes {inputs}, not input_values: not an audio classifier")
        config = _read_json(Path(self.config) if self.config else path.with_name("config.json"))
        preprocessor = _read_json(path.with_name("preprocessor_config.json"))
        id2label = config.get("id2label") or {}
        self.labels = self._labels or [
            str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k))
        ]
        if self.normalize is None:
            self.normalize = bool(preprocessor.get("do_normalize", True))
        self.sample_rate = self.sample_rate or int(preprocessor.get("sampling_rate", 16000))
        outputs = self._session.get_outputs()[0].shape
        count = outputs[-1] if outputs and isinstance(outputs[-1], int) else None
        if not self.labels:
            raise ModelNotFound(f"no labels for {path}: give the labels option or a config.json")
        if count is not None and count != len(self.labels):
            raise ModelNotFound(
                f"{path} gives {count} scores but {len(self.labels)} labels are known"
            )
        log.info("audio classifier %s loaded: %s", path.name, ", ".join(self.labels))

    def _classify(self, samples: np.ndarray) -> list[Label]:
        if self._session is None:
            raise EngineError("OnnxAudioClassifier.run() before load()")
        if self.normalize:
            samples = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
        with self._lock:
            (logits,) = self._session.run(["logits"], {"input_values": samples[None, :]})
        row = np.asarray(logits, dtype=np.float64)[0]
        scores = np.exp(row - row.max())
        scores /= scores.sum()
        order = np.argsort(-scores)
        labels = [Label(self.labels[i], float(scores[i])) for i in order]
        return labels[: self.top_k] if self.top_k > 0 else labels

    async def run(self, request: AnalyseRequest) -> list[Label]:
        if request.audio is None:
            raise InvalidRequest(f"this classifier takes audio, not {request.input}")
        if request.sample_rate != self.sample_rate:
            raise InvalidRequest(
                f"audio at {request.sample_rate} Hz; this model takes {self.sample_rate} Hz"
            )
        samples = np.frombuffer(request.audio, dtype="<i2").astype(np.float32) / 32768.0
        samples = samples[-int(self.max_seconds * self.sample_rate) :]
        if samples.size < self.sample_rate // 10:
            raise InvalidRequest(f"{samples.size} samples: too little audio to classify")
        return await asyncio.to_thread(self._classify, samples)

    def close(self) -> None:
        self._session = None
