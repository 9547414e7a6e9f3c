"""`parley models`: download the real default models, build the tiny ones, list both.

Downloads go to <home>/models with a progress bar, through a .part file so an
interrupted download never looks complete: a download shorter than the server said, or
a file whose size or sha256 is not the one pinned here (where the project knows it), is
refused and nothing is replaced. A file already in place is checked the same way (an
empty file, or a pinned one that does not match, is downloaded again). On an offline
network, point
PARLEY_MODELS_MIRROR at a mirror of the same paths (an http:// or https:// URL, a
file:// URL or a plain directory), or copy the files by hand: the error message lists
every file and where it goes.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from parley.config import SMART_TURN_FILE, Config
from parley.errors import ParleyError

log = logging.getLogger(__name__)

HUB = "https://huggingface.co"


@dataclass(frozen=True)
class ModelFile:
    stage: str
    path: str  # repository/resolve/revision/file on the hub (or a mirror)
    dest: str  # relative to the models directory
    default: bool = True  # fetched by a plain `parley models pull` (else: --only STAGE)
    size: int | None = None  # bytes, where the project pins the file
    sha256: str | None = None  # hex digest, where the project pins the file


WHISPER = "Systran/faster-whisper-base.en/resolve/main"
QWEN = "Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main"
PIPER = "rhasspy/piper-voices/resolve/main/en/en_US/lessac/medium"
# Speech emotion recognition (8 emotions, English, Apache-2.0), wav2vec2-large-xlsr
# fine-tuned on RAVDESS, exported to ONNX (1.26 GB) in the model's own repository.
# End of turn (server, [turn] strategy = "smart_turn"): Smart Turn v3.2, 8.7 MB, BSD-2-Clause.
SMART_TURN = "pipecat-ai/smart-turn-v3/resolve/main"
# Hub revision f766f81d3cfdf7737ac64aad813d91bbfd56bf93; the same file as pipecat-ai 1.14.0
# bundles (tests/smart_turn_model.py checks that copy against the same digest).
SMART_TURN_SIZE = 8_679_182
SMART_TURN_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
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
    ModelFile(
        "turn",
        f"{SMART_TURN}/{SMART_TURN_FILE}",
        SMART_TURN_FILE,
        size=SMART_TURN_SIZE,
        sha256=SMART_TURN_SHA256,
    ),
    *(
        ModelFile("analyse", f"{EMOTION}/{name}", f"speech-emotion/{name}", default=False)
        for name in ("model.onnx", "config.json", "preprocessor_config.json")
    ),
]


def mirror_url(value: str) -> str:
    """The base URL of the mirror ``value`` (PARLEY_MODELS_MIRROR): an http(s):// or
    file:// URL as it is, a directory's path as a file:// URL; ParleyError otherwise."""
    text = value.strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme in ("http", "https") and parts.netloc:
        return text.rstrip("/")
    if parts.scheme == "file" and parts.path:
        return text.rstrip("/")
    if not parts.scheme:  # no URL scheme: a directory
        path = Path(text).expanduser()
        if path.is_dir():
            return path.resolve().as_uri()
        raise ParleyError(
            f"PARLEY_MODELS_MIRROR = {value!r} is not a directory (give a directory laid "
            "out like the hub, or an http://, https:// or file:// URL)"
        )
    raise ParleyError(
        f"PARLEY_MODELS_MIRROR = {value!r}: give an http://, https:// or file:// URL, "
        "or a directory's path"
    )


def _base_url() -> str:
    return mirror_url(os.environ.get("PARLEY_MODELS_MIRROR") or HUB)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_problem(model: ModelFile, path: Path) -> str | None:
    """Why ``path`` is not ``model``'s file ("missing", "empty", a size or sha256 that
    differs from the pinned one), or None when it is, as far as the project knows."""
    if not path.exists():
        return "missing"
    if not path.is_file():
        return "not a regular file"
    size = path.stat().st_size
    if size == 0:
        return "empty"
    if model.size is not None and size != model.size:
        return f"{size} bytes, expected {model.size}"
    if model.sha256 is not None and (digest := file_sha256(path)) != model.sha256:
        return f"sha256 {digest}, expected {model.sha256}"
    return None


def _download(url: str, dest: Path, model: ModelFile) -> None:
    """``url`` to ``dest`` through ``dest.part``; ParleyError (and ``dest`` left as it
    was) when the download is shorter than announced or not the pinned file."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": "parley-models"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            written = 0
            with (
                part.open("wb") as out,
                tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar,
            ):
                try:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
                except http.client.IncompleteRead as exc:
                    written += len(exc.partial)
        if total is not None and written != total:
            raise ParleyError(
                f"the download of {url} stopped at {written} of {total} bytes; "
                "run the command again"
            )
        if (problem := file_problem(model, part)) is not None:
            raise ParleyError(
                f"{url} is not the expected file ({problem}); {dest} was left as it was "
                "(a mirror or a hub that holds another version?)"
            )
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)


def pull(models_dir: Path, stages: set[str] | None = None) -> list[Path]:
    """Download the real model files that are missing or not right (empty, or not the
    pinned size and sha256); ParleyError (listing them) when offline."""
    wanted = [m for m in REAL_MODELS if (m.default if stages is None else m.stage in stages)]
    todo = []
    for model in wanted:
        dest = models_dir / model.dest
        problem = file_problem(model, dest)
        if problem not in (None, "missing"):
            log.warning("%s is not the right file (%s): downloading it again", dest, problem)
        if problem is not None:
            todo.append(model)
    base = _base_url()
    fetched: list[Path] = []
    for model in todo:
        url, dest = f"{base}/{model.path}", models_dir / model.dest
        try:
            _download(url, dest, model)
        except urllib.error.HTTPError as exc:  # the server answered: not an offline problem
            raise ParleyError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            if base.startswith("file:") and isinstance(exc, urllib.error.URLError):
                raise ParleyError(f"cannot read {url} from the mirror ({exc.reason})") from None
            left = "\n".join(
                f"  {base}/{m.path}\n    -> {models_dir / m.dest}"
                + ("" if m.sha256 is None else f"\n       (sha256 {m.sha256})")
                for m in todo
                if models_dir / m.dest not in fetched
            )
            raise ParleyError(
                f"cannot download {url} ({getattr(exc, 'reason', exc)}).\n"
                "This machine looks offline. Fetch these files on a machine with internet "
                "access and copy them to the paths shown (or set PARLEY_MODELS_MIRROR to a "
                f"local mirror of the same paths), then run the command again:\n{left}"
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


def missing_advice(config: Config, pipeline: str) -> tuple[str, str] | None:
    """``(which model files are missing, what to do)`` for the pipeline's real model
    files (not the tiny ones, built when needed); None when none is missing. A file
    `parley models pull` writes is pulled (``--only`` its stages); one elsewhere (a
    [turn] model_path or a pool's model of your own) is not written by the pull."""
    tiny_dir = config.models_dir / "tiny"
    missing = [p for p in missing_models(config, pipeline) if not p.is_relative_to(tiny_dir)]
    if not missing:
        return None
    pulled = [(config.models_dir / m.dest, m.stage) for m in REAL_MODELS]
    stages, fixes = set(), []
    turn = config.turn_for(pipeline)
    turn_model = config.turn_model_path(turn) if turn.strategy == "smart_turn" else None
    for path in missing:
        found = {stage for dest, stage in pulled if dest == path or dest.is_relative_to(path)}
        stages |= found
        if found:
            continue
        if path == turn_model:
            fixes.append(
                f"`parley models pull` does not write {path} ([turn] model_path): copy "
                f"{SMART_TURN_FILE} there, or leave model_path empty for the one "
                "`parley models pull --only turn` fetches"
            )
        else:
            fixes.append(
                f"`parley models pull` does not write {path}: copy the model there, or "
                "point the pool's model option at one it fetches"
            )
    if stages:
        only = "".join(f" --only {s}" for s in sorted(stages))
        fixes.insert(0, f"run `parley models pull{only}` (offline, it lists the files)")
    shown = ", ".join(map(str, missing[:2]))
    more = f" and {len(missing) - 2} more" if len(missing) > 2 else ""
    return f"model files missing ({shown}{more})", "; ".join(fixes)


def ensure_models(config: Config, pipeline: str) -> None:
    """Build the tiny models if the pipeline needs them; fail clearly on other gaps."""
    if (advice := missing_advice(config, pipeline)) is not None:
        missing, fix = advice
        raise ParleyError(f"pipeline {pipeline!r}: {missing}: {fix}")
    if missing_models(config, pipeline):  # the tiny ones only
        build_tiny(config)


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
