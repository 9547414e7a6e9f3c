"""Waterfalls: a turn's latency record, and a turn's stored spans, as rows on one time
axis (milliseconds; 0 = the VAD's end-of-speech decision, or the trace's first span)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from admin.charts import Bar, Mark
from parley import db

STAGES = (  # stage, label, mark that ends it (ms after the decision)
    ("stt", "speech-to-text", "stt_done_ms"),
    ("caption", "caption", "caption_done_ms"),
    ("analyse", "analyse", "analyse_done_ms"),
    ("retrieve", "retrieve", "retrieve_done_ms"),
    ("llm", "LLM to first sentence", "first_sentence_ms"),
    ("speech_llm", "speech LLM to first output", ""),
    ("tts", "TTS to first audio", "tts_first_audio_ms"),
    ("send", "send first audio", "first_audio_sent_ms"),
)


def _num(record: Mapping[str, Any], key: str) -> float | None:
    value = record.get(key)
    return float(value) if isinstance(value, int | float) else None


def _speech_llm_end(record: Mapping[str, Any]) -> float | None:
    return _num(record, "speech_llm_first_audio_ms") or _num(record, "first_sentence_ms")


def latency_bars(record: Mapping[str, Any]) -> list[Bar]:
    """One turn's stages, each from when its inputs were ready to its first output,
    with its model time under it, in the order they started."""
    bars: list[Bar] = []
    endpointing = _num(record, "endpointing_ms") or 0.0
    if endpointing:
        bars.append(Bar("end of speech → VAD decision", -endpointing, 0.0, "endpointing"))
    spans = []
    previous = 0.0  # a record without stage totals: each stage starts where one ended
    for stage, label, mark in STAGES:
        total = _num(record, f"{stage}_ms")
        end = _speech_llm_end(record) if stage == "speech_llm" else _num(record, mark)
        if end is None and total is not None and stage == "send":
            end = previous + total
        if end is None:
            continue
        spans.append((end - total if total is not None else previous, end, stage, label))
        previous = end
    for start, end, stage, label in sorted(spans):
        bars.append(Bar(label, start, end, f"stage {stage}"))
        model = _num(record, f"{stage}_model_ms")
        if model:
            overhead = (end - start) - model
            bars.append(
                Bar(
                    "model",
                    start,
                    start + model,
                    "model",
                    f"model {model:.1f} ms, transfer + queue {overhead:.1f} ms",
                    indent=1,
                )
            )
        if stage == "llm" and (token := _num(record, "llm_first_token_ms")) is not None:
            bars.append(Bar("first token", start, token, "mark", indent=1))
    total = _num(record, "turn_total_ms")
    if total is not None:
        bars.append(Bar("VAD decision → turn finished", 0.0, total, "total"))
    v2v = _num(record, "voice_to_voice_ms")
    if v2v is not None:
        bars.append(Bar("voice-to-voice (edge clock)", -endpointing, v2v - endpointing, "v2v"))
    return bars


def latency_marks(record: Mapping[str, Any]) -> list[Mark]:
    """End of speech and the VAD decision on the latency waterfall's axis."""
    endpointing = _num(record, "endpointing_ms")
    if endpointing is None:
        return []
    return [
        Mark("end of speech", -endpointing, "mark-speech"),
        Mark("VAD decision", 0.0, "mark-decision"),
    ]


SPAN_LIMIT = 2000  # spans drawn on the trace page


def _of_turn(turn: db.Turn) -> Any:
    s = db.Span
    condition = s.turn_id == turn.id
    if turn.trace_id:
        condition = condition | (s.trace_id == turn.trace_id)
    return condition


def trace_spans(turn: db.Turn) -> list[db.Span]:
    """The turn's stored spans (the first SPAN_LIMIT): by trace id when it has one, and
    by turn id."""
    s = db.Span
    return list(s.select().where(_of_turn(turn)).order_by(s.start_ns, s.span_id).limit(SPAN_LIMIT))


def span_count(turn: db.Turn) -> int:
    """How many spans the turn's trace has: the same spans as :func:`trace_spans`."""
    return int(db.Span.select().where(_of_turn(turn)).count())


def speech_marks(spans: Iterable[db.Span]) -> list[Mark]:
    """End of speech and the VAD's decision on a trace's time axis (ms from the first
    span): the ``vad`` span runs from speech start to the decision, and records where
    speech started and ended in the stream (``parley.vad.speech_start_s``, ``_end_s``).
    Streaming STT starts with the speech, so its span is long; what matters is how long
    after the end of speech it ends."""
    spans = list(spans)
    if not spans:
        return []
    origin = min(s.start_ns for s in spans)
    for span in spans:
        attributes = span.attributes if isinstance(span.attributes, Mapping) else {}
        start, end = (attributes.get(f"parley.vad.speech_{k}_s") for k in ("start", "end"))
        if span.name == "vad" and isinstance(start, int | float) and isinstance(end, int | float):
            speech_end = (span.start_ns - origin) / 1e6 + (end - start) * 1000.0
            return [
                Mark("end of speech", speech_end, "mark-speech"),
                Mark("VAD decision", (span.end_ns - origin) / 1e6, "mark-decision"),
            ]
    return []


def span_bars(spans: Iterable[db.Span]) -> list[Bar]:
    """Spans in tree order (children under their parent), times from the first start."""
    spans = list(spans)
    if not spans:
        return []
    origin = min(s.start_ns for s in spans)
    ids = {s.span_id for s in spans}
    children: dict[str, list[db.Span]] = {}
    roots = []
    for span in spans:
        if span.parent_id and span.parent_id in ids:
            children.setdefault(span.parent_id, []).append(span)
        else:
            roots.append(span)
    bars: list[Bar] = []
    services = list(dict.fromkeys(str(s.service) for s in spans))  # a colour each, in order

    def visit(span: db.Span, depth: int) -> None:
        colour = f"svc{services.index(str(span.service)) % 6}"
        css = "error" if str(span.status).startswith("ERROR") else colour
        start, end = (span.start_ns - origin) / 1e6, (span.end_ns - origin) / 1e6
        title = f"{span.service}: {span.name} {end - start:.2f} ms {span.status}".strip()
        bars.append(Bar(f"{span.name} ({span.service})", start, end, css, title, min(depth, 8)))
        for child in children.get(span.span_id, []):
            visit(child, depth + 1)

    for root in roots:
        visit(root, 0)
    return bars
