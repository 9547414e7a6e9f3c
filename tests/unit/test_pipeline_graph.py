"""Pipelines as graphs: the default wiring of the common shapes, explicit inputs, and
the refusals (cycle, missing input, unknown kind) that name the stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.config import Config, PipelineConfig, StageConfig, load_config
from parley.errors import ConfigError
from server.latency import TurnLatency

POOLS = """
[pools.t-stt]
stage = "stt"
engine = "x"
addresses = ["127.0.0.1:1"]
[pools.t-llm]
stage = "llm"
engine = "x"
addresses = ["127.0.0.1:2"]
[pools.t-tts]
stage = "tts"
engine = "x"
addresses = ["127.0.0.1:3"]
[pools.t-speech]
stage = "speech_llm"
engine = "x"
addresses = ["127.0.0.1:4"]
[pools.t-docs]
stage = "retrieve"
engine = "x"
addresses = ["127.0.0.1:5"]
[pools.t-emotion]
stage = "analyse"
engine = "x"
addresses = ["127.0.0.1:6"]
[pools.t-caption]
stage = "caption"
engine = "x"
addresses = ["127.0.0.1:7"]
"""


@pytest.fixture(autouse=True)
def _no_cwd_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(tmp_path: Path, pipelines: str) -> Config:
    path = tmp_path / "user.toml"
    path.write_text(POOLS + pipelines)
    return load_config(path, {"PARLEY_HOME": str(tmp_path / "home")})


def wiring(config: Config, name: str) -> dict[str, tuple[str, tuple[str, ...] | None]]:
    return {k: (s.kind, s.inputs) for k, s in config.pipeline(name).stages.items()}


def refused(tmp_path: Path, pipelines: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, pipelines)
    return str(caught.value)


def test_common_shapes_need_no_wiring(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[pipelines.rag]
stt = { pool = "t-stt" }
docs = { pool = "t-docs" }
mood = { pool = "t-emotion", context = "Mood: {label}" }
quiet = { pool = "t-emotion" }
llm = { pool = "t-llm" }
tts = { pool = "t-tts" }
[pipelines.voice]
speech_llm = { pool = "t-speech" }
[pipelines.hybrid]
speech_llm = { pool = "t-speech" }
tts = { pool = "t-tts" }
[pipelines.seeing]
caption = { pool = "t-caption" }
speech_llm = { pool = "t-speech" }
""",
    )
    assert wiring(config, "rag") == {
        "stt": ("stt", ()),
        "docs": ("retrieve", ("stt",)),
        "mood": ("analyse", ()),
        "quiet": ("analyse", ()),
        "llm": ("llm", ("stt", "docs", "mood")),  # not quiet: it has no context template
        "tts": ("tts", ("llm",)),
    }
    assert wiring(config, "voice") == {"speech_llm": ("speech_llm", ())}
    assert config.pipeline("voice").tts is None and config.pipeline("voice").stt is None
    assert wiring(config, "hybrid")["tts"] == ("tts", ("speech_llm",))
    assert wiring(config, "seeing") == {
        "caption": ("caption", ()),
        "speech_llm": ("speech_llm", ("caption",)),
    }
    assert config.pipeline("seeing").answer.name == "speech_llm"


def test_existing_pipelines_keep_their_shape(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    for name in ("tiny", "local", "openai", "instant"):
        pipeline = config.pipeline(name)
        assert wiring(config, name) == {
            "stt": ("stt", ()),
            "llm": ("llm", ("stt",)),
            "tts": ("tts", ("llm",)),
        }
        assert (pipeline.stt, pipeline.llm, pipeline.tts) == tuple(
            pipeline.stages[k] for k in ("stt", "llm", "tts")
        )
    # The classic constructor still works and gets the same graph.
    built = PipelineConfig("p", stt=StageConfig("a"), llm=StageConfig("b"), tts=StageConfig("c"))
    assert [s.inputs for s in built.stages.values()] == [(), ("stt",), ("llm",)]


def test_bundled_example_pipelines_are_wired(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert wiring(config, "local-emotion")["llm"] == ("llm", ("stt", "emotion"))
    assert wiring(config, "local-rag")["llm"] == ("llm", ("stt", "docs"))
    assert wiring(config, "openai-voice") == {"speech_llm": ("speech_llm", ())}
    assert wiring(config, "caption-voice")["speech_llm"] == ("speech_llm", ("caption",))
    assert config.pipeline("openai-vision").llm.params["vision"] is True


def test_explicit_inputs_replace_the_default(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[pipelines.p]
stt = { pool = "t-stt" }
docs = { pool = "t-docs" }
llm = { pool = "t-llm", inputs = ["stt"] }
tts = { pool = "t-tts" }
""",
    )
    assert wiring(config, "p")["llm"] == ("llm", ("stt",))


def test_a_cycle_is_refused_naming_the_stage(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        """
[pipelines.loop]
stt = { pool = "t-stt" }
docs = { pool = "t-docs", inputs = ["stt", "llm"] }
llm = { pool = "t-llm", inputs = ["stt", "docs"] }
tts = { pool = "t-tts" }
""",
    )
    assert "cycle" in message
    assert "[pipelines.loop.docs]" in message or "[pipelines.loop.llm]" in message
    assert "docs" in message and "llm" in message


def test_an_input_naming_no_stage_is_refused(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        """
[pipelines.p]
stt = { pool = "t-stt" }
llm = { pool = "t-llm", inputs = ["stt", "notes"] }
tts = { pool = "t-tts" }
""",
    )
    assert "[pipelines.p.llm]" in message and "'notes'" in message


def test_a_missing_input_is_refused_naming_the_stage(tmp_path: Path) -> None:
    no_transcript = refused(
        tmp_path,
        """
[pipelines.p]
docs = { pool = "t-docs" }
speech_llm = { pool = "t-speech" }
""",
    )
    assert "[pipelines.p.docs]" in no_transcript and "missing input" in no_transcript
    assert "stt" in no_transcript
    no_tts = refused(
        tmp_path, '[pipelines.q]\nstt = { pool = "t-stt" }\nllm = { pool = "t-llm" }\n'
    )
    assert "[pipelines.q.tts]" in no_tts and "missing" in no_tts


def test_an_unknown_kind_is_refused_naming_the_stage(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        """
[pipelines.p]
stt = { pool = "t-stt" }
feel = { pool = "t-emotion", kind = "emote" }
llm = { pool = "t-llm" }
tts = { pool = "t-tts" }
""",
    )
    assert "[pipelines.p.feel]" in message and "unknown kind 'emote'" in message
    with pytest.raises(ConfigError, match=r"\[pipelines.x.feel\]: unknown kind 'emote'"):
        PipelineConfig(
            "x",
            stages={
                "stt": StageConfig("a"),
                "feel": StageConfig("b", kind="emote"),
                "llm": StageConfig("c"),
                "tts": StageConfig("d"),
            },
        )


def test_a_stage_named_like_the_vads_stored_bounds_is_refused(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        """
[pipelines.p]
stt = { pool = "t-stt" }
vad = { pool = "t-emotion" }
llm = { pool = "t-llm" }
tts = { pool = "t-tts" }
""",
    )
    assert "[pipelines.p.vad]" in message and "reserved" in message


def test_a_kind_its_pool_does_not_serve_is_refused(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        """
[pipelines.p]
stt = { pool = "t-stt" }
docs = { pool = "t-emotion", kind = "retrieve" }
llm = { pool = "t-llm" }
tts = { pool = "t-tts" }
""",
    )
    assert "[pipelines.p.docs]" in message and "serves analyse, not retrieve" in message


def test_two_answer_stages_are_refused(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        """
[pipelines.p]
stt = { pool = "t-stt" }
llm = { pool = "t-llm" }
speech_llm = { pool = "t-speech" }
tts = { pool = "t-tts" }
""",
    )
    assert "[pipelines.p]" in message and "exactly one answer stage" in message


def test_an_analyse_stage_may_run_on_an_llm_pool_and_reads_the_transcript(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[pipelines.p]
stt = { pool = "t-stt" }
sentiment = { pool = "t-llm", kind = "analyse", labels = ["a", "b"] }
llm = { pool = "t-llm" }
tts = { pool = "t-tts" }
""",
    )
    stage = config.pipeline("p").stage("sentiment")
    assert (stage.kind, stage.inputs, stage.params["on"]) == ("analyse", ("stt",), "transcript")


# --------------------------------------------------------------------------- latency


def test_the_critical_path_follows_the_inputs_that_were_ready_last() -> None:
    t0 = 100.0
    turn = TurnLatency(decision_at=t0)
    turn.segments = {
        "stt": (None, "stt_done"),
        "analyse": (None, "analyse_done"),  # off the path: finished before the transcript
        "retrieve": ("stt_done", "retrieve_done"),
        "llm": ("retrieve_done", "first_sentence"),
        "tts": ("first_sentence", "tts_first_audio"),
        "send": ("tts_first_audio", "first_audio_sent"),
    }
    turn.marks = {
        "analyse_done": t0 + 0.05,
        "stt_done": t0 + 0.1,
        "retrieve_done": t0 + 0.15,
        "first_sentence": t0 + 0.3,
        "tts_first_audio": t0 + 0.4,
        "first_audio_sent": t0 + 0.41,
    }
    turn.model = {"stt": 0.08, "analyse": 0.04, "retrieve": 0.03, "llm": 0.1, "tts": 0.07}
    out = turn.record()
    assert turn.critical_path() == ["stt", "retrieve", "llm", "tts", "send"]
    assert out["retrieve_ms"] == pytest.approx(50.0)
    assert out["retrieve_overhead_ms"] == pytest.approx(20.0)
    assert out["analyse_ms"] == pytest.approx(50.0) and out["analyse_overhead_ms"] == pytest.approx(
        10.0
    )
    path = ("stt", "retrieve", "llm", "tts", "send")
    assert out["overhead_ms"] == pytest.approx(sum(out[f"{k}_overhead_ms"] for k in path))
    assert sum(out[f"{k}_ms"] for k in path) == pytest.approx(out["first_audio_sent_ms"])
    del turn.marks["retrieve_done"]  # a broken chain has no path and no overhead figure
    assert turn.critical_path() == [] and "overhead_ms" not in turn.record()
