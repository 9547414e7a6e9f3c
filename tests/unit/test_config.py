"""load_config: bundled defaults, a user TOML merged over them, typed env overrides, and
ConfigError messages that name the culprit."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from parley.config import DEFAULTS_FILE, Config, load_config
from parley.errors import ConfigError, ParleyError

STAGES = ("stt", "llm", "tts")


@pytest.fixture(autouse=True)
def _no_cwd_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # load_config(None) picks up ./parley.toml: run every test where there is none.
    monkeypatch.chdir(tmp_path)


def load(tmp_path: Path, toml: str | None = None, **env: str) -> Config:
    env.setdefault("PARLEY_HOME", str(tmp_path / "home"))
    path = None
    if toml is not None:
        path = tmp_path / "user.toml"
        path.write_text(toml)
    return load_config(path, env)


# --------------------------------------------------------------------------- defaults


def test_defaults_load_with_every_bundled_pipeline(tmp_path: Path) -> None:
    config = load(tmp_path)
    bundled = tomllib.loads(DEFAULTS_FILE.read_text())
    assert set(config.pipelines) == set(bundled["pipelines"])
    assert {"tiny", "local", "openai", "instant"} <= set(config.pipelines)
    assert config.server.port == 50051
    assert config.server.default_pipeline == "tiny"
    assert config.vad.min_silence_ms == 500
    assert config.pipeline(config.server.default_pipeline).name == "tiny"


@pytest.mark.parametrize("pipeline", ["tiny", "local", "openai", "instant"])
def test_bundled_pipelines_reference_pools_of_the_right_stage(
    tmp_path: Path, pipeline: str
) -> None:
    config = load(tmp_path)
    spec = config.pipeline(pipeline)
    for stage in STAGES:
        pool = config.pool(spec.stage(stage).pool)
        assert pool.stage == stage, f"{pipeline}.{stage} uses {pool.name} ({pool.stage})"
        assert pool.addresses, pool.name


def test_stage_params_exclude_the_pool_key(tmp_path: Path) -> None:
    llm = load(tmp_path).pipeline("tiny").llm
    assert llm.pool == "tiny-llm"
    assert "pool" not in llm.params
    assert llm.params["max_tokens"] == 48
    assert llm.params["system_prompt"] == "Once upon a time"


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.port = 1  # type: ignore[misc]


def test_models_placeholder_expands_under_parley_home(tmp_path: Path) -> None:
    home = tmp_path / "elsewhere"
    config = load(tmp_path, PARLEY_HOME=str(home))
    assert config.home == home
    assert config.models_dir == home / "models"
    assert config.pool("tiny-llm").options["model"] == f"{home}/models/tiny/stories260K.gguf"
    assert config.pool("local-stt").options["model"] == f"{home}/models/faster-whisper-base.en"
    assert config.database_url == f"sqlite:///{home / 'parley.db'}"
    assert config.data_dir == home / "data"


def test_models_placeholder_expands_in_user_pool_lists(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[pools.tiny-tts]
options = { model = "{models}/v.onnx", extra = ["{home}/a", 3] }
""",
    )
    home = tmp_path / "home"
    options = config.pool("tiny-tts").options
    assert options["model"] == f"{home}/models/v.onnx"
    assert options["extra"] == [f"{home}/a", 3]


def test_parley_config_env_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "from-env.toml"
    path.write_text("[server]\nport = 7001\n")
    config = load_config(None, {"PARLEY_HOME": str(tmp_path), "PARLEY_CONFIG": str(path)})
    assert config.server.port == 7001


def test_parley_toml_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "parley.toml").write_text("[server]\nport = 7002\n")
    assert load_config(None, {"PARLEY_HOME": str(tmp_path)}).server.port == 7002


# --------------------------------------------------------------------------- user TOML


def test_user_toml_merges_over_defaults(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[server]
port = 6100

[pools.tiny-stt]
addresses = ["10.0.0.2:50061", "10.0.0.3:50061"]

[pools.remote-llm]
stage = "llm"
engine = "openai"
addresses = "10.0.0.9:50082"
local = false

[pipelines.mixed]
description = "tiny ears, remote brain"
stt = { pool = "tiny-stt", language = "de" }
llm = { pool = "remote-llm", temperature = 0.1 }
tts = { pool = "tiny-tts" }
""",
    )
    assert config.server.port == 6100
    assert config.server.host == "127.0.0.1"  # untouched keys keep their defaults
    stt = config.pool("tiny-stt")
    assert stt.addresses == ("10.0.0.2:50061", "10.0.0.3:50061")
    # The rest of the overridden pool still comes from defaults.toml.
    assert stt.engine == "faster_whisper"
    assert stt.stage == "stt"
    assert stt.options["compute_type"] == "float32"
    remote = config.pool("remote-llm")
    assert remote.addresses == ("10.0.0.9:50082",)  # a single string becomes a tuple
    assert remote.local is False
    mixed = config.pipeline("mixed")
    assert mixed.description == "tiny ears, remote brain"
    assert (mixed.stt.pool, mixed.llm.pool, mixed.tts.pool) == (
        "tiny-stt",
        "remote-llm",
        "tiny-tts",
    )
    assert mixed.stt.params == {"language": "de"}
    assert mixed.llm.params == {"temperature": 0.1}
    assert set(config.pipelines) >= {"tiny", "local", "openai", "instant", "mixed"}


# --------------------------------------------------------------------------- env


def test_env_overrides_are_typed(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        PARLEY_SERVER_PORT="6000",
        PARLEY_VAD_MIN_SILENCE_MS="300",
        PARLEY_VAD_THRESHOLD="0.6",
        PARLEY_STORE_DATABASE_URL="postgresql://db/parley",
        PARLEY_EDGE_TOKEN="s3cret",
    )
    assert config.server.port == 6000
    assert isinstance(config.server.port, int)
    assert config.vad.min_silence_ms == 300
    assert isinstance(config.vad.min_silence_ms, int)
    assert config.vad.threshold == 0.6
    assert config.database_url == "postgresql://db/parley"
    assert config.edge.token == "s3cret"


def test_env_wins_over_user_toml(tmp_path: Path) -> None:
    config = load(tmp_path, "[server]\nport = 7000\n", PARLEY_SERVER_PORT="6000")
    assert config.server.port == 6000


# --------------------------------------------------------------------------- errors


def error(tmp_path: Path, toml: str | None = None, **env: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml, **env)
    assert isinstance(info.value, ParleyError)
    return str(info.value)


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    message = error(tmp_path, PARLEY_SERVER_PORT="abc")
    assert "PARLEY_SERVER_PORT" in message
    assert "'abc'" in message
    assert "int" in message


def test_unknown_env_key_names_the_variable_and_known_keys(tmp_path: Path) -> None:
    message = error(tmp_path, PARLEY_SERVER_NOPE="1")
    assert "PARLEY_SERVER_NOPE" in message
    assert "'nope'" in message
    assert "port" in message  # lists the known settings


def test_bad_toml_value_names_the_section(tmp_path: Path) -> None:
    message = error(tmp_path, '[vad]\nmin_silence_ms = "soon"\n')
    assert "[vad]" in message
    assert "min_silence_ms" in message


def test_unknown_toml_key_names_the_section(tmp_path: Path) -> None:
    message = error(tmp_path, "[edge]\nspeaker = 1\n")
    assert "[edge]" in message
    assert "'speaker'" in message


def test_unknown_section_is_named(tmp_path: Path) -> None:
    message = error(tmp_path, "[bogus]\nx = 1\n")
    assert "bogus" in message
    assert "section" in message


def test_pipeline_naming_an_unknown_pool(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        """
[pipelines.broken]
stt = { pool = "no-such-pool" }
llm = { pool = "tiny-llm" }
tts = { pool = "tiny-tts" }
""",
    )
    assert "pipelines.broken.stt" in message
    assert "no-such-pool" in message


def test_pipeline_naming_a_pool_of_the_wrong_stage(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        """
[pipelines.crossed]
stt = { pool = "tiny-stt" }
llm = { pool = "tiny-tts" }
tts = { pool = "tiny-tts" }
""",
    )
    assert "pipelines.crossed.llm" in message
    assert "tiny-tts" in message
    assert "serves tts, not llm" in message


def test_pipeline_missing_a_stage(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        '[pipelines.short]\nstt = { pool = "tiny-stt" }\nllm = { pool = "tiny-llm" }\n',
    )
    assert "pipelines.short.tts" in message
    assert "pool" in message


def test_pool_with_a_bad_stage(tmp_path: Path) -> None:
    message = error(
        tmp_path, '[pools.odd]\nstage = "vision"\nengine = "x"\naddresses = ["127.0.0.1:1"]\n'
    )
    assert "pools.odd" in message
    assert "'vision'" in message


def test_pool_missing_engine(tmp_path: Path) -> None:
    message = error(tmp_path, '[pools.odd]\nstage = "stt"\naddresses = ["127.0.0.1:1"]\n')
    assert "pools.odd" in message
    assert "'engine'" in message


def test_pool_with_no_addresses(tmp_path: Path) -> None:
    message = error(tmp_path, "[pools.tiny-stt]\naddresses = []\n")
    assert "pools.tiny-stt" in message
    assert "addresses" in message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    message = error(tmp_path, "[server\nport = = 1\n")
    assert str(tmp_path / "user.toml") in message


def test_missing_config_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(missing, {"PARLEY_HOME": str(tmp_path)})
    assert str(missing) in str(info.value)


def test_bad_default_pipeline_fails_early(tmp_path: Path) -> None:
    message = error(tmp_path, PARLEY_SERVER_DEFAULT_PIPELINE="ghost")
    assert "'ghost'" in message


def test_unknown_pipeline_lists_the_known_ones(tmp_path: Path) -> None:
    config = load(tmp_path)
    with pytest.raises(ConfigError) as info:
        config.pipeline("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in ("instant", "local", "openai", "tiny"):
        assert name in message


def test_unknown_pool_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'ghost'"):
        load(tmp_path).pool("ghost")


def test_float_for_an_int_setting_is_rejected(tmp_path: Path) -> None:
    # An int setting does not silently truncate a TOML float (6000.7 -> 6000).
    message = error(tmp_path, "[server]\nport = 6000.7\n")
    assert "[server]" in message
    assert "port" in message
    assert "int" in message


# --------------------------------------------------------------------------- [annotation]


def test_annotation_questions_are_parsed_with_their_defaults(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[annotation]
context_turns = 5
[annotation.questions.politeness]
kind = "ordinal"
scale = [1, 3]
rubric = { 1 = "rude", 3 = "warm" }
stage = "llm"
[annotation.questions.emotion]
kind = "categorical"
choices = ["neutral", "happy"]
bind = "emotion.label"
pipelines = "local"
[annotation.questions.note]
kind = "text"
""",
    )
    questions = {q.key: q for q in config.annotation.questions}
    assert config.annotation.context_turns == 5
    polite = questions["politeness"]
    assert (polite.low, polite.high, polite.rubric) == (1, 3, ("rude", "", "warm"))
    assert polite.values == ("1", "2", "3") and polite.required and polite.label == "politeness"
    emotion = questions["emotion"]
    assert (emotion.bind, emotion.pipelines, emotion.values) == (
        "emotion.label",
        ("local",),
        ("neutral", "happy"),
    )
    assert questions["note"].required is False  # free text is optional by default
    assert load(tmp_path).annotation.questions == ()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[annotation.questions.x]\nkind = "slider"', "kind must be one of"),
        ('[annotation.questions.Bad-Key]\nkind = "boolean"', "a question key is"),
        ('[annotation.questions.comment]\nkind = "boolean"', "not one of"),
        ('[annotation.questions.x]\nkind = "boolean"\ncolour = "red"', "unknown setting(s) colour"),
        ('[annotation.questions.x]\nkind = "ordinal"\nscale = [0, 20]', "2 to 11 values"),
        ('[annotation.questions.x]\nkind = "ordinal"\nrubric = ["a", "b"]', "one text per value"),
        ('[annotation.questions.x]\nkind = "categorical"\nchoices = ["a"]', "2 to 20 different"),
        (
            '[annotation.questions.x]\nkind = "categorical"\nchoices = ["a", "b"]\n'
            'multiple = true\nbind = "e.label"',
            "bind works with single-label",
        ),
        ('[annotation.questions.x]\nkind = "boolean"\nbind = "e.label"', "bind works"),
        ('[annotation.questions.x]\nkind = "boolean"\nrequired = "yes"', "required must be"),
        ("[annotation]\ncontext_turns = -1", "context_turns"),
        ("[annotation]\nquestion = 1", "unknown setting(s) question"),
    ],
)
def test_bad_annotation_questions_name_the_culprit(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(tmp_path, toml)


# --------------------------------------------------------------------------- [turn] errors


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[pipelines.tiny.turn]\nthreshold = 1.5\n",
            "[pipelines.tiny.turn] threshold = 1.5: must be from 0 to 1",
        ),
        (
            '[pipelines.tiny.turn]\nstrategy = "guess"\n',
            "[pipelines.tiny.turn] strategy must be one of",
        ),
        (
            "[pipelines.tiny.turn]\ncheck_after_ms = 2000\n",  # over the global max_silence_ms
            "[pipelines.tiny.turn] max_silence_ms = 1500 must be at least check_after_ms = 2000",
        ),
    ],
)
def test_a_pipelines_turn_error_has_one_prefix(tmp_path: Path, toml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml)
    message = str(info.value)
    assert message.startswith(expected), message
    assert "[turn]" not in message


def test_max_silence_below_check_after_names_both_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "[turn]\ncheck_after_ms = 300\nmax_silence_ms = 200\n")
    assert str(info.value) == ("[turn] max_silence_ms = 200 must be at least check_after_ms = 300")
