"""`parley bench endpointing`: when does each strategy end the turn, on labelled speech?

Every clip of the labelled set (tests/data/endpointing/labels.json, made by
scripts/make_endpointing_set.py: real recordings, real clips spliced with pauses,
espeak-ng sentences paused after an incomplete phrase) is streamed in 20 ms chunks
through the server's real turn detector: real Silero VAD, and for ``smart_turn`` the
real Smart Turn model asked at each check point (synchronously here; the server asks
off its event loop). Strategies: ``silence`` (ends after ``--min-silence-ms``, or
``silence:N`` for N ms) and ``smart_turn`` (``smart_turn:N``: first check point after N
ms of silence), several side by side: ``--strategy silence:200,silence:500,smart_turn``.

Scoring, per detected end, against the labelled turn it falls in: an end whose speech
end is more than ``TOLERANCE_S`` before the turn's labelled end of speech is
**premature** (the turn was cut at a mid-utterance pause); otherwise it is the turn's
**true end**, and its latency is the end of speech (label) -> the turn decision, the
model's answer time included (live, the audio goes on while the model thinks). A
true end later than ``--late-ms``, or a labelled turn never ended on its own (merged
into the next), is **late**. Reported per strategy: counts, latency p50/p90, and
ratios to the reference strategy (``silence:500`` when run, else the first).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from parley.commands.bench import machine, percentiles, report
from parley.config import Config, TurnConfig, VadConfig
from parley.errors import ParleyError

RATE = 16000
CHUNK = RATE // 50  # 20 ms, as the edge sends
TOLERANCE_S = 0.25  # a speech end this close to the labelled end is the turn's end
LABELS = Path(__file__).resolve().parents[2] / "tests" / "data" / "endpointing" / "labels.json"
REFERENCE = "silence:500"
DEFAULT_STRATEGIES = "silence:200,silence:500,smart_turn"
END_SLACK_S = 0.01  # a labelled end this far past the audio's length is rounding
TAIL_S = 2.0  # silence streamed after each clip (the stream goes on; no end-of-stream cut)


@dataclass(frozen=True)
class Strategy:
    name: str  # as given: silence:200, smart_turn, smart_turn:150
    vad: VadConfig
    turn: TurnConfig | None


def parse_strategies(spec: str, config: Config, min_silence_ms: int | None) -> list[Strategy]:
    """``silence[:MS],smart_turn[:CHECK_AFTER_MS],...`` -> strategies (ParleyError if bad)."""
    out = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kind, _, number = item.partition(":")
        try:
            ms = int(number) if number else None
        except ValueError:
            raise ParleyError(f"--strategy {item!r}: expected NAME or NAME:MS") from None
        if ms is not None and ms <= 0:
            raise ParleyError(f"--strategy {item!r}: MS must be a positive number of milliseconds")
        if kind == "silence":
            silence = ms or min_silence_ms or config.vad.min_silence_ms
            vad = _vad(config.vad, silence)
            out.append(Strategy(f"silence:{silence}", vad, None))
        elif kind == "smart_turn":
            check = ms or config.turn.check_after_ms
            turn = _turn(config.turn, strategy="smart_turn", check_after_ms=check)
            name = "smart_turn" if ms is None else f"smart_turn:{check}"
            out.append(Strategy(name, config.vad, turn))
        else:
            raise ParleyError(f"--strategy {item!r}: expected silence[:MS] or smart_turn[:MS]")
    if not out:
        raise ParleyError("--strategy: name at least one strategy")
    return out


def _vad(base: VadConfig, min_silence_ms: int) -> VadConfig:
    import dataclasses

    return dataclasses.replace(base, min_silence_ms=min_silence_ms)


def _turn(base: TurnConfig, **changes: Any) -> TurnConfig:
    import dataclasses

    return dataclasses.replace(base, **changes)


@dataclass
class Clip:
    name: str
    kind: str
    audio: np.ndarray  # float32 mono 16 kHz
    ends_s: list[float]  # each labelled turn's end of speech


@dataclass(frozen=True)
class Label:
    """One checked entry of the labels file."""

    file: str  # relative to the labels file's folder
    kind: str
    ends_s: list[float]


def read_labels(labels: Path) -> list[Label]:
    """The labels file's clips, every entry checked before anything runs: ParleyError
    naming the file, the clip and what is wrong (not JSON, no "clips" list, an entry
    without its audio "file" or its "turns" [{"end_s": seconds, "pauses_s": [[start,
    end], ...]}, ...], turns out of order or ending after the audio does, a field of the
    wrong type, an audio file that is not there or not sound)."""

    def bad(problem: str) -> ParleyError:
        return ParleyError(f"--labels {labels}: {problem}")

    if not labels.is_file():
        raise ParleyError(f"no labelled set at {labels}: scripts/make_endpointing_set.py")
    try:
        spec = json.loads(labels.read_text(encoding="utf-8"))
    except OSError as exc:
        raise bad(f"cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"not JSON ({exc})") from None
    clips = spec.get("clips") if isinstance(spec, dict) else None
    if not isinstance(clips, list):
        raise bad('expected a JSON object with a "clips" list (scripts/make_endpointing_set.py)')
    if not clips:
        raise bad('"clips" is empty')
    out = []
    for number, item in enumerate(clips, 1):
        if not isinstance(item, dict):
            raise bad(f"clip {number} is not an object")
        file = item.get("file")
        if not isinstance(file, str) or not file.strip():
            raise bad(f'clip {number} has no "file" (its audio, relative to the labels file)')
        where = f"clip {number} ({file})"
        audio = labels.parent / file
        if not audio.is_file():
            raise bad(f"{where}: no audio file at {audio}")
        for key in ("kind", "text"):
            if not isinstance(item.get(key, ""), str):
                raise bad(f'{where}: "{key}" must be a string, not {item[key]!r}')
        turns = item.get("turns")
        if not isinstance(turns, list) or not all(
            isinstance(t, dict) and _seconds(t.get("end_s")) for t in turns
        ):
            raise bad(f'{where}: "turns" must be a list of {{"end_s": seconds}} objects')
        try:
            _check_turns(turns, _duration_s(audio))
        except ValueError as exc:
            raise bad(f"{where}: {exc}") from None
        out.append(Label(file, str(item.get("kind", "")), [float(t["end_s"]) for t in turns]))
    return out


def _check_turns(turns: list[dict[str, Any]], duration_s: float | None) -> None:
    """ValueError saying what is wrong with a clip's checked-shape ``turns``: ends out
    of order or after the audio's end (``duration_s``; None: unknown), pauses that are
    not [start, end] pairs inside their turn."""
    previous = 0.0
    for number, turn in enumerate(turns, 1):
        end = float(turn["end_s"])
        if number > 1 and end <= previous:
            raise ValueError(
                f"turn {number} ends at {end:g} s, not after turn {number - 1} ({previous:g} s):"
                " list the turns in order"
            )
        if duration_s is not None and end > duration_s + END_SLACK_S:
            raise ValueError(
                f"turn {number} ends at {end:g} s, after the audio, which lasts {duration_s:.2f} s"
            )
        pauses = turn.get("pauses_s", [])
        if not isinstance(pauses, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(map(_seconds, p)) and p[0] <= p[1]
            for p in pauses
        ):
            raise ValueError(
                f'turn {number}: "pauses_s" must be a list of [start, end] pairs of seconds, '
                f"not {pauses!r}"
            )
        if any(p[1] > end for p in pauses):
            raise ValueError(
                f'turn {number}: a pause in "pauses_s" ends after the turn ({end:g} s)'
            )
        previous = end


def _duration_s(audio: Path) -> float | None:
    """The sound file's length in seconds (None where soundfile cannot tell: the
    decoding, later, says why)."""
    try:
        import soundfile

        info = soundfile.info(str(audio))
    except Exception:  # not a sound file, or no soundfile: load_clips reports it
        return None
    return float(info.frames) / float(info.samplerate) if info.samplerate else None


def _seconds(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def load_clips(labels: Path = LABELS, limit: Sequence[str] = ()) -> list[Clip]:
    """The labelled set (``limit``: only the clips whose file names contain one of these)."""
    from parley.audio import AudioConverter, read_audio

    clips = []
    for label in read_labels(labels):
        if limit and not any(part in label.file for part in limit):
            continue
        try:
            pcm, rate = read_audio(labels.parent / label.file)
        except ParleyError:
            raise
        except Exception as exc:  # libsndfile's own errors: not a sound file
            raise ParleyError(
                f"--labels {labels}: {label.file} is not a sound file that can be read ({exc})"
            ) from None
        converter = AudioConverter(rate, 1 if pcm.ndim == 1 else pcm.shape[1])
        audio = np.concatenate([converter.convert(pcm.tobytes()), converter.flush()])
        clips.append(Clip(Path(label.file).stem, label.kind, audio, label.ends_s))
    return clips


@dataclass
class Ended:
    end_s: float  # speech end, as the detector saw it
    decided_s: float  # the decision, in audio time (+ the model's answer time, if it decided)
    by: str  # silence | model | max_turn
    probability: float | None = None


@dataclass
class Tally:
    premature: int = 0
    true_ends: int = 0
    late: int = 0
    missed: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    model_ms: list[float] = field(default_factory=list)
    clips: dict[str, Any] = field(default_factory=dict)


def run_clip(clip: Clip, strategy: Strategy, vad: Any, model: Any, tally: Tally) -> list[Ended]:
    """Stream ``clip`` through a fresh detector; the turns it ends, in order."""
    from server.endpointing import HISTORY, question_audio
    from server.smart_turn import clip as model_clip
    from server.turns import TurnDetector, TurnEnded, TurnPaused

    history = HISTORY if model is not None else 0
    detector = TurnDetector(strategy.vad, vad, RATE, turn=strategy.turn, history_samples=history)
    threshold = strategy.turn.threshold if strategy.turn is not None else 1.0
    ends: list[Ended] = []

    def handle(events: list[Any]) -> None:
        for event in events:
            if isinstance(event, TurnEnded):
                by = "max_turn" if event.forced else "silence"
                ends.append(Ended(event.end_sample / RATE, event.decided_sample / RATE, by))
            elif isinstance(event, TurnPaused) and model is not None:
                started = time.perf_counter()
                probability = model.probability(model_clip(question_audio(detector, event)))
                took = time.perf_counter() - started
                tally.model_ms.append(took * 1000)
                if probability >= threshold and (ended := detector.end_turn(event)) is not None:
                    decided = ended.decided_sample / RATE + took
                    ends.append(Ended(ended.end_sample / RATE, decided, "model", probability))

    audio = np.concatenate([clip.audio, np.zeros(round(TAIL_S * RATE), dtype=np.float32)])
    for at in range(0, len(audio), CHUNK):
        handle(detector.feed(audio[at : at + CHUNK]))
    handle(detector.flush())
    return ends


def score(clip: Clip, ends: list[Ended], tally: Tally, late_ms: float) -> dict[str, Any]:
    """Match the ends to the labelled turns (see the module's docstring)."""
    turn, premature, latencies = 0, 0, []
    for end in ends:
        if turn >= len(clip.ends_s):
            premature += 1  # an end after the last turn's: speech where none is labelled
            continue
        if end.end_s < clip.ends_s[turn] - TOLERANCE_S:
            premature += 1
            continue
        latency = (end.decided_s - clip.ends_s[turn]) * 1000.0
        latencies.append(round(latency, 1))
        tally.true_ends += 1
        tally.latencies_ms.append(latency)
        tally.late += latency > late_ms
        # a later labelled turn whose end this one passed was merged into it: missed
        while turn + 1 < len(clip.ends_s) and clip.ends_s[turn + 1] - TOLERANCE_S <= end.end_s:
            turn += 1
            tally.missed += 1
        turn += 1
    tally.missed += len(clip.ends_s) - turn
    tally.premature += premature
    return {
        "premature": premature,
        "true_end_latency_ms": latencies,
        "ends": [[round(e.end_s, 3), round(e.decided_s, 3), e.by] for e in ends],
    }


def run_endpointing(
    strategies: Sequence[Strategy], clips: Sequence[Clip], model_path: Path | None, late_ms: float
) -> dict[str, Any]:
    """Every strategy over every clip: the JSON object of the bench."""
    from server.smart_turn import SmartTurn
    from server.vad import SileroVad

    vad = SileroVad()
    needs_model = any(s.turn is not None and s.turn.strategy == "smart_turn" for s in strategies)
    model = SmartTurn(model_path) if needs_model and model_path is not None else None
    if needs_model and model is None:
        raise ParleyError("smart_turn needs the model: pass --model or set [turn] model_path")
    results: dict[str, Any] = {}
    for strategy in strategies:
        tally = Tally()
        smart = strategy.turn is not None and strategy.turn.strategy == "smart_turn"
        for clip in clips:
            ends = run_clip(clip, strategy, vad, model if smart else None, tally)
            tally.clips[clip.name] = score(clip, ends, tally, late_ms)
        latency = percentiles(tally.latencies_ms)
        results[strategy.name] = {
            "premature_ends": tally.premature,
            "true_ends": tally.true_ends,
            "late_ends": tally.late + tally.missed,
            "missed_turns": tally.missed,
            "end_of_speech_to_decision_ms": {k: latency.get(k) for k in ("p50", "p90", "max")},
            "model_ms": {k: percentiles(tally.model_ms).get(k) for k in ("p50", "p90")}
            if smart
            else None,
            "clips": tally.clips,
        }
    reference = REFERENCE if REFERENCE in results else next(iter(results))
    return {
        "bench": "endpointing",
        "clips": len(clips),
        "turns": sum(len(c.ends_s) for c in clips),
        "late_ms": late_ms,
        "tolerance_s": TOLERANCE_S,
        "reference": reference,
        "strategies": results,
        "ratios": _ratios(results, reference),
        "targets": _targets(results),
        "machine": machine(),
    }


def _ratios(results: dict[str, Any], reference: str) -> dict[str, Any]:
    """Each strategy's latency p50/p90 and premature ends over the reference's."""
    ref = results[reference]
    out = {}
    for name, result in results.items():
        ratios = {}
        for key in ("p50", "p90"):
            mine = result["end_of_speech_to_decision_ms"][key]
            theirs = ref["end_of_speech_to_decision_ms"][key]
            ratios[f"latency_{key}"] = round(mine / theirs, 3) if mine and theirs else None
        if ref["premature_ends"]:
            ratios["premature"] = round(result["premature_ends"] / ref["premature_ends"], 3)
        else:
            ratios["premature"] = None
        out[name] = ratios
    return out


def _targets(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, where the strategies they compare were run."""
    smart, s200, s500 = (results.get(n) for n in ("smart_turn", "silence:200", "silence:500"))
    if smart is None or s500 is None:
        return {}
    out: dict[str, Any] = {
        "premature_vs_silence_500": smart["premature_ends"] <= s500["premature_ends"],
        "sooner_than_silence_500": (smart["end_of_speech_to_decision_ms"]["p50"] or 1e9)
        < (s500["end_of_speech_to_decision_ms"]["p50"] or 0),
    }
    if s200 is not None:
        out["fewer_premature_than_silence_200"] = smart["premature_ends"] < s200["premature_ends"]
    out["met"] = all(out.values())
    return out


def _latency_text(latency: dict[str, Any]) -> str:
    """``p50 X ms, p90 Y ms``; with no true end to rank, says so instead of None."""
    if latency.get("p50") is None:
        return "p50 -, p90 - (no turn ended on its own: no latency to rank)"
    return f"p50 {latency['p50']} ms, p90 {latency['p90']} ms"


def run_bench_endpointing(args: argparse.Namespace, config: Config) -> int:
    spec = DEFAULT_STRATEGIES if args.strategy is None else args.strategy  # "": refused
    strategies = parse_strategies(spec, config, args.min_silence_ms)
    clips = load_clips(Path(args.labels) if args.labels else LABELS, args.clip or ())
    if not clips:
        raise ParleyError("no clips matched --clip")
    model = Path(args.model) if args.model else config.turn_model_path(config.turn)
    result = run_endpointing(strategies, clips, model, args.late_ms)
    lines = [
        f"{name:>16}: premature {r['premature_ends']}, late {r['late_ends']}, "
        + _latency_text(r["end_of_speech_to_decision_ms"])
        for name, r in result["strategies"].items()
    ]
    report(result, args, "\n".join(lines))
    return 0
