"""Build the labelled endpointing set in tests/data/endpointing/ (labels by construction).

    .venv/bin/python scripts/make_endpointing_set.py   # needs espeak-ng (apt) and soundfile

Every clip is 16 kHz mono FLAC. Its labels (``labels.json`` beside the audio) give each
turn's end of speech (``end_s``) and the mid-utterance pauses (``pauses_s``, [start,
end] in seconds) that a good endpointer waits through:

- real speech: ``../jfk.flac`` (one sentence, three mid-sentence pauses, one turn ending
  after "country") and ``../turn_on_the_living_room_lamp.wav`` (one complete turn);
- real clips spliced: pieces of those two recordings cut in their own silences (or, in
  the lamp clip, at the quietest frame between "the" and "living") and joined with a
  pause of the recording's own background noise, so every pause is mid-utterance by
  construction and every turn ends where its last piece ends;
- synthetic speech: espeak-ng sentences spoken in one go with an SSML ``<break>`` after
  an incomplete phrase ("I'd like to book a table for" ... "four people."), so the
  phrase keeps the intonation of a sentence that goes on, and complete commands. The
  pause is the one run of samples below -40 dBFS longer than 0.3 s inside the speech
  (espeak-ng writes the break as digital silence), the turn's end the last sample
  above -40 dBFS: the labels are exact.

Each clip starts with 0.5 s and ends with 2 s of background (the bench adds nothing).
The set is small (about 1 MB); commit the files. Rerunning gives the same labels (the
noise is seeded; espeak-ng 1.51's output may differ by a few samples elsewhere).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parley.audio import AudioConverter, read_audio  # noqa: E402

RATE = 16000
DATA = ROOT / "tests" / "data"
OUT = DATA / "endpointing"
LEAD_S, TAIL_S = 0.5, 2.0
rng = np.random.default_rng(10)

# Pieces of the real recordings, in seconds (cut inside their silences).
JFK = {
    "americans": (0.25, 2.20, "And so my fellow Americans,"),
    "ask_not": (3.22, 4.35, "ask not"),
    "what_country": (5.35, 7.55, "what your country can do for you,"),
    "ask_what": (8.12, 10.65, "ask what you can do for your country."),
}
JFK_NOISE = (2.30, 3.15)  # the room between "Americans" and "ask"
LAMP_SPEECH = (0.28, 1.45)  # "turn on the living room lamp"
LAMP_CUT = 0.80  # the quietest 10 ms frame between "the" and "living"
LAMP_NOISE = (1.55, 2.95)

# espeak-ng: (parts, pause after each part but the last, in seconds)
ESPEAK = {
    "book_table": (["I'd like to book a table for", "four people."], [0.8]),
    "remind_me": (["Can you remind me to", "call my mother tomorrow?"], [0.7]),
    "meeting": (["The meeting is on", "Thursday at three."], [0.9]),
    "timer": (["Set a timer for", "ten minutes."], [0.6]),
    "wondering": (["I was wondering if you could", "help me with something."], [1.0]),
    "weather": (["What's the weather like today?"], []),
    "lights": (["Turn off the kitchen lights."], []),
    "music": (["Play some music by the Beatles."], []),
}


def to_16k(path: Path) -> np.ndarray:
    pcm, rate = read_audio(path)
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    converter = AudioConverter(rate, channels)
    return np.concatenate([converter.convert(pcm.tobytes()), converter.flush()])


def cut(x: np.ndarray, span: tuple[float, ...]) -> np.ndarray:
    return x[round(span[0] * RATE) : round(span[1] * RATE)]


def background(noise: np.ndarray, seconds: float) -> np.ndarray:
    """``seconds`` of a recording's own background: its noise tiled from a random start."""
    n = round(seconds * RATE)
    reps = np.tile(noise, n // len(noise) + 2)
    start = int(rng.integers(0, len(noise)))
    return reps[start : start + n].astype(np.float32)


QUIET = 10 ** (-40 / 20)


def speak(texts: list[str], pauses: list[float]) -> tuple[np.ndarray, list[list[float]]]:
    """One espeak-ng utterance with a break after each text but the last: the audio
    (trimmed to its loud samples) and the breaks found in it ([start, end], seconds)."""
    breaks = [
        f'{t} <break time="{round(p * 1000)}ms"/>' for t, p in zip(texts, pauses, strict=False)
    ]
    ssml = f"<speak>{' '.join([*breaks, texts[-1]])}</speak>"
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "say.wav"
        command = ["espeak-ng", "-m", "-v", "en-us", "-s", "165", "-w", str(wav), ssml]
        subprocess.run(command, check=True)
        x = to_16k(wav)
    loud = np.flatnonzero(np.abs(x) > QUIET)
    x = x[loud[0] : loud[-1] + 1]
    gaps = np.flatnonzero(np.diff(np.flatnonzero(np.abs(x) > QUIET)) > 0.3 * RATE)
    edges = np.flatnonzero(np.abs(x) > QUIET)
    found = [[edges[g] / RATE, edges[g + 1] / RATE] for g in gaps]
    if len(found) != len(pauses):
        raise RuntimeError(f"{len(found)} pauses found in {ssml!r}, {len(pauses)} asked for")
    return x, found


def assemble(pieces: list[np.ndarray], pauses: list[float], noise: np.ndarray) -> tuple:
    """Lead, pieces with pauses between, tail: the audio and its turn's labels."""
    parts, at, gaps = [background(noise, LEAD_S)], LEAD_S, []
    for i, piece in enumerate(pieces):
        parts.append(piece)
        at += len(piece) / RATE
        if i < len(pauses):
            parts.append(background(noise, pauses[i]))
            gaps.append([round(at, 3), round(at + pauses[i], 3)])
            at += pauses[i]
    parts.append(background(noise, TAIL_S))
    return np.concatenate(parts), {"end_s": round(at, 3), "pauses_s": gaps}


def write(name: str, audio: np.ndarray) -> str:
    import soundfile

    path = OUT / f"{name}.flac"
    soundfile.write(str(path), np.clip(audio, -1, 1), RATE, subtype="PCM_16")
    return path.name


def main() -> None:
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is not installed: sudo apt-get install espeak-ng")
    OUT.mkdir(parents=True, exist_ok=True)
    jfk, lamp = to_16k(DATA / "jfk.flac"), to_16k(DATA / "turn_on_the_living_room_lamp.wav")
    jfk_noise, lamp_noise = cut(jfk, JFK_NOISE), cut(lamp, LAMP_NOISE)
    clips = [
        {
            "file": "../jfk.flac",
            "kind": "real",
            "text": "And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.",
            # the pauses as the recording has them (10 ms frames below -35 dBFS)
            "turns": [{"end_s": 10.6, "pauses_s": [[2.2, 3.22], [4.35, 5.35], [7.55, 8.12]]}],
        },
        {
            "file": "../turn_on_the_living_room_lamp.wav",
            "kind": "real",
            "text": "Turn on the living room lamp.",
            "turns": [{"end_s": 1.45, "pauses_s": []}],
        },
    ]

    def add(name: str, kind: str, text: str, audio: np.ndarray, turns: list[dict]) -> None:
        clips.append({"file": write(name, audio), "kind": kind, "text": text, "turns": turns})

    spliced = {
        "jfk_americans_ask_what": (["americans", "ask_what"], [0.7]),
        "jfk_ask_not_what_ask_what": (["ask_not", "what_country", "ask_what"], [0.6, 0.5]),
    }
    for name, (keys, pauses) in spliced.items():
        audio, turn = assemble([cut(jfk, JFK[k][:2]) for k in keys], pauses, jfk_noise)
        add(name, "spliced", " ... ".join(JFK[k][2] for k in keys), audio, [turn])
    lamp_speech = cut(lamp, LAMP_SPEECH)
    cut_at = round((LAMP_CUT - LAMP_SPEECH[0]) * RATE)
    audio, turn = assemble([lamp_speech[:cut_at], lamp_speech[cut_at:]], [0.7], lamp_noise)
    add("lamp_split", "spliced", "Turn on the ... living room lamp.", audio, [turn])
    first, turn1 = assemble([lamp_speech], [], lamp_noise)
    second, turn2 = assemble([lamp_speech], [], lamp_noise)
    shift = len(first) / RATE
    turn2 = {"end_s": round(turn2["end_s"] + shift, 3), "pauses_s": []}
    add(
        "lamp_twice",
        "spliced",
        "Turn on the living room lamp. (twice)",
        np.concatenate([first, second]),
        [turn1, turn2],
    )

    for name, (texts, pauses) in ESPEAK.items():
        noise = (rng.standard_normal(RATE) * 10 ** (-60 / 20)).astype(np.float32)
        speech, gaps = speak(texts, pauses)
        audio, turn = assemble([speech], [], noise)
        turn["pauses_s"] = [[round(LEAD_S + a, 3), round(LEAD_S + b, 3)] for a, b in gaps]
        add(f"espeak_{name}", "espeak", " ... ".join(texts), audio, [turn])

    about = (
        "Endpointing labels by construction: scripts/make_endpointing_set.py. "
        "end_s: each turn's end of speech; pauses_s: mid-utterance pauses [start, end] (s)."
    )
    body = ",\n".join("  " + json.dumps(clip) for clip in clips)  # one clip a line
    head = f'{{\n "sample_rate": {RATE},\n "about": {json.dumps(about)},\n'
    text = f'{head} "clips": [\n{body}\n ]\n}}\n'
    json.loads(text)
    (OUT / "labels.json").write_text(text)
    print(f"{len(clips)} clips in {OUT}")


if __name__ == "__main__":
    main()
