"""Replay over the real Converse path: datasets imported from a folder, streamed by the
headless edge to a real server and real workers on loopback, stored as normal turns,
linked to runs, and compared."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parley import db
from parley.audio import write_wav
from research.compare import compare
from research.importing import create_dataset
from research.manifests import read_folder
from research.replay import ReplayRefused
from research.runs import open_run
from tests.engines.conftest import tiny_engines
from tests.research.conftest import (
    CLIPS,
    DATA,
    CountingLlm,
    ResearchStack,
    SpeechLengthStt,
    copy_clips,
)
from workers.engines import LlmRequest, TextDelta
from workers.errors import EngineError
from workers.instant import InstantLlmEngine, InstantSttEngine, InstantTtsEngine

# References against the instant STT's "what does instant mean": 0/4, 1/4 (a
# substitution), 1/3 (an insertion), 1/5 (a deletion) word errors; the last clip has
# none. Corpus WER = 3 / 16.
REFERENCES = (
    "What does instant mean?",
    "what does it mean",
    "what instant mean",
    "what does instant mean now",
    "",
)
TAGS = ("lamp", "lamp", "jfk", "jfk", "jfk")
INSTANT_WER = 3 / 16


def instant() -> dict[str, Any]:
    return {"stt": InstantSttEngine(), "llm": InstantLlmEngine(), "tts": InstantTtsEngine()}


def import_recordings(folder: Path, config: Any, name: str = "clips") -> db.Dataset:
    manifest = folder.parent / f"{folder.name}-refs.tsv"
    lines = ["file\treference\ttags"]
    lines += [f"{c.name}\t{r}\t{t}" for c, r, t in zip(CLIPS, REFERENCES, TAGS, strict=True)]
    manifest.write_text("\n".join(lines) + "\n")
    layout, rows = read_folder(folder, manifest)
    assert layout == "table"
    with db.database.connection_context():
        return create_dataset(name, rows, config.data_dir, source="test")


def one_clip_dataset(recordings: Path, tmp_path: Path, config: Any, name: str) -> db.Dataset:
    _, rows = read_folder(copy_clips(recordings, tmp_path / "one", CLIPS[:1]))
    with db.database.connection_context():
        return create_dataset(name, rows, config.data_dir, source="test")


def turn(turn_id: str) -> db.Turn:
    with db.database.connection_context():
        return db.Turn.get_by_id(turn_id)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.slow
async def test_a_folder_replayed_through_instant_and_tiny_gives_paired_items_and_wer(
    research_stack: ResearchStack,
    recordings: Path,
    tiny_models: dict[str, Path],
    offline: None,
):
    tiny = await tiny_engines(tiny_models)
    config = await research_stack.start(
        {"instant": instant(), "tiny": tiny},
        params={"tiny": {"llm": {"max_tokens": 12, "history_turns": 2}}},
    )
    dataset = import_recordings(recordings, config)

    tallies = await research_stack.replay(dataset, ["instant", "tiny"], run="cmp")

    assert [(t.run, t.done, t.failed) for t in tallies] == [
        ("cmp-instant", 5, 0),
        ("cmp-tiny", 5, 0),
    ]
    with db.database.connection_context():
        result = compare(["cmp-instant", "cmp-tiny"])
        runs = {r.name: r for r in db.Run.select()}
        conversations = {c.id: c for c in db.Conversation.select()}
    assert [r["name"] for r in result["runs"]] == ["cmp-instant", "cmp-tiny"]
    assert result["items_total"] == 5
    seconds = []
    for clip, reference, row in zip(CLIPS, REFERENCES, result["items"], strict=True):
        assert row["key"] == Path(clip.name).stem
        assert row["reference_transcript"] == reference
        made = {}
        for name, got in row["runs"].items():
            assert got["status"] == "done", got
            stored = turn(got["turn_id"])
            # A normal turn of its pipeline, with its audio, in its own conversation.
            assert stored.pipeline == runs[name].pipeline
            assert stored.status == "done"
            assert conversations[stored.conversation_id].pipeline == stored.pipeline
            assert (stored.transcript, stored.response) == (got["transcript"], got["response"])
            assert got["trace_id"] == stored.trace_id != ""
            with db.database.connection_context():
                kinds = sorted(m.kind for m in db.Media.select().where(db.Media.turn == stored.id))
            assert kinds == ["input", "output"]
            made[name] = stored.speech_seconds
        # Both runs' turns of this row came from this recording: the speech the server
        # heard in it (pre- and post-roll: 0.26 s) is this clip's, in either pipeline.
        assert made["cmp-instant"] == pytest.approx(made["cmp-tiny"], abs=0.03)
        assert made["cmp-instant"] == pytest.approx(clip.speech_s + 0.26, abs=0.1)
        seconds.append(made["cmp-instant"])
    assert np.diff(seconds).min() > 0.1  # distinct recordings, in dataset order

    instant_summary, tiny_summary = result["summary"]
    assert instant_summary["wer"] == pytest.approx(INSTANT_WER, abs=1e-6)
    assert instant_summary["reference_items"] == 4
    jiwer = pytest.importorskip("jiwer")
    from admin.transcripts import normalise

    refs = [normalise(r) for r in REFERENCES[:4]]
    assert instant_summary["cer"] == pytest.approx(
        jiwer.cer(refs, ["what does instant mean"] * 4), abs=1e-6
    )
    tiny_rows = [row["runs"]["cmp-tiny"] for row in result["items"][:4]]
    assert tiny_summary["wer"] == pytest.approx(
        jiwer.wer(refs, [normalise(r["transcript"]) or "" for r in tiny_rows]), abs=1e-6
    )
    for summary in (instant_summary, tiny_summary):
        assert summary["done"] == 5
        assert [s["stage"] for s in summary["stages"]] == ["stt", "llm", "tts", "send"]
        assert summary["stages"][0]["model"]["n"] == 5
        assert summary["latency"]["first_audio_ms"]["n"] == 5
        assert summary["latency"]["voice_to_voice_ms"] == {"n": 0}  # fast pace
    paired = {p["metric"]: p for p in result["paired"]}
    assert paired["wer"]["n"] == 4 and paired["first_audio_ms"]["n"] == 5
    assert sum(paired["wer"][k] for k in ("a_better", "ties", "b_better")) == 4

    with db.database.connection_context():
        assert compare(["cmp-instant", "cmp-tiny"], tag="lamp")["items_total"] == 2
    snapshot = runs["cmp-tiny"].config
    assert snapshot["pipeline"]["name"] == "tiny"
    assert snapshot["pools"]["tiny-llm"]["stage"] == "llm"
    assert runs["cmp-tiny"].git_revision  # this checkout is a git repository
    assert runs["cmp-tiny"].dataset_id == dataset.id and runs["cmp-tiny"].pace == "fast"


async def test_a_conversation_replays_in_order_with_each_pipelines_own_history(
    research_stack: ResearchStack, recordings: Path, tmp_path: Path
):
    llms = {"alpha": CountingLlm("Alpha"), "beta": CountingLlm("Beta")}
    pipelines = {
        name: {"stt": SpeechLengthStt(), "llm": llm, "tts": InstantTtsEngine()}
        for name, llm in llms.items()
    }
    config = await research_stack.start(
        pipelines, params={name: {"llm": {"history_turns": 4}} for name in pipelines}
    )
    # A conversation listed out of order, one of its items with a camera frame, and a
    # single item after it.
    lines = [
        {"file": CLIPS[3].name, "conversation": "kitchen", "position": 2},
        {"file": CLIPS[0].name, "conversation": "kitchen", "position": 0},
        {
            "file": CLIPS[2].name,
            "conversation": "kitchen",
            "position": 1,
            "frames": ["frame-a.jpg"],
        },
        {"file": CLIPS[1].name},
    ]
    manifest = tmp_path / "conversation.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines))
    folder = copy_clips(recordings, tmp_path / "folder", CLIPS[:4])
    (folder / "frame-a.jpg").write_bytes((DATA / "frames" / "frame-a.jpg").read_bytes())
    _, rows = read_folder(folder, manifest)
    with db.database.connection_context():
        dataset = create_dataset("talk", rows, config.data_dir, source="test")

    tallies = await research_stack.replay(dataset, ["alpha", "beta"], run="talk", concurrency=1)
    assert [(t.done, t.failed, t.errors) for t in tallies] == [(4, 0, []), (4, 0, [])]

    with db.database.connection_context():
        for name, llm in llms.items():
            run = db.Run.get(db.Run.name == f"talk-{name}")
            results = {
                r.item.key: r
                for r in db.RunItem.select().where(db.RunItem.run == run).join(db.DatasetItem)
            }
            ordered = [results[Path(CLIPS[i].name).stem] for i in (0, 2, 3)]
            turns = [db.Turn.get_by_id(r.turn_id) for r in ordered]
            # One conversation, turns in the conversation's order, each from its clip.
            assert len({t.conversation_id for t in turns}) == 1
            assert [t.position for t in turns] == [0, 1, 2]
            for t, clip in zip(turns, (CLIPS[0], CLIPS[2], CLIPS[3]), strict=True):
                assert t.speech_seconds == pytest.approx(clip.speech_s + 0.26, abs=0.1)
            # Each turn's LLM request carried the earlier turns, as this pipeline answered.
            for k, t in enumerate(turns):
                request = next(r for r in llm.requests if r.messages[-1].content == t.transcript)
                history = [(m.role, m.content) for m in request.messages[:-1]]
                earlier = [(e.transcript, e.response.strip()) for e in turns[:k]]
                expected = [x for u, a in earlier for x in (("user", u), ("assistant", a))]
                assert [(r, c.strip()) for r, c in history if r != "system"] == expected
                assert all(a.startswith(llm.name) for _, a in earlier)
            single = db.Turn.get_by_id(results[Path(CLIPS[1].name).stem].turn_id)
            request = next(r for r in llm.requests if r.messages[-1].content == single.transcript)
            assert [m.role for m in request.messages if m.role != "system"] == ["user"]
            frames = db.Media.select().where(
                (db.Media.turn == turns[1].id) & (db.Media.kind == "frame")
            )
            assert frames.count() == 1
            with (config.data_dir / frames.get().path).open("rb") as fh:
                assert fh.read() == (DATA / "frames" / "frame-a.jpg").read_bytes()


class FailingSecondLlm(InstantLlmEngine):
    """The instant LLM, except that its second call fails."""

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, request: LlmRequest) -> AsyncIterator[TextDelta]:
        self.calls += 1
        if self.calls == 2:
            raise EngineError("the model fell over")
        async for delta in super().run(request):
            yield delta


async def test_failed_items_are_recorded_and_a_resumed_run_repeats_nothing_done(
    research_stack: ResearchStack, recordings: Path, tmp_path: Path
):
    engines = {"stt": InstantSttEngine(), "llm": FailingSecondLlm(), "tts": InstantTtsEngine()}
    config = await research_stack.start({"instant": engines})
    folder = copy_clips(recordings, tmp_path / "folder", CLIPS[:3])
    write_wav(folder / "zz-silence.wav", bytes(2 * 16000 * 2), 16000)  # 2 s of nothing
    _, rows = read_folder(folder)
    with db.database.connection_context():
        dataset = create_dataset("resume", rows, config.data_dir, source="test")

    def state() -> tuple[int, dict[str, tuple[str, str, str | None]]]:
        with db.database.connection_context():
            turns = db.Turn.select().count()
            items = {
                r.item.key: (r.status, r.error, r.turn_id)
                for r in db.RunItem.select().join(db.DatasetItem)
            }
        return turns, items

    first = await research_stack.replay(dataset, ["instant"], run="r", concurrency=1)
    assert (first[0].done, first[0].failed) == (2, 2)
    turns, items = state()
    assert turns == 3  # the silent recording made no turn
    assert items["zz-silence"] == ("failed", "no speech detected", None)
    failed = [k for k, v in items.items() if v[0] == "failed" and k != "zz-silence"]
    assert len(failed) == 1 and "the model fell over" in items[failed[0]][1]
    assert items[failed[0]][1].startswith("llm: ")

    again = await research_stack.replay(dataset, ["instant"], run="r", concurrency=1)
    assert (again[0].skipped, again[0].done, again[0].failed) == (2, 1, 1)
    turns_after, items_after = state()
    assert turns_after == turns + 1  # only the failed item was spoken again
    for key, (status, _, turn_id) in items.items():
        if status == "done":
            assert items_after[key] == (status, "", turn_id)  # untouched
    assert items_after[failed[0]][0] == "done"

    # A run cut short: one item's result is gone; resuming replays that item alone.
    with db.database.connection_context():
        lost = db.RunItem.get(db.RunItem.item == db.DatasetItem.get(key=failed[0]).id)
        lost.delete_instance()
    third = await research_stack.replay(dataset, ["instant"], run="r", concurrency=1)
    assert (third[0].skipped, third[0].done) == (2, 1)
    assert state()[0] == turns_after + 1


async def test_real_time_pace_records_voice_to_voice(
    research_stack: ResearchStack, recordings: Path, tmp_path: Path
):
    config = await research_stack.start({"instant": instant()})
    dataset = one_clip_dataset(recordings, tmp_path, config, "live")
    await research_stack.replay(dataset, ["instant"], run="live", fast=False)
    with db.database.connection_context():
        result = compare(["live"])
    summary = result["summary"][0]
    v2v = summary["latency"]["voice_to_voice_ms"]
    endpointing = summary["latency"]["endpointing_ms"]
    assert v2v["n"] == 1 and v2v["p50"] > endpointing["p50"] > 0
    row = result["items"][0]["runs"]["live"]
    assert row["voice_to_voice_ms"] == pytest.approx(v2v["p50"], abs=0.01)
    stored = turn(row["turn_id"])
    assert stored.latency["voice_to_voice_ms"] == pytest.approx(v2v["p50"], abs=0.01)


async def test_a_server_that_refuses_the_pipeline_stops_the_replay(
    research_stack: ResearchStack, recordings: Path, tmp_path: Path
):
    import dataclasses

    config = await research_stack.start({"instant": instant()})
    dataset = one_clip_dataset(recordings, tmp_path, config, "refused")
    # This side knows a pipeline "elsewhere" that the server does not have.
    ours = dataclasses.replace(
        config,
        pipelines={**config.pipelines, "elsewhere": config.pipelines["instant"]},
    )
    with db.database.connection_context():
        run, created = open_run("refused", dataset, "elsewhere", ours, "fast")
    assert created
    from parley.config import EdgeConfig
    from research.replay import Replayer, ReplayOptions

    edge = EdgeConfig(server=research_stack.address, device_id="test")
    with pytest.raises(ReplayRefused, match="unknown pipeline 'elsewhere'"):
        await Replayer(edge, config.data_dir, ReplayOptions(fast=True)).replay(dataset, [run])


async def test_a_recording_missing_from_the_store_fails_its_item_only(
    research_stack: ResearchStack, recordings: Path, tmp_path: Path
):
    config = await research_stack.start({"instant": instant()})
    _, rows = read_folder(copy_clips(recordings, tmp_path / "two", CLIPS[:2]))
    with db.database.connection_context():
        dataset = create_dataset("gone", rows, config.data_dir, source="test")
        first = db.DatasetItem.get(db.DatasetItem.position == 0)
    (config.data_dir / first.audio_path).unlink()
    (tally,) = await research_stack.replay(dataset, ["instant"], run="gone")
    assert (tally.done, tally.failed) == (1, 1)
    assert tally.errors[0].startswith(f"{first.key}: cannot read its recording")
