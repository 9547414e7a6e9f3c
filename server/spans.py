"""A pipeline stage's span: a child of the turn's span, named for the stage, ended
(as an error, or cancelled by barge-in) when the stage's work ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from parley.config import PoolConfig, StageConfig
from server.turn_trace import TurnTrace


def engine_attributes(pool: PoolConfig) -> dict[str, str]:
    return {"parley.engine": pool.engine, "parley.model": str(pool.options.get("model", ""))}


def stage_span(
    turn_trace: TurnTrace | None,
    key: str,
    stage: StageConfig,
    attributes: Mapping[str, Any],
) -> trace.Span:
    """The span of one stage (named ``key``: its kind, or its name when a pipeline has
    several of that kind); INVALID_SPAN when the turn is not traced."""
    if turn_trace is None:
        return trace.INVALID_SPAN
    return turn_trace.child(
        key, {**attributes, "parley.stage.name": stage.name, "parley.stage.kind": stage.kind}
    )


@contextlib.contextmanager
def ending(span: trace.Span) -> Iterator[None]:
    """End ``span`` when the block ends; a failure marks it as an error, a cancellation
    (barge-in) as cancelled."""
    try:
        yield
    except asyncio.CancelledError:
        span.set_attribute("parley.cancelled", True)
        raise
    except Exception as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, str(exc)))
        raise
    finally:
        span.end()
