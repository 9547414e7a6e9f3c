"""Write a tiny Piper voice (``NAME.onnx`` + ``NAME.onnx.json``) that speaks a tone.

The ONNX graph has the signature piper 1.8 feeds a single-speaker voice: ``input``
int64 [1, N] phoneme ids, ``input_lengths`` int64 [1], ``scales`` float32 [3] (noise,
length, noise_w); it returns ``output`` float32 [1, 1, T] with
T = N * HOP_LENGTH * length_scale samples of a sine tone. So real espeak phonemisation
runs in front of it, longer text gives longer audio and ``length_scale`` slows it down.
Needs only the ``onnx`` package (the ``tiny`` extra).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SAMPLE_RATE = 22050
HOP_LENGTH = 256  # samples per phoneme id at length_scale 1
TONE_HZ = 220.0
AMPLITUDE = 0.5
OPSET = 17
IR_VERSION = 8  # old enough for any onnxruntime piper supports

# piper's DEFAULT_PHONEME_ID_MAP (espeak IPA symbols), in id order, so the voice does
# not depend on piper being importable when it is built.
_SYMBOLS = (
    "_^$ !'(),-.:;?abcdefhijklmnopqrstuvwxyz\xe6\xe7\xf0\xf8\u0127\u014b\u0153\u01c0\u01c1"
    "\u01c2\u01c3\u0250\u0251\u0252\u0253\u0254\u0255\u0256\u0257\u0258\u0259\u025a\u025b"
    "\u025c\u025e\u025f\u0260\u0261\u0262\u0263\u0264\u0265\u0266\u0267\u0268\u026a\u026b"
    "\u026c\u026d\u026e\u026f\u0270\u0271\u0272\u0273\u0274\u0275\u0276\u0278\u0279\u027a"
    "\u027b\u027d\u027e\u0280\u0281\u0282\u0283\u0284\u0288\u0289\u028a\u028b\u028c\u028d"
    "\u028e\u028f\u0290\u0291\u0292\u0294\u0295\u0298\u0299\u029b\u029c\u029d\u029f\u02a1"
    "\u02a2\u02b2\u02c8\u02cc\u02d0\u02d1\u02de\u03b2\u03b8\u03c7\u1d7b\u2c710123456789"
    '\u0327\u0303\u032a\u032f\u0329\u02b0\u02e4\u03b5\u2193#"\u2191\u033a\u033bg\u02a6X'
    "\u031d\u030a\u025d\u02b7"
)
_DIPHTHONGS = ("a\u026a", "a\u028a", "\u0254\u026a", "e\u026a", "o\u028a")


def phoneme_id_map() -> dict[str, list[int]]:
    symbols = [*_SYMBOLS, *_DIPHTHONGS]
    return {symbol: [i] for i, symbol in enumerate(symbols)}


def voice_config(sample_rate: int = SAMPLE_RATE) -> dict[str, Any]:
    id_map = phoneme_id_map()
    return {
        "audio": {"sample_rate": sample_rate, "quality": "x_low"},
        "espeak": {"voice": "en-us"},
        "language": {"code": "en_US"},
        "phoneme_type": "espeak",
        "num_symbols": len(id_map),
        "num_speakers": 1,
        "speaker_id_map": {},
        "inference": {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8},
        "hop_length": HOP_LENGTH,
        "phoneme_id_map": id_map,
        "piper_version": "1.0.0",
        "dataset": "parley-tiny-tone",
    }


def build_graph(sample_rate: int = SAMPLE_RATE) -> Any:
    """The ONNX model: phoneme count and length scale -> a tone of matching length."""
    from onnx import TensorProto, helper

    def const(name: str, values: list[float] | list[int], dtype: int) -> Any:
        return helper.make_node(
            "Constant",
            [],
            [name],
            value=helper.make_tensor(name + "_value", dtype, [len(values)], values),
        )

    step = 2.0 * math.pi * TONE_HZ / sample_rate
    nodes = [
        const("hop", [float(HOP_LENGTH)], TensorProto.FLOAT),
        const("length_index", [1], TensorProto.INT64),
        const("zero", [0.0], TensorProto.FLOAT),
        const("one", [1.0], TensorProto.FLOAT),
        const("step", [step], TensorProto.FLOAT),
        const("amplitude", [AMPLITUDE], TensorProto.FLOAT),
        const("axes", [0, 1], TensorProto.INT64),
        # samples = input_lengths * HOP_LENGTH * length_scale
        helper.make_node("Cast", ["input_lengths"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Gather", ["scales", "length_index"], ["length_scale"], axis=0),
        helper.make_node("Mul", ["ids_f", "hop"], ["base"]),
        helper.make_node("Mul", ["base", "length_scale"], ["samples_1"]),
        helper.make_node("Floor", ["samples_1"], ["samples_v"]),
        helper.make_node("Squeeze", ["samples_v"], ["samples"]),
        helper.make_node("Squeeze", ["zero"], ["start"]),
        helper.make_node("Squeeze", ["one"], ["delta"]),
        helper.make_node("Range", ["start", "samples", "delta"], ["t"]),
        helper.make_node("Mul", ["t", "step"], ["phase"]),
        helper.make_node("Sin", ["phase"], ["wave"]),
        helper.make_node("Mul", ["wave", "amplitude"], ["audio"]),
        helper.make_node("Unsqueeze", ["audio", "axes"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "parley_tiny_tone_voice",
        inputs=[
            helper.make_tensor_value_info("input", TensorProto.INT64, [1, "phonemes"]),
            helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
            helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3]),
        ],
        outputs=[helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "time"])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="parley",
        ir_version=IR_VERSION,
    )
    return model


def write_tiny_voice(model_path: Path, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write ``model_path`` (ONNX) and ``model_path.json`` (piper config)."""
    import onnx

    model = build_graph(sample_rate)
    onnx.checker.check_model(model)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model_path.write_bytes(model.SerializeToString())
    config_path = model_path.with_name(model_path.name + ".json")
    config = json.dumps(voice_config(sample_rate), indent=2, ensure_ascii=False)
    config_path.write_text(config + "\n", encoding="utf-8")
    return model_path
