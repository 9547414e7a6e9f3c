"""Which audio chunks the server has taken: repeats and out-of-order chunks dropped,
acknowledgements only for audio the session no longer needs, per device and epoch."""

from __future__ import annotations

from server.delivery import ACK_EVERY_S, AudioReceipts, DeliveryLedger


def test_chunks_below_the_resume_point_are_repeats_and_seq_must_increase() -> None:
    receipts = AudioReceipts(next_seq=10)
    assert [receipts.accept(seq) for seq in (8, 9, 10, 11, 11, 5, 14)] == [
        "repeat",
        "repeat",
        "",
        "",
        "out of order",
        "repeat",
        "",  # a gap (chunks the edge dropped) is fine
    ]
    assert (receipts.repeats, receipts.out_of_order, receipts.last) == (3, 1, 14)


def test_a_chunk_is_acknowledged_once_all_its_audio_is_finished_with() -> None:
    receipts = AudioReceipts()
    for seq in range(5):  # 320 samples each: ends at 320, 640, ...
        receipts.accept(seq)
        receipts.taken(seq, (seq + 1) * 320)
    assert receipts.point(700) == 2  # chunks 0 and 1 end before 700
    assert receipts.acked == 0  # point() changes nothing
    assert receipts.advance(960) == 3
    assert receipts.advance(100) == 3  # never goes back
    assert receipts.advance(1600) == 5


def test_a_chunk_with_part_of_a_frame_held_back_waits_for_the_next_whole_one() -> None:
    receipts = AudioReceipts()
    receipts.taken(0, 320, whole=False)  # its last byte is carried into chunk 1
    assert receipts.advance(400) == 0
    receipts.taken(1, 640)
    assert receipts.advance(700) == 2


def test_acks_are_sent_when_the_point_moves_and_not_too_often() -> None:
    receipts = AudioReceipts()
    assert receipts.ack_due(now=100.0) is None  # nothing taken yet
    receipts.taken(0, 320)
    receipts.advance(320)
    assert receipts.ack_due(now=100.0) == 1
    receipts.taken(1, 640)
    receipts.advance(640)
    assert receipts.ack_due(now=100.0 + ACK_EVERY_S / 2) is None
    assert receipts.ack_due(now=100.0 + ACK_EVERY_S) == 2
    assert receipts.ack_due(now=200.0) is None  # unchanged


def test_the_ledger_resumes_a_device_where_it_stopped_per_epoch() -> None:
    ledger = DeliveryLedger(keep=2)
    receipts = AudioReceipts(ledger=ledger, device_id="pi", epoch="e1")
    receipts.taken(0, 320)
    receipts.advance(320)
    assert ledger.resume("pi", "e1") == 1
    assert ledger.resume("pi", "e2") == 0  # a restarted agent counts from 0 again
    assert ledger.resume("pi", "") == 0  # no epoch: nothing is remembered
    assert ledger.resume("pi", "e1", stored=("e1", 40)) == 40  # the store knew more
    assert ledger.resume("pi", "e1", stored=("e0", 40)) == 1  # another epoch's point
    ledger.advance("a", "x", 1)
    ledger.advance("b", "x", 1)
    assert ledger.resume("pi", "e1") == 0  # the oldest device was forgotten (keep=2)
