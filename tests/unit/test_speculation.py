"""The speculation module with a fake pipeline run: what is held, committed and
discarded, the counts, the latency record and the trace events. (The real path, over
gRPC with real workers, is tests/integration/test_speculation.py.)"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from protos import edge_pb2
from server.latency import TurnLatency
from server.outbox import Emit, OnSent
from server.pipeline import TurnInput, TurnResult
from server.playback import AnswerPlayback
from server.speculation import HeldEmit, Speculator
from server.turn_trace import TurnTrace
from server.turns import TurnEnded, TurnPaused

PAUSED = TurnPaused(start_sample=1000, end_sample=20000, audio_start_sample=0,
                    decided_sample=23200, check=0)  # fmt: skip


def event(text: str) -> edge_pb2.ServerEvent:
    return edge_pb2.ServerEvent(response=edge_pb2.ResponseText(turn_id="t", delta=text))


def ended(end: int) -> TurnEnded:
    return TurnEnded(1000, end, np.zeros(10, np.float32), 0, end + 8000)


class Sink:
    def __init__(self) -> None:
        self.events: list[edge_pb2.ServerEvent] = []

    def __call__(self, event: edge_pb2.ServerEvent, on_sent: OnSent | None = None) -> None:
        self.events.append(event)
        if on_sent is not None:
            on_sent()


class FakeRun:
    """A pipeline run: marks its first sentence and audio, emits, then waits forever."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.made = asyncio.Event()

    async def __call__(
        self, turn: TurnInput, latency: TurnLatency, emit: Emit, result: TurnResult
    ) -> None:
        latency.segments = {
            "stt": (None, "stt_done"),
            "tts": ("stt_done", "tts_first_audio"),
            "send": ("tts_first_audio", "first_audio_sent"),
        }
        latency.mark("stt_done")
        latency.use("stt", 0.010)
        latency.use("llm", 0.040, total=True)
        latency.mark("tts_first_audio")
        emit(event("Sure."), on_sent=lambda: latency.mark("first_audio_sent"))
        self.made.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


@pytest.fixture
def spans() -> tuple[TurnTrace, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace = TurnTrace(
        provider.get_tracer("test"),
        turn_id="t",
        session_id="s",
        device_id="d",
        pipeline="p",
        speech_started_ago_s=1.0,
    )
    return trace, exporter


def started(speculator: Speculator, run: FakeRun, sink: Sink, trace: TurnTrace | None = None):
    turn = TurnInput("t", b"", 16000, trace=trace)
    return speculator.start(PAUSED, turn, TurnResult(), sink, run)


def test_held_events_go_out_in_order_when_released_and_nothing_after_a_drop() -> None:
    sink = Sink()
    gate = HeldEmit(sink, holding=True)
    gate(event("a"))
    gate(event("b"))
    assert sink.events == []
    gate.release(keep=lambda e: e.response.delta != "a")
    gate(event("c"))  # released: straight through
    assert [e.response.delta for e in sink.events] == ["b", "c"]
    gate.hold()
    gate(event("d"))
    assert gate.drop() == 1
    gate(event("e"))
    gate.release()
    assert [e.response.delta for e in sink.events] == ["b", "c"]


async def test_a_discarded_speculation_is_cancelled_counted_and_traced(spans) -> None:
    trace, exporter = spans
    speculator, run, sink = Speculator(True), FakeRun(), Sink()
    started(speculator, run, sink, trace)
    await run.made.wait()
    assert speculator.discard("speech resumed") is not None
    await asyncio.wait_for(run.cancelled.wait(), 1)
    await speculator.close()
    assert sink.events == []  # nothing of it reached the edge
    counts = speculator.counts
    assert (counts.started, counts.committed, counts.discarded) == (1, 0, 1)
    assert counts.wasted_model_s == pytest.approx(0.050)
    assert "1 discarded (50 ms of model time wasted)" in counts.summary()
    assert speculator.figures() == {
        "speculations_discarded": 1.0,
        "speculation_model_wasted_ms": pytest.approx(50.0),
    }
    assert speculator.figures()["speculations_discarded"] == 0  # counted once per turn
    trace.finish(status="done", error="", latency_ms={})
    (turn,) = [s for s in exporter.get_finished_spans() if s.name == "turn"]
    names = [e.name for e in turn.events]
    assert names == ["speculation.started", "speculation.discarded"]
    discarded = turn.events[1].attributes or {}
    assert discarded["parley.speculation.reason"] == "speech resumed"
    assert discarded["parley.speculation.wasted_model_ms"] == pytest.approx(50.0)
    assert discarded["parley.speculation.events_dropped"] == 1


async def test_a_committed_speculation_sends_what_it_held_and_times_the_wait(spans) -> None:
    trace, exporter = spans
    speculator, run, sink = Speculator(True), FakeRun(), Sink()
    started(speculator, run, sink, trace)
    await run.made.wait()
    await asyncio.sleep(0.02)  # the turn is confirmed a little later
    spec = speculator.take(ended(PAUSED.end_sample))
    assert spec is not None and speculator.current is None
    answering = asyncio.create_task(spec.answer())
    await asyncio.sleep(0)
    assert [e.response.delta for e in sink.events] == ["Sure."]  # at once
    record = spec.latency.record()
    assert -100 < record["speculation_started_ms"] < -15  # before the decision
    assert record["confirm_ms"] >= 15  # the audio waited for the turn
    assert record["send_ms"] == pytest.approx(
        record["first_audio_sent_ms"] - record["speculation_committed_ms"]
    )
    assert spec.latency.critical_path() == ["stt", "tts", "confirm", "send"]
    work = record["stt_ms"] + record["tts_ms"] + record["send_ms"]
    assert record["overhead_ms"] == pytest.approx(work)  # the wait is not overhead
    assert record["stt_ms"] == pytest.approx(
        record["stt_done_ms"] - record["speculation_started_ms"]
    )
    answering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await answering
    assert run.cancelled.is_set()  # the turn's cancellation reaches the run
    assert speculator.counts.committed == 1
    trace.finish(status="done", error="", latency_ms={})
    (turn,) = [s for s in exporter.get_finished_spans() if s.name == "turn"]
    assert [e.name for e in turn.events] == ["speculation.started", "speculation.committed"]


async def test_a_turn_that_ends_elsewhere_discards_the_speculation() -> None:
    speculator, run, sink = Speculator(True), FakeRun(), Sink()
    started(speculator, run, sink)
    await run.made.wait()
    assert speculator.take(ended(PAUSED.end_sample + 512)) is None
    await speculator.close()
    assert run.cancelled.is_set() and sink.events == []
    assert speculator.counts.discarded == 1


def test_a_resumed_answer_counts_what_was_heard_before_the_stop() -> None:
    playback = AnswerPlayback()
    for sentence in range(3):
        playback.sent(sentence, 1.0)
    playback.report("started", 10.0)
    playback.stop()
    playback.report("interrupted", 10.8)
    assert playback.heard() == 1 and not playback.may_be_playing()
    assert playback.resume() == pytest.approx(0.8)
    assert playback.may_be_playing()  # its rest is playing now
    playback.report("started", 20.0)
    playback.stop()
    playback.report("interrupted", 21.5)  # stopped again, 1.5 s into the rest
    assert playback.played_seconds() == pytest.approx(2.3)
    assert playback.heard() == 3
    playback.resume()
    playback.report("finished", 30.0)
    assert playback.played_seconds() == math.inf
