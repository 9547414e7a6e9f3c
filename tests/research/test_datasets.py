"""Datasets from folders and manifests (every layout), exported and imported back, and
every kind of bad input: a clear error naming the row, nothing half-imported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from parley import db
from parley.audio import read_audio, write_wav
from parley.config import Config
from parley.errors import ParleyError
from research import datasets
from research.importing import DatasetExists, create_dataset
from research.manifests import ManifestError, read_folder
from tests.research.conftest import CLIPS, DATA, copy_clips


def imported(config: Config, folder: Path, references: Path | None = None, **kw) -> db.Dataset:
    _, rows = read_folder(folder, references)
    return create_dataset(kw.pop("name", "set"), rows, config.data_dir, source="test", **kw)


def stored_files(config: Config) -> list[Path]:
    root = config.data_dir / "datasets"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_tsv_manifest_imports_every_rate_channel_count_and_format(
    store: Config, recordings: Path, tmp_path: Path
):
    manifest = tmp_path / "refs.tsv"
    rows = ["file\treference\tanswer\ttags"]
    rows += [f"{c.name}\tsaid {i}\tanswered {i}\tt{i % 2}, all" for i, c in enumerate(CLIPS)]
    manifest.write_text("\n".join(rows) + "\n")

    dataset = imported(store, recordings, manifest, tags=["extra"])

    items = datasets.items(dataset)
    assert [i.key for i in items] == [Path(c.name).stem for c in CLIPS]
    for index, (item, clip) in enumerate(zip(items, CLIPS, strict=True)):
        assert (item.sample_rate, item.channels) == (clip.rate, clip.channels)
        assert item.reference_transcript == f"said {index}"
        assert item.reference_answer == f"answered {index}"
        assert item.tags == [f"t{index % 2}", "all", "extra"]
        assert item.audio_path.startswith("datasets/set/v1/")
        stored, rate = read_audio(store.data_dir / item.audio_path)
        source, source_rate = read_audio(recordings / clip.name)
        assert rate == source_rate and stored.shape == source.shape
        if clip.name.endswith((".wav", ".flac")):  # lossless: the very samples
            assert np.array_equal(stored, source)
        assert item.seconds == pytest.approx(len(source) / source_rate)
    assert len(stored_files(store)) == len(CLIPS)
    assert datasets.find("set").id == dataset.id


def test_csv_jsonl_ids_librispeech_common_voice_and_plain_folders(
    store: Config, recordings: Path, tmp_path: Path
):
    csv = tmp_path / "refs.csv"
    csv.write_text(
        'path,transcript\n"jfk-a-8k.wav","and so, my fellow americans"\n'
        f"{CLIPS[0].name},turn on the lamp\n"
    )
    assert [
        (i.key, i.reference_transcript)
        for i in datasets.items(imported(store, recordings, csv, name="csv"))
    ] == [
        ("jfk-a-8k", "and so, my fellow americans"),
        ("lamp-44k-stereo", "turn on the lamp"),
    ]

    # JSONL naming items by id only: found by their file name without extension.
    ids = tmp_path / "ids.jsonl"
    ids.write_text('{"id": "lamp-slow-16k", "reference": "slow lamp"}\n')
    (item,) = datasets.items(imported(store, recordings, ids, name="ids"))
    assert (item.key, item.sample_rate, item.reference_transcript) == (
        "lamp-slow-16k",
        16000,
        "slow lamp",
    )

    # LibriSpeech: speaker/chapter folders, *.trans.txt next to the FLAC files.
    libri = tmp_path / "LibriSpeech" / "dev-clean"
    chapter = libri / "84" / "121123"
    chapter.mkdir(parents=True)
    for n, clip in enumerate(CLIPS[:2]):
        (chapter / f"84-121123-000{n}.flac").write_bytes(_as_flac(recordings / clip.name))
    (chapter / "84-121123.trans.txt").write_text(
        "84-121123-0000 TURN ON THE LIVING ROOM LAMP\n84-121123-0001 TURN ON THE LAMP SLOWLY\n"
    )
    layout, rows = read_folder(libri)
    assert layout == "librispeech"
    assert [(r.key, r.reference) for r in rows] == [
        ("84-121123-0000", "TURN ON THE LIVING ROOM LAMP"),
        ("84-121123-0001", "TURN ON THE LAMP SLOWLY"),
    ]

    # Common Voice: clips/*.mp3 and a TSV with client_id, path, sentence (and more).
    voice = tmp_path / "cv-corpus" / "en"
    (voice / "clips").mkdir(parents=True)
    (voice / "clips" / "common_voice_en_1.mp3").write_bytes(
        (recordings / CLIPS[4].name).read_bytes()
    )
    tsv = voice / "validated.tsv"
    tsv.write_text(
        "client_id\tpath\tsentence_id\tsentence\tup_votes\tdown_votes\n"
        "abc\tcommon_voice_en_1.mp3\t9\tAsk not what your country can do for you.\t2\t0\n"
    )
    layout, rows = read_folder(voice, tsv)
    assert layout == "commonvoice"
    dataset = create_dataset("cv", rows, store.data_dir, source="test")
    (item,) = datasets.items(dataset)
    assert (item.key, item.sample_rate) == ("common_voice_en_1", 22050)
    assert item.reference_transcript == "Ask not what your country can do for you."

    # No manifest: every recording in the folder, without references.
    layout, rows = read_folder(recordings)
    assert layout == "folder" and sorted(r.key for r in rows) == sorted(
        Path(c.name).stem for c in CLIPS
    )


def _as_flac(path: Path) -> bytes:
    import io

    import soundfile

    samples, rate = read_audio(path)
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="FLAC")
    return out.getvalue()


def test_export_then_import_gives_the_same_dataset_and_versions_add_up(
    store: Config, recordings: Path, tmp_path: Path
):
    frame = DATA / "frames" / "frame-a.jpg"
    copy_clips(recordings, tmp_path / "src", CLIPS[:3])
    (tmp_path / "src" / "frame.jpg").write_bytes(frame.read_bytes())
    manifest = tmp_path / "m.jsonl"
    lines = [
        {"file": CLIPS[0].name, "reference": "one", "conversation": "c", "position": 1},
        {"file": CLIPS[1].name, "reference": "two", "conversation": "c", "position": 0},
        {"file": CLIPS[2].name, "answer": "three", "tags": ["x"], "frames": ["frame.jpg@0.5"]},
    ]
    manifest.write_text("\n".join(json.dumps(line) for line in lines))
    original = imported(store, tmp_path / "src", manifest, name="orig")

    count = datasets.export(original, tmp_path / "out", store.data_dir)
    assert count == 3 and (tmp_path / "out" / "manifest.jsonl").is_file()
    again = imported(store, tmp_path / "out", name="orig", new_version=True)

    assert (again.name, again.version) == ("orig", 2)
    assert datasets.find("orig").id == again.id and datasets.find("orig@1").id == original.id
    fields = ("key", "reference_transcript", "reference_answer", "tags", "conversation")
    fields += ("conversation_position", "sample_rate", "channels")
    for a, b in zip(datasets.items(original), datasets.items(again), strict=True):
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
        assert np.array_equal(
            read_audio(store.data_dir / a.audio_path)[0],
            read_audio(store.data_dir / b.audio_path)[0],
        )
        assert [f["offset_s"] for f in a.frames] == [f["offset_s"] for f in b.frames]
        for fa, fb in zip(a.frames, b.frames, strict=True):
            assert (store.data_dir / fa["path"]).read_bytes() == frame.read_bytes()
            assert (store.data_dir / fb["path"]).read_bytes() == frame.read_bytes()
    units = datasets.units(datasets.items(again))
    assert [[i.key for i in unit] for unit in units] == [
        [Path(CLIPS[1].name).stem, Path(CLIPS[0].name).stem],
        [Path(CLIPS[2].name).stem],
    ]
    with pytest.raises(ParleyError, match="not an empty folder"):
        datasets.export(original, tmp_path / "out", store.data_dir)


# ------------------------------------------------------------------ bad input


@pytest.fixture
def folder(recordings: Path, tmp_path: Path) -> Path:
    return copy_clips(recordings, tmp_path / "in", CLIPS[:2])


def assert_nothing_imported(config: Config) -> None:
    assert db.Dataset.select().count() == 0
    assert db.DatasetItem.select().count() == 0
    assert stored_files(config) == []
    staging = list((config.data_dir / "datasets").glob(".staging-*"))
    assert staging == []


@pytest.mark.parametrize(
    ("manifest", "content", "message"),
    [
        (
            "refs.tsv",
            f"file\treference\n{CLIPS[0].name}\tok\nmissing.wav\tgone\n",
            "refs.tsv line 3: audio file missing.wav not found",
        ),
        (
            "refs.tsv",
            f"file\treference\n{CLIPS[0].name}\tok\nnotes.wav\tnot audio\n",
            "refs.tsv line 3: cannot read notes.wav",
        ),
        (
            "refs.jsonl",
            '{"id": "lamp-44k-stereo", "reference": "ok"}\n{"id": "nobody", "reference": "x"}\n',
            "refs.jsonl line 2: reference for an unknown item 'nobody'",
        ),
        (
            "refs.csv",
            f"file,reference\n{CLIPS[0].name},a\n{CLIPS[1].name},b\n{CLIPS[0].name},again\n",
            "refs.csv line 4: item 'lamp-44k-stereo' is also at refs.csv line 2",
        ),
        (
            "refs.tsv",
            f"file\tconversation\tposition\n{CLIPS[0].name}\tc\tfirst\n",
            "refs.tsv line 2: position 'first' is not a whole number",
        ),
        (
            "refs.tsv",
            f"file\treference\n{CLIPS[0].name}\tok\nlow.wav\ttoo low\n",
            "refs.tsv line 3: low.wav: unsupported sample rate 2000 Hz",
        ),
        (
            "refs.jsonl",
            f'{{"file": "{CLIPS[0].name}"}}\n{{"file": "{CLIPS[1].name}", "frames": ["a.txt"]}}\n',
            "refs.jsonl line 2: frame a.txt is not a JPEG file",
        ),
        ("refs.jsonl", f'{{"file": "{CLIPS[0].name}"}}\n[1, 2]\n', "refs.jsonl line 2: expected"),
        ("refs.tsv", "reference\nhello\n", "refs.tsv line 2: no file or id"),
    ],
)
def test_a_bad_manifest_names_the_row_and_imports_nothing(
    store: Config, folder: Path, tmp_path: Path, manifest: str, content: str, message: str
):
    (folder / "notes.wav").write_text("these are my notes, not a recording")
    (folder / "a.txt").write_text("not a picture")
    write_wav(folder / "low.wav", bytes(4000), 2000)
    (tmp_path / manifest).write_text(content)
    with pytest.raises(ManifestError) as error:
        _, rows = read_folder(folder, tmp_path / manifest)
        create_dataset("bad", rows, store.data_dir, source="test")
    assert message in str(error.value)
    assert_nothing_imported(store)


def test_a_librispeech_reference_without_its_recording_is_an_unknown_item(
    store: Config, folder: Path
):
    chapter = folder / "84" / "121123"
    chapter.mkdir(parents=True)
    (chapter / "84-121123-0000.flac").write_bytes(_as_flac(folder / CLIPS[0].name))
    (chapter / "84-121123.trans.txt").write_text("84-121123-0000 ONE\n84-121123-0001 TWO\n")
    with pytest.raises(
        ManifestError,
        match=r"84-121123.trans.txt line 2: reference for an unknown item '84-121123-0001'",
    ):
        read_folder(folder / "84")
    assert_nothing_imported(store)


def test_a_recording_that_fails_to_decode_leaves_no_files_or_rows(
    store: Config, folder: Path, tmp_path: Path
):
    data = bytearray((DATA / "jfk.flac").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 20000] = bytes((b * 7 + 13) % 256 for b in data[middle : middle + 20000])
    (folder / "broken.flac").write_bytes(bytes(data))  # a sound header, then garbage
    manifest = tmp_path / "refs.tsv"
    manifest.write_text(f"file\n{CLIPS[0].name}\n{CLIPS[1].name}\nbroken.flac\n")
    _, rows = read_folder(folder, manifest)
    with pytest.raises(ManifestError, match=r"refs\.tsv line 4: cannot decode broken\.flac"):
        create_dataset("broken", rows, store.data_dir, source="test")
    assert_nothing_imported(store)


def test_an_existing_name_is_refused_unless_a_new_version_is_asked_for(store: Config, folder: Path):
    first = imported(store, folder, name="kitchen")
    files = stored_files(store)
    with pytest.raises(
        DatasetExists, match=r"dataset 'kitchen' exists \(version 1\).*--new-version"
    ):
        imported(store, folder, name="kitchen")
    assert db.Dataset.select().count() == 1 and stored_files(store) == files
    second = imported(store, folder, name="kitchen", new_version=True)
    assert (first.version, second.version) == (1, 2)
    with pytest.raises(ParleyError, match="bad dataset name"):
        imported(store, folder, name="../escape")
    with pytest.raises(ParleyError, match="unknown dataset 'nope'"):
        datasets.find("nope")
    with pytest.raises(ParleyError, match=r"has no version 9 \(it has \[1, 2\]\)"):
        datasets.find("kitchen@9")
