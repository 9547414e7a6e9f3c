"""The `parley` command line: --option KEY=VALUE parsing and the documented commands."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import parley
from parley.cli import _options, build_parser
from parley.errors import ParleyError


def test_options_convert_ints_floats_booleans_and_keep_strings() -> None:
    parsed = _options(
        [
            "n_ctx=512",
            "temperature=0.7",
            "negative=-3",
            "vision=true",
            "stream=False",
            "compute_type=int8",
            "model=/models/x.gguf",
        ]
    )
    assert parsed == {
        "n_ctx": 512,
        "temperature": 0.7,
        "negative": -3,
        "vision": True,
        "stream": False,
        "compute_type": "int8",
        "model": "/models/x.gguf",
    }
    assert type(parsed["n_ctx"]) is int
    assert type(parsed["temperature"]) is float
    assert type(parsed["vision"]) is bool


def test_options_split_at_the_first_equals_sign() -> None:
    assert _options(["prompt=a=b", "empty="]) == {"prompt": "a=b", "empty": ""}


def test_options_later_pairs_win() -> None:
    assert _options(["k=1", "k=2"]) == {"k": 2}


def test_options_without_equals_name_the_pair() -> None:
    with pytest.raises(ParleyError, match="KEY=VALUE") as info:
        _options(["ok=1", "compute_type"])
    assert "'compute_type'" in str(info.value)


def test_demo_command() -> None:
    args = build_parser().parse_args(["demo", "--pipeline", "tiny", "--json"])
    assert args.command == "demo"
    assert args.pipeline == "tiny"
    assert args.json is True
    assert args.fast is False
    assert args.wav is None
    assert callable(args.handler)


def test_worker_command_with_engine_model_and_options() -> None:
    args = build_parser().parse_args(
        [
            "worker",
            "stt",
            "--engine",
            "faster_whisper",
            "--model",
            "X",
            "--option",
            "compute_type=int8",
            "--option",
            "beam_size=1",
        ]
    )
    assert args.command == "worker"
    assert (args.stage, args.engine, args.model) == ("stt", "faster_whisper", "X")
    assert args.option == ["compute_type=int8", "beam_size=1"]
    assert _options(args.option) == {"compute_type": "int8", "beam_size": 1}
    assert args.pool is None
    assert args.listen is None


def test_worker_command_from_a_pool() -> None:
    args = build_parser().parse_args(["worker", "--pool", "tiny-stt", "--listen", "127.0.0.1:1"])
    assert args.stage is None
    assert args.pool == "tiny-stt"
    assert args.listen == "127.0.0.1:1"
    assert args.option == []


def test_bench_turn_command() -> None:
    args = build_parser().parse_args(
        ["bench", "turn", "--turns", "5", "--engines", "instant", "--json"]
    )
    assert (args.command, args.bench_command) == ("bench", "turn")
    assert args.turns == 5
    assert args.engines == "instant"
    assert args.json is True
    assert args.output is None


def test_bench_turn_defaults() -> None:
    args = build_parser().parse_args(["bench", "turn"])
    assert args.turns == 30
    assert args.engines == "instant"
    assert args.json is False


def test_models_pull_only() -> None:
    args = build_parser().parse_args(["models", "pull", "--only", "stt", "--only", "tts"])
    assert (args.command, args.models_command) == ("models", "pull")
    assert args.only == ["stt", "tts"]
    assert build_parser().parse_args(["models", "pull"]).only is None


def test_global_options_come_before_the_command() -> None:
    args = build_parser().parse_args(["--config", "my.toml", "-v", "up", "--pipeline", "tiny"])
    assert args.config == "my.toml"
    assert args.verbose is True
    assert args.pipeline == ["tiny"]


@pytest.mark.parametrize(
    "argv",
    [
        [],  # a command is required
        ["worker", "vision"],  # not a stage
        ["bench", "turn", "--engines", "gpt"],  # not an engine set
        ["bench", "turn", "--turns", "many"],  # not an int
        ["models", "pull", "--only", "vad"],  # not a stage
        ["models"],  # a models command is required
        ["edge", "--wav", "in.wav"],  # --out is required
    ],
)
def test_bad_command_lines_exit_with_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    assert "usage: parley" in capsys.readouterr().err


def _arguments(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.Action]]:
    """Every argument of every (sub)command, with the command's words."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _arguments(sub, (*path, name))
        elif not isinstance(action, argparse._HelpAction) and action.help != argparse.SUPPRESS:
            yield " ".join(path), action


FLAGS = (argparse._StoreTrueAction, argparse._VersionAction)


def test_every_argument_of_every_subcommand_has_help_and_its_default() -> None:
    seen, problems = 0, []
    for command, action in _arguments(build_parser()):
        seen += 1
        name = f"parley {command} {'/'.join(action.option_strings) or action.dest}"
        if not action.help:
            problems.append(f"{name}: no help text")
            continue
        takes_value = not isinstance(action, FLAGS) and (action.option_strings or action.nargs)
        if takes_value and "default" not in action.help:
            problems.append(f"{name}: the help does not say the default")
        if action.default not in (None, False, [], argparse.SUPPRESS):
            shown = f"{action.default:g}" if isinstance(action.default, float) else action.default
            if f"{shown}" not in action.help.replace(",", ""):
                problems.append(f"{name}: the help does not give the default {action.default!r}")
    assert seen > 60
    assert problems == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"parley {parley.__version__}"


@pytest.mark.parametrize(
    "kind", ["stt", "llm", "tts", "speech_llm", "analyse", "retrieve", "caption"]
)
def test_worker_runs_any_stage_kind(kind: str) -> None:
    args = build_parser().parse_args(["worker", kind, "--engine", "mine"])
    assert (args.stage, args.engine) == (kind, "mine")


def test_index_commands_parse() -> None:
    built = build_parser().parse_args(
        ["index", "build", "docs", "/notes", "--model", "e.gguf", "--chunk-chars", "400"]
    )
    assert (built.name, built.folder, built.embedder, built.model) == (
        "docs", "/notes", "llama_cpp", "e.gguf"
    )  # fmt: skip
    assert (built.chunk_chars, built.overlap, built.pooling, built.database_url) == (
        400, 1, "mean", None
    )  # fmt: skip
    asked = build_parser().parse_args(["index", "query", "docs", "the lamp", "--top-k", "2"])
    assert (asked.name, asked.text, asked.top_k) == ("docs", "the lamp", 2)


def test_index_build_of_a_missing_folder_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from parley.cli import main

    monkeypatch.setenv("PARLEY_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    code = main(["index", "build", "docs", str(tmp_path / "nope"), "--model", "x.gguf"])
    assert code == 2
    assert "is not a folder" in capsys.readouterr().err


def _every_action(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.Action]]:
    """Every action of every (sub)command, hidden ones included, with the command words."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _every_action(sub, (*path, name))
        else:
            yield path, action


def _outside(ranged: Any) -> list[str]:
    """Values just outside a checker's declared range, and ones no number may take."""
    bad = ["nan", "inf", "-inf", "x"] if ranged.kind is float else ["1.5", "x", "nan"]
    step = 1 if ranged.kind is int else 0.001
    if ranged.low is not None:
        bad += [str(ranged.low), "-1"] if ranged.low_open else [str(ranged.low - step), "-1"]
    if ranged.high is not None:
        bad.append(str(ranged.high + step))
    return bad


def test_every_numeric_option_declares_a_range_and_rejects_values_outside_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    checked, problems = 0, []
    parser = build_parser()
    for path, action in _every_action(parser):
        name = f"parley {' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
        if action.type in (int, float):
            problems.append(f"{name}: a bare {action.type.__name__}, no range declared")
            continue
        if not hasattr(action.type, "low"):
            continue
        checked += 1
        for value in _outside(action.type):
            with pytest.raises(argparse.ArgumentTypeError):
                action.type(value)
        # and through the parser: a usage error (exit 2) naming the option, no traceback
        if action.option_strings and not action.required:
            argv = [*path, f"{action.option_strings[0]}=-1"]
            with pytest.raises(SystemExit) as info:
                parser.parse_args([*argv, *_required_positionals(parser, path)])
            if info.value.code != 2 or action.option_strings[0] not in capsys.readouterr().err:
                problems.append(f"{name}: -1 was not a usage error naming the option")
    assert checked > 30
    assert problems == []


def _required_positionals(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> list[str]:
    """Placeholder values for the positionals of the command at ``path``."""
    for word in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return [
        "x"
        for a in parser._actions
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction) and a.nargs != "?"
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "load", "--streams", "-1"],
        ["bench", "load", "--streams", "0"],
        ["bench", "load", "--chunk-ms", "0"],
        ["bench", "load", "--chunk-ms", "100000"],
        ["bench", "load", "--seconds", "-5"],
        ["bench", "turn", "--turns", "0"],
        ["bench", "turn", "--turns", "-3"],
        ["bench", "edge", "--seconds", "0"],
        ["edge", "--fps", "-1"],
        ["edge", "--fps", "nan"],
        ["edge", "--size", "0x0"],
        ["edge", "--buffer-s", "-5"],
        ["edge", "--out", "x.wav", "--wav", "/nonexistent.wav"],
        ["edge", "--out", "x.wav", "--wav", "/etc/passwd"],
        ["demo", "--wav", "/nonexistent.wav"],
        ["bench", "load", "--clip", "/etc/passwd"],
    ],
)
def test_reported_bad_values_are_one_line_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("parley ") and f"argument {argv[-2]}" in err[-1]


# --------------------------------------------------------------------------- output files

BENCHES = ("tracing", "admin", "turn", "edge", "replay", "chaos", "endpointing", "load")


def test_every_output_file_option_is_checked_before_the_command_runs() -> None:
    from parley.arguments import output_file

    outputs = [
        (path, action)
        for path, action in _every_action(build_parser())
        if action.dest in ("output", "out")
    ]
    assert {path[-1] for path, _ in outputs} >= set(BENCHES) | {"edge", "demo"}
    assert [p for p, a in outputs if a.type is not output_file] == []


@pytest.mark.parametrize("bench", BENCHES)
@pytest.mark.parametrize("where", ["no such folder", "a folder"])
def test_an_unwritable_bench_output_is_a_one_line_usage_error(
    bench: str, where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = str(tmp_path / "nope" / "x.json") if where == "no such folder" else str(tmp_path)
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["bench", bench, "--output", output])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("parley bench ") and "argument --output" in err[-1]
    assert output in err[-1]


def test_output_file_neither_leaves_a_file_nor_truncates_one(tmp_path: Path) -> None:
    from parley.arguments import output_file

    new = tmp_path / "new.json"
    assert output_file(str(new)) == str(new)
    assert not new.exists()
    old = tmp_path / "old.json"
    old.write_text("keep")
    output_file(str(old))
    assert old.read_text() == "keep"
    with pytest.raises(argparse.ArgumentTypeError, match="empty"):
        output_file(" ")


def test_a_result_is_printed_before_a_failed_output_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from parley.commands.bench import report

    gone = tmp_path / "gone"
    gone.mkdir()
    args = argparse.Namespace(output=str(gone / "result.json"), json=False)
    gone.rmdir()  # the folder went away while the benchmark ran
    with pytest.raises(ParleyError, match=r"result.json: cannot be written.*printed above"):
        report({"figure": 42}, args, "summary line")
    out = capsys.readouterr().out
    assert '"figure": 42' in out and "summary line" in out


def test_every_bench_has_an_entry_point() -> None:
    import importlib

    from parley.cli_bench import BENCHES

    bench = next(
        a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "bench"
    )[1]
    names = set(bench._subparsers._group_actions[0].choices)
    assert names == set(BENCHES)
    for module, function in BENCHES.values():
        assert callable(getattr(importlib.import_module(f"parley.commands.{module}"), function))
