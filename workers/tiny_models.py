"""Build the tiny offline models the ``tiny`` pipeline and the tests run on.

``build_tiny_models(dest)`` writes, once:

- ``whisper/``: a random-weight one-layer Whisper in CTranslate2 format with its
  ``tokenizer.json`` (faster-whisper loads it without the network; it transcribes
  nonsense), see workers/tiny_whisper.py;
- ``voice.onnx`` + ``voice.onnx.json``: a Piper voice that speaks a tone as long as the
  phonemes it is given, see workers/tiny_voice.py;
- ``stories260K.gguf``: a real 260K-parameter story model shipped in workers/assets;
- ``emotion/``: a random-weight speech-emotion classifier in the format of a Hugging
  Face audio-classification ONNX export, see workers/tiny_emotion.py;
- ``mmproj.gguf``: a random-weight multimodal projector for stories260K (local vision
  through llama-cpp-python's chat handlers), see workers/tiny_vision.py.

Everything is deterministic. A stamp file records the recipe version; a later call
with the same version and all files present writes nothing.
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

from workers.errors import MissingExtra

RECIPE_VERSION = 3
STAMP = "tiny-models.json"
ASSETS = Path(__file__).resolve().parent / "assets"
GGUF_NAME = "stories260K.gguf"
WHISPER_FILES = ("model.bin", "config.json", "vocabulary.json", "tokenizer.json")
VOICE_NAME = "voice.onnx"
EMOTION_FILES = ("model.onnx", "config.json", "preprocessor_config.json")
PROJECTOR_NAME = "mmproj.gguf"


def tiny_model_paths(dest: Path) -> dict[str, Path]:
    """Where ``build_tiny_models`` puts each model (engine option ``model``)."""
    return {
        "whisper": dest / "whisper",
        "voice": dest / VOICE_NAME,
        "voice_config": dest / (VOICE_NAME + ".json"),
        "gguf": dest / GGUF_NAME,
        "emotion": dest / "emotion" / "model.onnx",
        "projector": dest / PROJECTOR_NAME,
    }


def _expected_files(dest: Path) -> list[Path]:
    paths = tiny_model_paths(dest)
    return [
        *(paths["whisper"] / name for name in WHISPER_FILES),
        paths["voice"],
        paths["voice_config"],
        paths["gguf"],
        *(paths["emotion"].parent / name for name in EMOTION_FILES),
        paths["projector"],
    ]


def _stamp() -> dict[str, object]:
    return {
        "recipe": RECIPE_VERSION,
        "files": [*WHISPER_FILES, VOICE_NAME, GGUF_NAME, *EMOTION_FILES, PROJECTOR_NAME],
    }


def is_built(dest: Path) -> bool:
    """True when ``dest`` holds every tiny model made by this recipe version."""
    stamp_path = dest / STAMP
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stamp == _stamp() and all(path.is_file() for path in _expected_files(dest))


def _require(module: str, package: str) -> None:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise MissingExtra(package, "tiny") from exc


def build_tiny_models(dest: Path, *, force: bool = False) -> dict[str, Path]:
    """Write the tiny models into ``dest`` unless they are already there; return their paths.

    Raises MissingExtra naming the ``tiny`` extra when a builder dependency is missing.
    """
    dest = Path(dest)
    paths = tiny_model_paths(dest)
    if not force and is_built(dest):
        return paths
    for module, package in (
        ("numpy", "numpy"),
        ("ctranslate2", "ctranslate2"),
        ("tokenizers", "tokenizers"),
        ("onnx", "onnx"),
        ("gguf", "gguf"),
    ):
        _require(module, package)
    from workers.tiny_emotion import write_tiny_emotion
    from workers.tiny_vision import write_tiny_projector
    from workers.tiny_voice import write_tiny_voice
    from workers.tiny_whisper import write_tiny_whisper

    dest.mkdir(parents=True, exist_ok=True)
    (dest / STAMP).unlink(missing_ok=True)  # a crash below leaves no valid stamp
    whisper_tmp = dest / "whisper.partial"
    shutil.rmtree(whisper_tmp, ignore_errors=True)
    write_tiny_whisper(whisper_tmp, seed=0)
    shutil.rmtree(paths["whisper"], ignore_errors=True)
    whisper_tmp.rename(paths["whisper"])
    write_tiny_voice(paths["voice"])
    shutil.copyfile(ASSETS / GGUF_NAME, paths["gguf"])
    write_tiny_emotion(paths["emotion"].parent)
    write_tiny_projector(paths["projector"])
    (dest / STAMP).write_text(json.dumps(_stamp(), indent=2) + "\n", encoding="utf-8")
    return paths
