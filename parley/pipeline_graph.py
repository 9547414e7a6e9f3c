"""A pipeline as a small graph of typed stages: what each stage takes, default wiring,
and the checks that refuse a graph that cannot run.

Each stage has a name (its key in ``[pipelines.NAME]``), a kind (the pool's stage, or
``kind = ...``) and inputs: the stages whose outputs it consumes. Inputs default to
the usual shapes, so common pipelines need no wiring:

- ``stt``, ``caption`` and ``analyse`` on audio or a frame read the turn itself;
- ``retrieve`` and ``analyse`` with ``on = "transcript"`` read the ``stt`` stage's text;
- the answer stage (``llm`` or ``speech_llm``, exactly one) reads the transcript
  (``llm``) or the audio (``speech_llm``) and, as context in its prompt, every
  ``retrieve`` and ``caption`` stage and every ``analyse`` stage with a ``context``
  template (other analyse stages run beside the answer and are only stored);
- ``tts`` speaks the answer stage's text; a ``speech_llm`` without a ``tts`` answers
  with audio itself.

An explicit ``inputs = ["a", "b"]`` replaces the default. A graph with an unknown kind,
an input that names no stage (or lacks one its kind needs), or a cycle is refused with
a :class:`~parley.errors.ConfigError` naming the stage.
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from parley.errors import ConfigError
from parley.kinds import ANSWER_KINDS, CONTEXT_KINDS, KINDS

ANALYSE_ON = ("audio", "transcript", "frame")


@dataclass(frozen=True)
class Node:
    """What the wiring needs to know of a stage."""

    name: str
    kind: str
    inputs: tuple[str, ...] | None = None  # None: the default wiring
    on: str = "audio"  # analyse stages: what they read
    feeds_prompt: bool = True  # context stages: their output goes into the answer's prompt


# Names a stage cannot take: Turn.outputs keeps the VAD's bounds under "vad".
RESERVED_NAMES = frozenset({"vad"})


def _where(pipeline: str, stage: str) -> str:
    return f"[pipelines.{pipeline}.{stage}]"


def _needs(node: Node) -> tuple[str, ...]:
    """The kinds a stage must have among its inputs (one of each)."""
    if node.kind in ("retrieve", "llm") or (node.kind == "analyse" and node.on == "transcript"):
        return ("stt",)
    if node.kind == "tts":
        return ANSWER_KINDS
    return ()


def _default_inputs(node: Node, nodes: Sequence[Node]) -> tuple[str, ...]:
    by_kind = [(n.name, n.kind) for n in nodes if n.name != node.name]
    if node.kind in ("retrieve", "analyse"):
        reads_text = node.kind == "retrieve" or node.on == "transcript"
        return tuple(n for n, k in by_kind if k == "stt" and reads_text)
    if node.kind in ANSWER_KINDS:
        text = [n for n, k in by_kind if k == "stt" and node.kind == "llm"]
        feeding = {n.name for n in nodes if n.feeds_prompt}
        return (*text, *(n for n, k in by_kind if k in CONTEXT_KINDS and n in feeding))
    if node.kind == "tts":
        return tuple(n for n, k in by_kind if k in ANSWER_KINDS)
    return ()


def wire(pipeline: str, nodes: Sequence[Node]) -> dict[str, tuple[str, ...]]:
    """Every stage's inputs (name -> names), in an order where inputs come first.

    ConfigError names the stage when the graph cannot run."""
    names = {n.name for n in nodes}
    for node in nodes:
        if node.name in RESERVED_NAMES:
            raise ConfigError(
                f"{_where(pipeline, node.name)}: {node.name!r} is reserved (the turn stores "
                "the VAD's speech bounds under that name); call the stage something else"
            )
        if node.kind not in KINDS:
            raise ConfigError(
                f"{_where(pipeline, node.name)}: unknown kind {node.kind!r} "
                f"(expected one of {', '.join(KINDS)})"
            )
        if node.kind == "analyse" and node.on not in ANALYSE_ON:
            raise ConfigError(
                f"{_where(pipeline, node.name)}: on = {node.on!r}; expected one of "
                f"{', '.join(ANALYSE_ON)}"
            )
    answers = [n for n in nodes if n.kind in ANSWER_KINDS]
    if len(answers) != 1:
        found = ", ".join(n.name for n in answers) or "none"
        raise ConfigError(
            f"[pipelines.{pipeline}]: needs exactly one answer stage (llm or speech_llm), "
            f"has {found}"
        )
    for kind in ("stt", "tts"):
        several = [n.name for n in nodes if n.kind == kind]
        if len(several) > 1:
            raise ConfigError(f"{_where(pipeline, several[1])}: a second {kind} stage")
    answer = answers[0]
    if answer.kind == "llm" and not any(n.kind == "tts" for n in nodes):
        raise ConfigError(
            f"{_where(pipeline, 'tts')}: missing: the llm stage {answer.name!r} answers in "
            "text, so the pipeline needs a tts stage (a table with a pool)"
        )
    wiring: dict[str, tuple[str, ...]] = {}
    kinds = {n.name: n.kind for n in nodes}
    for node in nodes:
        inputs = node.inputs if node.inputs is not None else _default_inputs(node, nodes)
        where = _where(pipeline, node.name)
        for name in inputs:
            if name not in names:
                raise ConfigError(f"{where}: input {name!r} is not a stage of this pipeline")
            if name == node.name:
                raise ConfigError(f"{where}: a stage cannot be its own input")
        needed = _needs(node)
        if needed and not any(kinds[name] in needed for name in inputs):
            raise ConfigError(
                f"{where}: missing input: a {node.kind} stage needs a "
                f"{' or '.join(needed)} stage among its inputs"
            )
        wiring[node.name] = tuple(inputs)
    try:
        order = list(graphlib.TopologicalSorter(wiring).static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        raise ConfigError(
            f"{_where(pipeline, cycle[0])}: its inputs form a cycle: {' -> '.join(cycle)}"
        ) from None
    return {name: wiring[name] for name in order}


def check_pool(pipeline: str, name: str, kind: str, pool: str, pool_stage: str) -> None:
    """The pool must serve the stage's kind (an analyse stage may also use an llm pool)."""
    if pool_stage == kind or (kind == "analyse" and pool_stage == "llm"):
        return
    wanted = name if name in KINDS and name == kind else kind
    raise ConfigError(f"{_where(pipeline, name)}: pool {pool!r} serves {pool_stage}, not {wanted}")


def feeds_prompt(kind: str, params: Mapping[str, object]) -> bool:
    """Whether a context stage's output goes into the answer's prompt: its ``context``
    template is not empty (analyse stages have none unless given one)."""
    default = "" if kind == "analyse" else "yes"
    return bool(params.get("context", default))


def analyse_on(params: Mapping[str, object], pool_stage: str | None) -> str:
    """What an analyse stage reads: ``on``, default the transcript for an LLM-prompted
    classifier and the audio otherwise."""
    return str(params.get("on") or ("transcript" if pool_stage == "llm" else "audio"))
