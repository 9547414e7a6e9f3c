"""`parley bench load`'s bookkeeping: stream plans, the summary, the real-time verdict,
and finding a server's processes and threads in /proc."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from parley.cli import build_parser
from parley.commands.bench_load import check_arguments, check_length, in_real_time, summarise
from parley.commands.load_probe import Probe, Sample, listening_pids, thread_cpu_seconds
from parley.commands.loadgen import Cycle, StreamPlan, StreamResult, TurnSeen, plan_streams
from parley.errors import ParleyError
from server.vad_scheduler import _name_thread

CYCLE = Cycle(chunks=tuple(bytes(640) for _ in range(500)), chunk_ms=20, turns=1)  # 10 s


def answered(speech_end: float, first_audio: float, endpointing_ms: float = 500.0) -> TurnSeen:
    return TurnSeen(
        speech_end=speech_end,
        ended_at=speech_end + 0.5,
        first_audio=first_audio,
        finished=True,
        latency_ms={"endpointing_ms": endpointing_ms, "first_audio_sent_ms": 3.0},
    )


def test_plans_are_whole_cycles_at_random_phases_of_equal_length() -> None:
    plans = plan_streams(20, 35.0, CYCLE, seed=3)
    assert len({p.lead for p in plans}) > 10  # phases differ
    assert len({p.offset_s for p in plans}) == 20  # nor do they send in step
    for plan in plans:
        assert 0 <= plan.offset_s < 0.020
        assert 0 <= plan.lead < len(CYCLE.chunks)
        assert plan.chunks(CYCLE) == 35 * 50  # every stream lasts the same
        assert plan.loops == (1750 - plan.lead) // 500  # as many whole cycles as fit
        assert 0 <= plan.tail < 500
    assert plan_streams(20, 35.0, CYCLE, seed=3) == plans  # reproducible


def test_summary_counts_and_latencies() -> None:
    good = StreamResult(0, expected_turns=2, chunks_sent=100, lag_ms=[1.0, 3.0], late_ms=0.5)
    good.turns = {"a": answered(10.0, 10.560), "b": answered(20.0, 20.540)}
    bad = StreamResult(1, expected_turns=2, chunks_sent=98, lag_ms=[900.0])
    bad.turns = {
        "c": answered(10.0, 10.600),
        "d": TurnSeen(speech_end=20.0, finished=True, interrupted=True),
        "e": TurnSeen(),  # speech started, never ended: not a turn
    }
    bad.errors = ["STAGE_FAILED: boom"]
    summary = summarise([good, bad], chunks_planned=100)
    assert summary["turns"] == {
        "expected": 4,
        "detected": 4,
        "answered": 3,
        "interrupted": 1,
        "failed": 0,
    }
    assert summary["speech_end_to_first_audio_ms"]["p50"] == pytest.approx(560.0)
    assert summary["speech_end_to_first_audio_ms"]["max"] == pytest.approx(600.0)
    # after the decision = first audio - (speech end + endpointing)
    assert summary["after_decision_ms"]["p50"] == pytest.approx(60.0)
    assert summary["after_decision_ms"]["max"] == pytest.approx(100.0)
    assert summary["server_decision_to_first_audio_sent_ms"]["p50"] == 3.0
    assert summary["behind_real_time_ms"]["max"] == 900.0
    assert summary["dropped"] == {
        "streams_failed": 0,
        "errors": 1,
        "chunks_unsent": 2,
        "examples": ["STAGE_FAILED: boom"],
    }
    assert not in_real_time(summary, None)


def test_real_time_needs_every_turn_nothing_dropped_and_p99_within_twice() -> None:
    result = StreamResult(0, expected_turns=2, chunks_sent=10)
    result.turns = {"a": answered(1.0, 1.56), "b": answered(5.0, 5.57)}  # 60, 70 ms
    summary = summarise([result], chunks_planned=10)
    assert in_real_time(summary, None)
    assert in_real_time(summary, 35.0)  # 70 <= 2 * 35
    assert not in_real_time(summary, 34.0)
    result.lag_ms = [40.0, 1500.0]  # one Ping answered 1.5 s late: the server fell behind
    assert not in_real_time(summarise([result], chunks_planned=10), None)
    result.lag_ms = []
    result.expected_turns = 3  # one turn the VAD should have found is missing
    assert not in_real_time(summarise([result], chunks_planned=10), None)
    result.expected_turns, result.failed = 2, "UNAVAILABLE: gone"
    assert not in_real_time(summarise([result], chunks_planned=10), None)
    assert not in_real_time(summarise([], chunks_planned=10), None)  # nothing expected


def test_probe_figures_are_percent_of_a_core() -> None:
    probe = Probe(server=[10, 11], workers={"127.0.0.1:1": [20], "127.0.0.1:2": [21]})
    before = Sample(
        {10: 1.0, 11: 2.0, 20: 0.0, 21: 0.5},
        {10: {"main": 0.5, "parley-vad": 0.1}, 11: {"main": 1.5, "parley-vad": 0.2}},
    )
    after = Sample(
        {10: 3.0, 11: 3.0, 20: 0.5, 21: 1.0},
        {10: {"main": 1.9, "parley-vad": 0.6}, 11: {"main": 1.8, "parley-vad": 0.7}},
    )
    figures = probe.cpu_figures(before, after, wall_s=10.0, streams=20, windows=20_000)
    assert figures["cpu"] == {
        "server_percent": 30.0,  # 3 s of CPU in 10 s
        "workers_percent": 10.0,
        "vad_thread_percent": 10.0,
        "server_threads_percent": {"main": 17.0, "parley-vad": 10.0},
    }
    assert figures["cpu_percent_per_stream"] == 2.0  # (30 + 10) / 20
    assert figures["vad_cpu_ms_per_window"] == 0.05  # 1 s / 20,000 windows


def test_a_remote_server_has_no_figures() -> None:
    probe = Probe.find("10.1.2.3:50051", config=None, pipeline="instant")  # type: ignore[arg-type]
    assert probe.server == [] and probe.workers == {}
    assert probe.figures(Sample({}, {}), Sample({}, {}), 1.0, 1, 1.0)["cpu"] is None


def test_listening_sockets_and_named_threads_are_found() -> None:
    import os

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert os.getpid() not in listening_pids(port)  # bound, not listening yet
        listener.listen()
        assert os.getpid() in listening_pids(port)

    done = threading.Event()
    named = threading.Event()

    def spin() -> None:
        _name_thread("parley-test-cpu")
        named.set()
        while not done.is_set():
            sum(range(10_000))

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        assert named.wait(5)
        seconds = 0.0
        while seconds == 0.0:  # the thread's CPU time becomes visible in clock ticks
            seconds = thread_cpu_seconds(os.getpid()).get("parley-test-cpu", 0.0)
        assert "main" in thread_cpu_seconds(os.getpid())
    finally:
        done.set()
        worker.join()
    assert StreamPlan(0, 1, 2, 3).chunks(CYCLE) == 1004


async def test_find_max_steps_up_until_a_step_is_not_real_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse

    from parley.commands import bench_load

    p99 = {1: 40.0, 50: 60.0, 100: 79.0, 150: 81.0, 200: 50.0}  # 2 x 40 = 80 is the limit
    ran: list[int] = []

    async def fake_step(address: str, n: int, *args: object, **kw: object) -> dict[str, object]:
        ran.append(n)
        result = StreamResult(0, expected_turns=1, chunks_sent=1)
        result.turns = {"t": answered(1.0, 1.0 + p99[n] / 1000, endpointing_ms=0.0)}
        return summarise([result], chunks_planned=1)

    monkeypatch.setattr(bench_load, "run_step", fake_step)
    args = argparse.Namespace(
        find_max=True, streams=50, step=50, max_streams=1000, seconds=1.0, pipeline="p", token=""
    )
    steps = await bench_load._steps(args, "addr", CYCLE, Probe(), CYCLE)
    assert ran == [1, 50, 100, 150]  # stops at the first step over 2x the reference
    assert [s["in_real_time"] for s in steps] == [True, True, True, False]
    for s in steps:
        s["vad_cpu_ms_per_window"] = 0.08 if s["n"] != 100 else 0.12
        s["cpu_percent_per_stream"] = 0.3
    result: dict[str, object] = {"steps": steps}
    bench_load._conclude(result, args)
    assert result["max_streams_in_real_time"] == 100
    assert result["reference_after_decision_p99_ms"] == 40.0
    # judged on the steps answered in real time with >= 50 streams (N = 100's VAD: 0.12)
    assert result["meets_target"] == {
        "vad_cpu_ms_per_window": False,
        "cpu_percent_per_stream": True,
        "streams": False,
    }


def test_a_scratch_stack_puts_its_workers_on_free_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parley.commands.bench import scratch_stack
    from parley.config import load_config

    monkeypatch.delenv("PARLEY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./parley.toml here
    scratch = tmp_path
    base = load_config(env={"PARLEY_HOME": str(scratch)})
    config, stack = scratch_stack(base, ["instant"], scratch, free_worker_ports=True)
    moved = {s: config.pool(f"instant-{s}").addresses for s in ("stt", "llm", "tts")}
    assert all(a != base.pool(f"instant-{s}").addresses for s, a in moved.items())
    # the started processes read the same addresses from the file they are given
    assert stack.config_path is not None
    reread = load_config(stack.config_path, env={"PARLEY_HOME": str(scratch)})
    assert {s: reread.pool(f"instant-{s}").addresses for s in moved} == moved
    assert reread.pool("instant-stt").engine == "instant"
    workers = {spec.address for spec in stack.specs[1:]}
    assert workers == {a for addresses in moved.values() for a in addresses}


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        ("--floor --server 127.0.0.1:1", "drop --server"),
        ("--floor --processes 2 --find-max", "drop --processes, --find-max"),
        ("--floor --pipeline tiny", "drop --pipeline"),
        ("--server 127.0.0.1:1 --processes 2", "--processes is for the server"),
        ("--find-max --streams 5 --max-streams 3", "--max-streams 3 is below --streams 5"),
    ],
)
def test_options_that_cannot_apply_are_refused(argv: str, named: str) -> None:
    args = build_parser().parse_args(["bench", "load", *argv.split()])
    with pytest.raises(ParleyError, match=named):
        check_arguments(args)


def test_a_run_shorter_than_a_cycle_is_refused() -> None:
    check_length(10.0, CYCLE)  # exactly one cycle
    with pytest.raises(ParleyError, match=r"--seconds 8 is shorter than one cycle .*10\.0 s"):
        check_length(8.0, CYCLE)
