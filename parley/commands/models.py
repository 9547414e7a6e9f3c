"""`parley models`: download the real default models, build the tiny ones, list both.

Downloads go to <home>/models with a progress bar, through a .part file so an
interrupted download never looks complete. On an offline network, point
PARLEY_MODELS_MIRROR at a mirror of the same paths, or copy the files by hand:
the error message lists every file and where it goes.
"""

from __future__ import annotations

import argparse
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from parley.config import SMART_TURN_FILE, Config
from parley.errors import ParleyError

HUB = "https://huggingface.co"


@dataclass(frozen=True)
class ModelFile:
    stage: str
    path: str  # repository/resolve/revision/file on the hub (or a mirror)
    dest: str  # relative to the models directory
    default: bool = True  # fetched by a plain `parley models pull` (else: --only STAGE)


WHISPER = "Systran/faster-whisper-base.en/resolve/main"
QWEN = "Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main"
PIPER = "rhasspy/piper-voices/resolve/main/en/en_US/lessac/medium"
# Speech emotion recognition (8 emotions, English, Apache-2.0), wav2vec2-large-xlsr
# fine-tuned on RAVDESS, exported to ONNX (1.26 GB) in the model's own repository.
# End of turn (server, [turn] strategy = "smart_turn"): Smart Turn v3.2, 8.7 MB, BSD-2-Clause.
SMART_TURN = "pipecat-ai/smart-turn-v3/resolve/main"
EMOTION = "ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition/resolve/refs%2Fpr%2F8/onnx"

REAL_MODELS = [
    *(
        ModelFile("stt", f"{WHISPER}/{name}", f"faster-whisper-base.en/{name}")
        for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
    ),
    ModelFile(
        "llm", f"{QWEN}/qwen2.5-0.5b-instruct-q4_k_m.gguf", "qwen2.5-0.5b-instruct-q4_k_m.gguf"
    ),
    ModelFile("tts", f"{PIPER}/en_US-lessac-medium.onnx", "en_US-lessac-medium.onnx"),
    ModelFile("tts", f"{PIPER}/en_US-lessac-medium.onnx.json", "en_US-lessac-medium.onnx.json"),
    ModelFile("turn", f"{SMART_TURN}/{SMART_TURN_FILE}", SMART_TURN_FILE),
    *(
        ModelFile("analyse", f"{EMOTION}/{name}", f"speech-emotion/{name}", default=False)
        for name in ("model.onnx", "config.json", "preprocessor_config.json")
    ),
]


def _base_url() -> str:
    return os.environ.get("PARLEY_MODELS_MIRROR", HUB).rstrip("/")


def _download(url: str, dest: Path) -> None:
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": "parley-models"})
    with urllib.request.urlopen(request, timeout=30) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with (
            part.open("wb") as out,
            tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar,
        ):
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))
    part.replace(dest)


def pull(models_dir: Path, stages: set[str] | None = None) -> list[Path]:
    """Download the missing real model files; ParleyError (listing them) when offline."""
    wanted = [m for m in REAL_MODELS if (m.default if stages is None else m.stage in stages)]
    missing = [m for m in wanted if not (models_dir / m.dest).exists()]
    base = _base_url()
    fetched: list[Path] = []
    for model in missing:
        url, dest = f"{base}/{model.path}", models_dir / model.dest
        try:
            _download(url, dest)
        except urllib.error.HTTPError as exc:  # the server answered: not an offline problem
            raise ParleyError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            todo = "\n".join(
                f"  {base}/{m.path}\n    -> {models_dir / m.dest}"
                for m in missing
                if not (models_dir / m.dest).exists()
            )
            raise ParleyError(
                f"cannot download {url} ({getattr(exc, 'reason', exc)}).\n"
                "This machine looks offline. Fetch these files on a machine with internet "
                "access and copy them to the paths shown (or set PARLEY_MODELS_MIRROR to a "
                f"local mirror of the same paths), then run the command again:\n{todo}"
            ) from None
        fetched.append(dest)
    return fetched


def pipeline_model_paths(config: Config, pipeline: str) -> list[Path]:
    """The local model files a pipeline's pools point at (remote APIs have none), and
    the end-of-turn model if the pipeline's [turn] strategy is smart_turn."""
    paths = []
    turn = config.turn_for(pipeline)
    if turn.strategy == "smart_turn":
        paths.append(config.turn_model_path(turn))
    for stage in config.pipeline(pipeline).stages.values():
        pool = config.pool(stage.pool)
        for key in ("model", "clip_model"):
            model = pool.options.get(key)
            if isinstance(model, str) and os.path.isabs(model):
                paths.append(Path(model))
    return paths


def missing_models(config: Config, pipeline: str) -> list[Path]:
    return [p for p in pipeline_model_paths(config, pipeline) if not p.exists()]


def build_tiny(config: Config) -> Path:
    from workers.tiny_models import build_tiny_models

    dest = config.models_dir / "tiny"
    build_tiny_models(dest)
    return dest


def ensure_models(config: Config, pipeline: str) -> None:
    """Build the tiny models if the pipeline needs them; fail clearly on other gaps."""
    missing = missing_models(config, pipeline)
    tiny_dir = config.models_dir / "tiny"
    if missing and all(path.is_relative_to(tiny_dir) for path in missing):
        build_tiny(config)
    elif missing:
        stages = sorted({m.stage for m in REAL_MODELS if config.models_dir / m.dest in missing})
        only = "".join(f" --only {s}" for s in stages) if stages else ""
        raise ParleyError(
            f"pipeline {pipeline!r} needs model files that are missing ({missing[0]}, ...): "
            f"run `parley models pull{only}`"
        )


def run_models(args: argparse.Namespace, config: Config) -> int:
    if args.models_command == "pull":
        fetched = pull(config.models_dir, set(args.only) if args.only else None)
        print(f"{len(fetched)} file(s) downloaded; models are in {config.models_dir}")
    elif args.models_command == "tiny":
        print(f"tiny models ready in {build_tiny(config)}")
    else:
        for name in sorted(config.pipelines):
            missing = missing_models(config, name)
            state = "ready" if not missing else "missing " + ", ".join(map(str, missing))
            print(f"{name:10s} {state}")
    return 0
