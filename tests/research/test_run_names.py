"""Run names `parley compare` could never find (``#ID`` is an id there; spaces around
a reference are dropped) are refused when a run is named, before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from parley import db
from parley.config import Config
from parley.errors import ParleyError
from research.runs import check_run_name, open_run, run_names


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("#5", "starts with '#', which `parley compare` reads as a run's id"),
        ("#", "starts with '#'"),
        ("", "cannot be empty"),
        (" r1", "begins or ends with a space"),
        ("r1 ", "begins or ends with a space"),
        ("r\x001", "control character"),
        ("r" * 201, "longer than 200 characters"),
    ],
)
def test_a_name_compare_cannot_find_is_refused(name: str, problem: str) -> None:
    with pytest.raises(ParleyError, match=problem.replace("(", r"\(")) as info:
        check_run_name(name)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["r1", "123", "a#b", "baseline v2"])
def test_names_compare_finds_are_taken(name: str) -> None:
    assert check_run_name(name) == name


def test_replay_refuses_such_a_run_name_for_one_pipeline_or_several(store: Config) -> None:
    dataset = db.Dataset.create(name="clips", source="test")
    with pytest.raises(ParleyError, match="starts with '#'"):
        run_names(dataset, ["instant"], "#5")
    with pytest.raises(ParleyError, match="starts with '#'"):
        run_names(dataset, ["instant", "tiny"], "#5")
    with pytest.raises(ParleyError, match="longer than 200"):
        run_names(dataset, ["instant", "tiny"], "r" * 195)
    assert run_names(dataset, ["instant", "tiny"], "r") == ["r-instant", "r-tiny"]
    with pytest.raises(ParleyError, match="starts with '#'"):
        open_run("#5", dataset, "instant", store, "fast")
    assert not db.Run.select().exists()


def test_the_replay_command_refuses_it_before_anything_else(tmp_path: Path) -> None:
    env = dict(os.environ, PARLEY_HOME=str(tmp_path), PARLEY_CONFIG="")
    failed = subprocess.run(
        [sys.executable, "-m", "parley", "replay", "ds", "--pipeline", "instant", "--run", "#5"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 2, failed.stderr
    assert "run name '#5' starts with '#'" in failed.stderr  # not "unknown dataset"
    assert "Traceback" not in failed.stderr
