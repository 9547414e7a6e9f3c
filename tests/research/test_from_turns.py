"""Datasets made from stored turns: their recorded audio and frames, the annotators'
corrections as references, a turn group as one conversation; then replayed again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from admin.models import Annotation, TurnGroup, TurnGroupMember, User, create_admin_tables
from parley import db
from parley.audio import read_audio
from parley.errors import ParleyError
from research import datasets
from research.from_turns import rows_from_turns, select_turns
from research.importing import create_dataset
from research.manifests import read_folder
from tests.research.conftest import CLIPS, DATA, ResearchStack, copy_clips
from tests.research.test_replay import instant


async def test_turns_become_a_dataset_with_the_annotators_references(
    research_stack: ResearchStack, recordings: Path, tmp_path: Path
):
    config = await research_stack.start({"instant": instant()})
    folder = copy_clips(recordings, tmp_path / "in", CLIPS[:3])
    (folder / "f.jpg").write_bytes((DATA / "frames" / "frame-b.jpg").read_bytes())
    manifest = tmp_path / "m.tsv"
    manifest.write_text(
        "file\tframes\n"
        + "\n".join(f"{c.name}\t{'f.jpg' if i == 1 else ''}" for i, c in enumerate(CLIPS[:3]))
    )
    _, rows = read_folder(folder, manifest)
    with db.database.connection_context():
        source = create_dataset("source", rows, config.data_dir, source="test")
    await research_stack.replay(source, ["instant"], run="first")

    with db.database.connection_context():
        create_admin_tables()
        results = {r.item.key: r.turn_id for r in db.RunItem.select().join(db.DatasetItem)}
        turn_ids = [results[Path(c.name).stem] for c in CLIPS[:3]]
        ada = User.create(name="ada", password_hash="-")
        bob = User.create(name="bob", password_hash="-")
        Annotation.create(turn=turn_ids[0], user=ada, corrected_transcript="turn on the lamp")
        Annotation.create(turn=turn_ids[0], user=bob, better_response="Done.")
        Annotation.create(turn=turn_ids[2], user=bob, overall_score=4)  # no correction
        group = TurnGroup.create(name="scenario")
        for position, turn_id in enumerate([turn_ids[2], turn_ids[0]]):
            TurnGroupMember.create(group=group, turn=turn_id, position=position)

        what, turns, conversation = select_turns("scenario", {})
        assert [t.id for t in turns] == [turn_ids[2], turn_ids[0]]
        rows = rows_from_turns(turns, config.data_dir, conversation=conversation)
        grouped = create_dataset("hard-cases", rows, config.data_dir, source=what)
        items = datasets.items(grouped)
        assert [i.key for i in items] == [turn_ids[2], turn_ids[0]]
        assert [(i.conversation, i.conversation_position) for i in items] == [
            ("group-scenario", 0),
            ("group-scenario", 1),
        ]
        assert [(i.reference_transcript, i.reference_answer) for i in items] == [
            ("", ""),
            ("turn on the lamp", "Done."),
        ]
        for item in items:
            assert item.source_turn == item.key
            stored = db.Media.get((db.Media.turn == item.key) & (db.Media.kind == "input"))
            recorded, rate = read_audio(config.data_dir / stored.path)
            kept, kept_rate = read_audio(config.data_dir / item.audio_path)
            assert (rate, kept_rate, item.channels) == (16000, 16000, 1)
            assert np.array_equal(recorded, kept)

        # The admin's turn-list filters; the frame seen in the second turn comes along.
        what, turns, conversation = select_turns(None, {"pipeline": "instant"})
        assert sorted(t.id for t in turns) == sorted(turn_ids) and conversation == ""
        singles = create_dataset(
            "all-instant", rows_from_turns(turns, config.data_dir), config.data_dir, source=what
        )
        framed = [i for i in datasets.items(singles) if i.frames]
        assert [i.key for i in framed] == [turn_ids[1]]
        frame = config.data_dir / framed[0].frames[0]["path"]
        assert frame.read_bytes() == (DATA / "frames" / "frame-b.jpg").read_bytes()
        assert all(i.conversation == "" for i in datasets.items(singles))

        # Multi-turn: each source conversation's turns stay together.
        rows = rows_from_turns(turns, config.data_dir, multi_turn=True)
        assert len({r.conversation for r in rows}) == 3  # each turn had its own stream

        with pytest.raises(ParleyError, match="unknown turn filter 'colour'"):
            select_turns(None, {"colour": "red"})
        with pytest.raises(ParleyError, match="status='sleepy': not a valid value"):
            select_turns(None, {"status": "sleepy"})
        with pytest.raises(ParleyError, match="no stored turns"):
            select_turns(None, {"pipeline": "elsewhere"})
        with pytest.raises(ParleyError, match="unknown turn group 'nope'"):
            select_turns("nope", {})
        # A turn whose recording is gone: named, and nothing is made.
        stored = db.Media.get((db.Media.turn == turn_ids[1]) & (db.Media.kind == "input"))
        (config.data_dir / stored.path).unlink()
        _, turns, _ = select_turns(None, {"pipeline": "instant"})
        with pytest.raises(ParleyError, match=f"turn {turn_ids[1]}: its recorded input audio"):
            rows_from_turns(turns, config.data_dir)

    # The group's dataset replays as one conversation, as any other.
    tallies = await research_stack.replay(grouped, ["instant"], run="again")
    assert (tallies[0].done, tallies[0].failed) == (2, 0)
