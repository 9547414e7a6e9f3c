"""The fault harness's fast subset against real server and worker processes (the full
run is `parley bench chaos`): fuzzed Converse messages, a locked database, a full and
then read-only data directory, workers stopped and killed, the server killed mid-turn
and at random moments while the real edge agent talks, and a churn of sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.chaos import churn, crash, faults
from parley.chaos.processes import tmpfs_unavailable
from parley.commands.bench_chaos import QUICK, fuzz_case

pytestmark = pytest.mark.timeout(240)


async def test_fuzzed_messages_never_crash_the_server(tmp_path: Path) -> None:
    found = await fuzz_case(tmp_path, QUICK)
    assert found["crashes"] == 0 and found["unknown"] == 0
    assert found["inputs_tried"] > 500
    assert found["errors_reported"].get("LIMIT_EXCEEDED", 0) > 0  # limits were hit, by name


async def test_a_locked_database_is_waited_for_then_reported(tmp_path: Path) -> None:
    found = await faults.locked_database(
        tmp_path, short_s=QUICK.lock_s, long_s=QUICK.long_lock_s, retry_s=QUICK.write_retry_s
    )
    assert found["stored_while_locked_briefly"]
    assert found["reported_when_locked_too_long"]
    assert found["new_stream_status"] == "UNAVAILABLE"
    assert "database locked" in found["new_stream_details"]
    assert (found["turns_lost"], found["crashes"]) == (0, 0)


@pytest.mark.skipif(bool(tmpfs_unavailable()), reason=tmpfs_unavailable() or "tmpfs")
async def test_a_full_then_read_only_data_directory_loses_no_turn_and_leaves_no_partial_file(
    tmp_path: Path,
) -> None:
    found = await faults.full_disk(tmp_path, tmpfs_kb=QUICK.tmpfs_kb, turns=QUICK.disk_turns)
    assert found["stored"] > 0 and found["not_stored"] > 0  # it did fill up
    assert found["disk_full_reported"] and found["read_only_reported"]
    assert found["media_problems"] == []
    assert (found["turns_lost"], found["crashes"]) == (0, 0)


async def test_stopped_and_killed_workers_fail_their_stage_within_its_deadline(
    tmp_path: Path,
) -> None:
    found = await faults.worker_faults(
        tmp_path, stt_timeout_s=QUICK.stt_timeout_s, llm_timeout_s=QUICK.llm_timeout_s
    )
    assert 0 < found["stt_sigstop_failed_after_s"] <= QUICK.stt_timeout_s + 1.0
    assert 0 < found["llm_sigstop_failed_after_s"] <= QUICK.llm_timeout_s + 1.0
    assert found["llm_sigkill_failed_after_s"] < 2.0
    assert found["answered_after_restart"]
    assert (found["turns_lost"], found["crashes"]) == (0, 0)


async def test_a_server_killed_mid_turn_leaves_the_turn_aborted_with_its_audio(
    tmp_path: Path,
) -> None:
    found = await faults.server_killed_mid_turn(tmp_path)
    assert found["status_after_restart"] == "aborted"
    assert found["kept"] == ["input"]
    assert found["conversations_left_open"] == 0
    assert found["answered_after_restart"]
    assert (found["turns_lost"], found["crashes"]) == (0, 0)


async def test_killing_the_server_at_random_moments_loses_no_audio_and_doubles_none(
    tmp_path: Path,
) -> None:
    found = await crash.exactly_once(
        tmp_path, utterances=QUICK.utterances, seed=QUICK.seed, kill_probability=0.8
    )
    assert found["kills"] >= 2
    assert found["turns_stored"] == QUICK.utterances  # none lost, none twice
    assert found["turns_cut"] == []  # each with all of its speech
    assert found["chunks"]["accounted"] and found["chunks"]["resent"] > 0
    assert found["crashes"] == 0


async def test_a_churn_of_sessions_leaks_nothing(tmp_path: Path) -> None:
    found = await churn.churn_leaks(
        tmp_path, sessions=QUICK.churn_sessions, warmup=QUICK.churn_warmup
    )
    assert found["conversations_left_open"] == 0
    assert found["disconnected_lines"] == found["connected_lines"] == found["sessions"]
    assert found["half_closed_turns_answered"] > 0
    assert (found["leaked_tasks"], found["leaked_threads"], found["leaked_fds"]) == (0, 0, 0)
    assert found["rss_growth_percent"] <= 10.0
    assert (found["turns_lost"], found["crashes"]) == (0, 0)
