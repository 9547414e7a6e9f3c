"""A researcher's own engine, as docs/extending.md describes it: the example package in
examples/parley-loudness is pip-installed (into a folder on PYTHONPATH, so the test
venv is left as it was), found through its `parley.engines` entry point by
`parley worker analyse --engine loudness` in its own process, and a turn runs through
a pipeline that uses it, configured in a few lines of TOML."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from parley import db, rpc
from protos import edge_pb2
from tests.fakes import FixedStt, ScriptedLlm, ToneTts
from tests.integration.conftest import (
    EdgeClient,
    Stack,
    audio_events,
    free_address,
    hello,
    is_turn,
    speech,
    stored_outputs,
)

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "parley-loudness"
TOML = """
[pools.loudness]
stage = "analyse"
engine = "loudness"
addresses = ["{address}"]

[pipelines.loud]
stt = {{ pool = "instant-stt" }}
loudness = {{ pool = "loudness", context = "The user is speaking {{label}}." }}
llm = {{ pool = "instant-llm" }}
tts = {{ pool = "instant-tts" }}
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package pip-installed into a folder (no network: no dependencies
    are fetched, the build uses this venv's setuptools)."""
    target, source = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("src") / "pkg"
    shutil.copytree(EXAMPLE, source)  # the build writes beside the sources: not in the repo
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    assert list(target.glob("parley_loudness-*.dist-info"))
    return target


@pytest.fixture
def worker(installed: Path, tmp_path: Path) -> Iterator[str]:
    """`parley worker analyse --engine loudness` as its own process; its address."""
    address = free_address()
    env = dict(os.environ, PYTHONPATH=f"{installed}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               PARLEY_HOME=str(tmp_path / "worker-home"))  # fmt: skip
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "parley", "worker", "analyse", "--engine", "loudness",
         "--option", "loud_db=-10", "--listen", address],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield address
    finally:
        process.terminate()
        process.wait(10)
        log.close()


async def wait_healthy(address: str, log: Path) -> None:
    async with asyncio.timeout(60):
        while True:
            async with rpc.dial(address) as channel:
                if await rpc.check_health(channel, timeout=0.5):
                    return
            await asyncio.sleep(0.2)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    running = Stack(tmp_path)
    yield running
    await running.close()


async def test_a_turn_runs_through_an_installed_engine(
    stack: Stack, worker: str, tmp_path: Path
) -> None:
    await wait_healthy(worker, tmp_path / "worker.log")
    stack.addresses["loudness"] = worker  # already running: not started in-process
    llm = ScriptedLlm("Got it.")
    engines = {"stt": FixedStt(), "llm": llm, "tts": ToneTts()}
    await stack.start_pipeline("loud", engines, toml=TOML.format(address=worker))
    samples, rate = speech()
    async with EdgeClient(stack.address, hello()) as edge:
        await edge.send(audio_events(samples, rate))
        finished = (await edge.wait_for(is_turn(edge_pb2.TurnEvent.FINISHED), 60)).turn
    with db.database.connection_context():
        turn = db.Turn.get_by_id(finished.turn_id)
    (output,) = stored_outputs(finished.turn_id).values()
    assert (output.stage, output.kind, output.status) == ("loudness", "analyse", "done")
    labels = output.value["labels"]
    assert {x["label"] for x in labels} == {"quiet", "normal", "loud"}
    assert sum(x["score"] for x in labels) == pytest.approx(1.0, abs=1e-4)
    assert f"The user is speaking {labels[0]['label']}." in llm.requests[0].messages[0].content
    assert turn.status == "done" and "analyse_model_ms" in turn.latency
