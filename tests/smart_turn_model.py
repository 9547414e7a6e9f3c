"""The real Smart Turn v3.2 model for tests and CI, taken from the pipecat-ai wheel.

Model weights cannot come from a hub here, but the package index carries pipecat-ai,
whose wheel bundles ``smart-turn-v3.2-cpu.onnx``. The wheel is downloaded once without
dependencies (``pip download --no-deps``), both the wheel and the model are checked
against their sha256, and the model is cached beside the tiny test models
(``PARLEY_TEST_CACHE``, else ``<repo>/.cache/test-models``). Parley never imports
pipecat. ``python -m tests.smart_turn_model`` fetches it ahead of a run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from parley.commands.models import SMART_TURN_SHA256, file_sha256

WHEEL = "pipecat-ai==1.14.0"
WHEEL_FILE = "pipecat_ai-1.14.0-py3-none-any.whl"
WHEEL_SHA256 = "0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44"
MEMBER = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
# The file `parley models pull --only turn` pins is the one the wheel bundles.
MODEL_SHA256 = SMART_TURN_SHA256

CACHE = Path(
    os.environ.get(
        "PARLEY_TEST_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "test-models")
    )
)


def smart_turn_model(cache: Path = CACHE) -> Path:
    """The path of the verified model file, downloading the wheel the first time.
    RuntimeError when pip cannot get the wheel or a checksum does not match."""
    dest = cache / "smart-turn" / "smart-turn-v3.2-cpu.onnx"
    if dest.is_file() and file_sha256(dest) == MODEL_SHA256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, WHEEL],
            capture_output=True,
            text=True,
            timeout=600,
        )
        wheel = Path(tmp) / WHEEL_FILE
        if done.returncode or not wheel.is_file():
            raise RuntimeError(f"pip download {WHEEL} failed: {done.stderr.strip()[-500:]}")
        if (got := file_sha256(wheel)) != WHEEL_SHA256:
            raise RuntimeError(f"{WHEEL_FILE} has sha256 {got}, expected {WHEEL_SHA256}")
        part = Path(tmp) / "model.onnx"
        with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as src:
            part.write_bytes(src.read())
        if (got := file_sha256(part)) != MODEL_SHA256:
            raise RuntimeError(f"{MEMBER} has sha256 {got}, expected {MODEL_SHA256}")
        part.replace(dest)
    return dest


if __name__ == "__main__":
    print(smart_turn_model())
