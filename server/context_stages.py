"""The stages whose output informs the answer: ``analyse`` (labels with scores),
``retrieve`` (passages) and ``caption`` (a description of the camera image).

Each runs on its worker pool (an ``analyse`` stage on an ``llm`` pool is an
LLM-prompted classifier: the transcript and the stage's ``labels`` go to the LLM, whose
answer names one label). Its result is a :class:`StageOutput`, stored with the turn
(``Turn.outputs[stage name]``, see docs/architecture.md#stage-outputs) whether it
succeeded or failed: a failed context stage never fails the turn, the answer just goes without
it. :func:`context_text` is what a stage adds to the answer's system prompt, from its
``context`` parameter (a template; empty: nothing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from parley.config import ServerConfig, StageConfig
from protos import workers_pb2 as wpb
from server import stage_clients
from server import worker_clients as clients
from server.worker_clients import WorkerPool

# What a stage adds to the answer's prompt unless its ``context`` parameter says
# otherwise ({passages}, {caption}, {label}, {score}, {labels} are filled in).
DEFAULT_CONTEXT = {
    "retrieve": "Passages from the user's documents that may help you answer:\n{passages}",
    "caption": "What the camera sees right now: {caption}",
    "analyse": "",
}


@dataclass
class StageOutput:
    """One context stage's result for one turn, as stored (``value`` is JSON):

    - analyse: ``{"labels": [{"label": str, "score": float}, ...]}`` best first, plus
      ``"input"`` ("audio", "transcript" or "frame");
    - retrieve: ``{"query": str, "passages": [{"text", "source", "chunk", "score"}]}``
      nearest first;
    - caption: ``{"text": str}``.

    ``status`` is "done", "failed" (``error`` says why) or "skipped" (nothing to read,
    e.g. no camera frame during the turn)."""

    name: str
    kind: str
    status: str = "done"
    value: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    model_seconds: float = 0.0

    def as_output(self) -> dict[str, Any]:
        """The entry stored as ``Turn.outputs[name]``: ``kind``, ``status``, ``error`` and
        the value's fields; an analyse stage's best label is also ``label`` and
        ``score``, so an annotation question can be bound to ``NAME.label``."""
        entry: dict[str, Any] = {"kind": self.kind, "status": self.status, "error": self.error}
        entry.update(self.value)
        labels = self.value.get("labels") if self.kind == "analyse" else None
        if labels:
            entry["label"], entry["score"] = labels[0]["label"], labels[0]["score"]
        return entry


class Skipped(Exception):
    """The stage has nothing to work on in this turn."""


def _labels(result: Sequence[wpb.Label]) -> list[dict[str, Any]]:
    return [{"label": x.label, "score": round(float(x.score), 6)} for x in result]


def _str_map(values: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}


async def run_context_stage(
    stage: StageConfig,
    pool: WorkerPool,
    server: ServerConfig,
    *,
    pcm: bytes,
    sample_rate: int,
    transcript: str,
    frame: bytes | None,
) -> StageOutput:
    """Run one analyse, retrieve or caption stage; raises StageError on a worker
    failure and Skipped when the turn holds nothing for it."""
    params, timeout = stage.params, server.stage_timeout_s
    out = StageOutput(stage.name, stage.kind)
    options = _str_map(params.get("options"))
    if stage.kind == "retrieve":
        if not transcript:
            raise Skipped("no transcript to search with")
        request = wpb.RetrieveRequest(
            query=transcript, top_k=int(params.get("top_k", 0)), options=options
        )
        found = await stage_clients.retrieve(pool, request, timeout=timeout, stage=stage.name)
        out.value = {
            "query": transcript,
            "passages": [
                {"text": p.text, "source": p.source, "chunk": p.chunk, "score": round(p.score, 6)}
                for p in found.passages
            ],
        }
        out.model_seconds = found.model_seconds
    elif stage.kind == "caption":
        if frame is None:
            raise Skipped("no camera frame during the turn")
        caption = wpb.CaptionRequest(
            image=frame,
            prompt=str(params.get("prompt", "")),
            max_tokens=int(params.get("max_tokens", 0)),
            options=options,
        )
        said = await stage_clients.caption(pool, caption, timeout=timeout, stage=stage.name)
        out.value, out.model_seconds = {"text": said.text.strip()}, said.model_seconds
    else:
        on = str(params.get("on", "audio"))
        if pool.config.stage == "llm":
            labels, seconds = await _classify_with_llm(stage, pool, server, transcript)
        else:
            labels, seconds = await _analyse(
                stage, pool, timeout, on, pcm, sample_rate, transcript, frame
            )
        out.value, out.model_seconds = {"input": on, "labels": labels}, seconds
    return out


async def _analyse(
    stage: StageConfig,
    pool: WorkerPool,
    timeout: float,
    on: str,
    pcm: bytes,
    sample_rate: int,
    transcript: str,
    frame: bytes | None,
) -> tuple[list[dict[str, Any]], float]:
    options = _str_map(stage.params.get("options"))
    if on == "transcript":
        if not transcript:
            raise Skipped("no transcript to analyse")
        request = wpb.AnalyseRequest(text=transcript, options=options)
    elif on == "frame":
        if frame is None:
            raise Skipped("no camera frame during the turn")
        request = wpb.AnalyseRequest(image=frame, options=options)
    else:
        request = wpb.AnalyseRequest(audio=pcm, sample_rate=sample_rate, options=options)
    result = await stage_clients.analyse(pool, request, timeout=timeout, stage=stage.name)
    return _labels(result.labels), result.model_seconds


async def _classify_with_llm(
    stage: StageConfig, pool: WorkerPool, server: ServerConfig, transcript: str
) -> tuple[list[dict[str, Any]], float]:
    """An LLM-prompted classifier: the LLM is asked for one of ``labels``; the label
    it names gets score 1, the others 0 (an answer naming none is a failure)."""
    labels = [str(x) for x in stage.params.get("labels", [])]
    if not labels:
        raise ValueError(f"analyse stage {stage.name!r} on an llm pool needs labels = [...]")
    if not transcript:
        raise Skipped("no transcript to classify")
    instruction = str(
        stage.params.get(
            "instruction",
            "Classify the user's message. Answer with exactly one of these labels and "
            "nothing else: {labels}.",
        )
    ).format(labels=", ".join(labels))
    request = wpb.LlmRequest(
        messages=[
            wpb.ChatMessage(role="system", content=instruction),
            wpb.ChatMessage(role="user", content=transcript),
        ],
        temperature=0.0,
        max_tokens=int(stage.params.get("max_tokens", 16)),
    )
    text, seconds = "", 0.0
    async for delta in clients.generate(pool, request, timeout=server.stage_timeout_s):
        text += delta.text
        seconds = delta.model_seconds or seconds
    chosen = _named_label(text, labels)
    if chosen is None:
        raise LabelNotFound(f"the LLM answered {text.strip()!r}, which names none of {labels}")
    ranked = [chosen, *(x for x in labels if x != chosen)]
    return [{"label": x, "score": 1.0 if x == chosen else 0.0} for x in ranked], seconds


class LabelNotFound(Exception):
    """An LLM-prompted classifier answered without naming a label."""


def _named_label(answer: str, labels: Sequence[str]) -> str | None:
    """The label that appears first in ``answer`` (whole words, any case)."""
    found = [
        (m.start(), label)
        for label in labels
        if (m := re.search(rf"(?<!\w){re.escape(label)}(?!\w)", answer, re.IGNORECASE))
    ]
    return min(found)[1] if found else None


def context_text(stage: StageConfig, output: StageOutput) -> str:
    """What ``output`` adds to the answer's system prompt (may be empty)."""
    if output.status != "done":
        return ""
    template = str(stage.params.get("context", DEFAULT_CONTEXT.get(stage.kind, "")))
    if not template:
        return ""
    value = output.value
    if stage.kind == "retrieve":
        passages = "\n".join(f"- {p['text']}" for p in value.get("passages", []))
        return template.format(passages=passages) if passages else ""
    if stage.kind == "caption":
        return template.format(caption=value.get("text", "")) if value.get("text") else ""
    labels = value.get("labels", [])
    if not labels:
        return ""
    listed = ", ".join(f"{x['label']} ({x['score']:.2f})" for x in labels)
    return template.format(label=labels[0]["label"], score=labels[0]["score"], labels=listed)
