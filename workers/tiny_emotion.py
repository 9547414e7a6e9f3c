"""Write a tiny random-weight speech-emotion classifier with the signature of a
Hugging Face wav2vec2 audio-classification model exported to ONNX.

``model.onnx``: ``input_values`` float32 [batch, samples] (16 kHz waveform) ->
``logits`` float32 [batch, labels]; ``config.json`` with ``id2label`` and
``preprocessor_config.json`` (``do_normalize``, ``sampling_rate``) beside it, as the
real export (``parley models pull --only analyse``) has. Inside: a strided Conv1d over
the waveform (25 ms windows, 20 ms hop, like wav2vec2's frames), ReLU, the mean over
time and a linear layer, with seeded random weights: its labels are arbitrary but
depend on the audio. Needs the ``onnx`` package (the ``tiny`` extra) and numpy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LABELS = ("neutral", "happy", "sad", "angry")
WINDOW, HOP, CHANNELS = 400, 320, 8
OPSET, IR_VERSION = 18, 8


def build_graph(seed: int = 0, labels: tuple[str, ...] = LABELS) -> Any:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    conv = rng.normal(0, 0.05, (CHANNELS, 1, WINDOW)).astype(np.float32)
    weight = rng.normal(0, 1.0, (CHANNELS, len(labels))).astype(np.float32)
    bias = rng.normal(0, 0.1, (len(labels),)).astype(np.float32)
    initializers = [
        numpy_helper.from_array(conv, "conv_w"),
        numpy_helper.from_array(weight, "fc_w"),
        numpy_helper.from_array(bias, "fc_b"),
        numpy_helper.from_array(np.array([1], np.int64), "channel_axis"),
        numpy_helper.from_array(np.array([2], np.int64), "time_axis"),
    ]
    nodes = [
        helper.make_node("Unsqueeze", ["input_values", "channel_axis"], ["x"]),
        helper.make_node("Conv", ["x", "conv_w"], ["frames"], strides=[HOP]),
        helper.make_node("Relu", ["frames"], ["active"]),
        helper.make_node("ReduceMean", ["active", "time_axis"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "fc_w"], ["scores"]),
        helper.make_node("Add", ["scores", "fc_b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "parley_tiny_emotion",
        inputs=[
            helper.make_tensor_value_info("input_values", TensorProto.FLOAT, ["batch", "samples"])
        ],
        outputs=[
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(labels)])
        ],
        initializer=initializers,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="parley",
        ir_version=IR_VERSION,
    )


def write_tiny_emotion(folder: Path, seed: int = 0) -> Path:
    """Write ``model.onnx``, ``config.json`` and ``preprocessor_config.json`` into
    ``folder``; returns the model's path."""
    import onnx

    model = build_graph(seed)
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    config = {
        "architectures": ["Wav2Vec2ForSequenceClassification"],
        "id2label": {str(i): label for i, label in enumerate(LABELS)},
        "label2id": {label: i for i, label in enumerate(LABELS)},
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    preprocessor = {"do_normalize": True, "sampling_rate": 16000, "feature_size": 1}
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor) + "\n")
    return path
