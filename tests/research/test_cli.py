"""The commands a researcher types: `parley dataset`, `parley replay` (starting the
server and workers as processes, as `parley demo` does) and `parley compare`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import free_address
from tests.research.conftest import CLIPS


def parley(home: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PARLEY_HOME=str(home), PARLEY_CONFIG=str(home / "parley.toml"))
    return subprocess.run(
        [sys.executable, "-m", "parley", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home whose config puts the server and the instant workers on free ports."""
    lines = [f"[server]\nport = {free_address().rsplit(':', 1)[1]}\n"]
    for stage in ("stt", "llm", "tts"):
        lines.append(
            f'[pools.instant-{stage}]\nstage = "{stage}"\nengine = "instant"\n'
            f'addresses = ["{free_address()}"]\n'
        )
    (tmp_path / "parley.toml").write_text("\n".join(lines))
    return tmp_path


def test_import_replay_and_compare_from_the_command_line(
    home: Path, recordings: Path, tmp_path: Path
):
    manifest = tmp_path / "refs.tsv"
    manifest.write_text(
        "file\treference\n" + "\n".join(f"{c.name}\twhat does it mean" for c in CLIPS[:3])
    )
    made = parley(
        home, "dataset", "import", "clips", str(recordings), "--references", str(manifest)
    )
    assert made.returncode == 0, made.stderr
    assert "dataset clips@1: 3 items" in made.stdout

    listed = json.loads(parley(home, "dataset", "list", "--json").stdout)
    assert [(d["name"], d["version"], d["items"]) for d in listed] == [("clips", 1, 3)]

    replayed = parley(
        home, "replay", "clips", "--pipeline", "instant", "--pace", "fast", "--run", "r1", "--json"
    )
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    (tally,) = json.loads(replayed.stdout)
    assert (tally["run"], tally["done"], tally["failed"]) == ("r1", 3, 0)
    # Resuming a finished run speaks nothing again.
    again = json.loads(
        parley(
            home,
            "replay",
            "clips",
            "--pipeline",
            "instant",
            "--pace",
            "fast",
            "--run",
            "r1",
            "--json",
        ).stdout
    )
    assert (again[0]["skipped"], again[0]["done"]) == (3, 0)

    compared = parley(home, "compare", "r1", "--json")
    assert compared.returncode == 0, compared.stderr
    result = json.loads(compared.stdout)
    assert result["summary"][0]["done"] == 3
    assert result["summary"][0]["wer"] == pytest.approx(0.25)  # "it" heard as "instant"
    text = parley(home, "compare", "r1").stdout
    assert "r1" in text and "25.0%" in text

    shown = parley(home, "dataset", "show", "clips")
    assert "run r1 (instant" in shown.stdout
    exported = parley(home, "dataset", "export", "clips", str(tmp_path / "out"))
    assert exported.returncode == 0 and (tmp_path / "out" / "manifest.jsonl").is_file()

    # Bad input: one clear line, exit status 2, nothing started or half-made.
    failures = [
        (
            ("dataset", "import", "clips", str(recordings), "--references", str(manifest)),
            "dataset 'clips' exists (version 1)",
        ),
        (("replay", "clips", "--pipeline", "nope"), "unknown pipeline 'nope'"),
        (("replay", "missing", "--pipeline", "instant"), "unknown dataset 'missing'"),
        (("compare", "r1", "r2"), "unknown run 'r2'"),
        (("compare", "r1", "--tag", "nosuch"), "no item of dataset clips has the tag 'nosuch'"),
        (
            ("replay", "clips", "--pipeline", "instant", "--run", "r1"),
            "run 'r1' was replayed at --pace fast",
        ),
        (
            ("dataset", "from-turns", "t", "--filter", "colour=red"),
            "unknown turn filter 'colour'",
        ),
    ]
    for args, message in failures:
        failed = parley(home, *args)
        assert failed.returncode == 2, (args, failed.stderr)
        assert message in failed.stderr and "Traceback" not in failed.stderr
    manifest.write_text("file\treference\nnot-there.wav\tx\n")
    failed = parley(
        home, "dataset", "import", "other", str(recordings), "--references", str(manifest)
    )
    assert failed.returncode == 2
    assert "refs.tsv line 2: audio file not-there.wav not found" in failed.stderr
    assert len(json.loads(parley(home, "dataset", "list", "--json").stdout)) == 1
