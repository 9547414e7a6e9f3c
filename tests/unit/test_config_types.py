"""A TOML value of the wrong type is refused when the config loads, naming the key, the
type expected and the value: the typed settings (a quoted ``threshold = "0.5"`` was
silently converted) and the stage parameters the server reads (a quoted temperature
loaded fine and failed every turn)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from parley.config import Config, load_config
from parley.errors import ConfigError
from parley.stage_params import PARAMS

SERVER = Path(__file__).resolve().parents[2] / "server"


@pytest.fixture(autouse=True)
def _no_cwd_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(tmp_path: Path, toml: str, **env: str) -> Config:
    path = tmp_path / "user.toml"
    path.write_text(toml)
    return load_config(path, {"PARLEY_HOME": str(tmp_path / "home"), **env})


def refused(tmp_path: Path, toml: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml)
    return str(info.value)


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        (
            '[vad]\nthreshold = "0.5"\n',
            "[vad]: threshold = '0.5' is not a valid float: expected a number, not a string",
        ),
        (
            '[server]\nport = "6000"\n',
            "[server]: port = '6000' is not a valid int: expected a whole number, not a string",
        ),
        ("[server]\nport = true\n", "port = True is not a valid int: expected a whole number"),
        ('[edge]\nfull_duplex = "yes"\n', "full_duplex = 'yes' is not a valid bool: expected true"),
        ("[edge]\ndevice_id = 7\n", "device_id = 7 is not a valid str: expected a string, not a"),
        ("[vad]\nthreshold = true\n", "threshold = True is not a valid float"),
        (
            '[pipelines.tiny.turn]\nthreshold = "0.5"\n',
            "[pipelines.tiny.turn]: threshold = '0.5' is not a valid float",
        ),
        (
            'base_port = "6000"\n',
            "top level: base_port = '6000' is not a valid int: expected a whole number, "
            "not a string",
        ),
        ("base_port = 6000.5\n", "base_port = 6000.5 is not a valid int: expected a whole"),
        ("base_port = true\n", "base_port = True is not a valid int"),
        ("base_port = 80\n", "base_port = 80: give a port from 1024 to 65435"),
        ("home = 5\n", "home must be a directory's path, not 5"),
    ],
)
def test_a_setting_of_the_wrong_type_names_key_type_and_value(
    tmp_path: Path, toml: str, named: str
) -> None:
    assert named in refused(tmp_path, toml)


def test_an_integer_is_a_number_and_env_strings_are_still_converted(tmp_path: Path) -> None:
    config = load(tmp_path, "[vad]\nthreshold = 1\n", PARLEY_SERVER_PORT="6001")
    assert config.vad.threshold == 1.0 and isinstance(config.vad.threshold, float)
    assert config.server.port == 6001
    config = load(tmp_path, "", PARLEY_VAD_THRESHOLD="0.4", PARLEY_EDGE_FULL_DUPLEX="yes")
    assert (config.vad.threshold, config.edge.full_duplex) == (0.4, True)
    assert load(tmp_path, "base_port = 6000\n").base_port == 6000
    assert load(tmp_path, 'base_port = "x"\n', PARLEY_BASE_PORT="6100").base_port == 6100


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        (
            '[pipelines.tiny.llm]\npool = "tiny-llm"\ntemperature = "0.5"\n',
            "[pipelines.tiny.llm]: temperature = '0.5' is not a valid float: expected a "
            "number, not a string",
        ),
        (
            '[pipelines.tiny.llm]\npool = "tiny-llm"\nmax_tokens = 1.5\n',
            "max_tokens = 1.5 is not a valid int: expected a whole number, not a decimal",
        ),
        ('[pipelines.tiny.llm]\npool = "tiny-llm"\nvision = "yes"\n', "vision = 'yes'"),
        ('[pipelines.tiny.llm]\npool = "tiny-llm"\noptions = "x"\n', "expected a table"),
        ('[pipelines.tiny.tts]\npool = "tiny-tts"\nspeed = "fast"\n', "speed = 'fast'"),
        ('[pipelines.tiny.stt]\npool = "tiny-stt"\nlanguage = 3\n', "language = 3"),
        (
            '[pipelines.local-rag.docs]\npool = "local-rag"\ntop_k = "2"\n',
            "[pipelines.local-rag.docs]: top_k = '2' is not a valid int",
        ),
        (
            '[pipelines.tiny.mood]\npool = "tiny-llm"\nkind = "analyse"\nlabels = [1, 2]\n',
            "labels = [1, 2] is not a valid list: expected a list of strings",
        ),
    ],
)
def test_a_stage_parameter_of_the_wrong_type_is_refused(
    tmp_path: Path, toml: str, named: str
) -> None:
    assert named in refused(tmp_path, toml)


def test_stage_parameters_of_the_right_type_load(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        '[pipelines.tiny.llm]\npool = "tiny-llm"\ntemperature = 0\nmax_tokens = 1\n'
        "history_turns = 0\noptions = { seed = 3, anything = nan }\n",
    )
    params = config.pipeline("tiny").stage("llm").params
    assert params["temperature"] == 0.0 and isinstance(params["temperature"], float)
    assert (params["max_tokens"], params["history_turns"]) == (1, 0)
    assert params["options"]["seed"] == 3  # options: the engine's, not checked here


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        (
            '[pipelines.tiny.llm]\npool = "tiny-llm"\ntemperature = nan\n',
            "[pipelines.tiny.llm]: temperature = nan: give a finite number",
        ),
        ('[pipelines.tiny.llm]\npool = "tiny-llm"\ntemperature = inf\n', "give a finite"),
        (
            '[pipelines.tiny.llm]\npool = "tiny-llm"\ntemperature = -0.1\n',
            "temperature = -0.1: must be 0 or more",
        ),
        (
            '[pipelines.tiny.llm]\npool = "tiny-llm"\nmax_tokens = -5\n',
            "[pipelines.tiny.llm]: max_tokens = -5: must be 1 or more",
        ),
        ('[pipelines.tiny.llm]\npool = "tiny-llm"\nmax_tokens = 0\n', "must be 1 or more"),
        ('[pipelines.tiny.llm]\npool = "tiny-llm"\nhistory_turns = -1\n', "must be 0 or"),
        (
            '[pipelines.tiny.tts]\npool = "tiny-tts"\nspeed = 0\n',
            "[pipelines.tiny.tts]: speed = 0.0: must be more than 0",
        ),
        ('[pipelines.tiny.tts]\npool = "tiny-tts"\nspeed = -inf\n', "give a finite"),
        ('[pipelines.local-rag.docs]\npool = "local-rag"\ntop_k = 0\n', "top_k = 0: must be"),
        (
            '[pipelines.tiny.mood]\npool = "tiny-llm"\nkind = "analyse"\nlabels = ["a"]\n'
            "max_tokens = 0\n",
            "[pipelines.tiny.mood]: max_tokens = 0: must be 1 or more",
        ),
    ],
)
def test_a_stage_parameter_out_of_range_is_refused(tmp_path: Path, toml: str, named: str) -> None:
    assert named in refused(tmp_path, toml)


def test_an_unknown_stage_parameter_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    message = refused(tmp_path, '[pipelines.tiny.llm]\npool = "tiny-llm"\nnosuchparam = 1\n')
    assert message == (
        "[pipelines.tiny.llm]: unknown parameter 'nosuchparam' (known for kind llm: pool, "
        "kind, inputs, system_prompt, temperature, max_tokens, history_turns, vision, "
        "options); an engine's own settings go in options = { ... }"
    )
    message = refused(tmp_path, '[pipelines.tiny.stt]\npool = "tiny-stt"\nbeam = 5\n')
    assert message == (
        "[pipelines.tiny.stt]: unknown parameter 'beam' "
        "(known for kind stt: pool, kind, inputs, language, prompt)"
    )


def test_every_parameter_the_server_reads_is_declared() -> None:
    declared = {key for params in PARAMS.values() for key in params}
    read = set()
    for module in SERVER.glob("*.py"):
        read |= set(re.findall(r"params\.get\(\s*\"(\w+)\"", module.read_text()))
    assert read, "no params.get(...) found in server/"
    assert read <= declared, f"read by the server, not declared: {sorted(read - declared)}"
