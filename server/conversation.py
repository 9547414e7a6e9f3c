"""One Converse stream after its Hello: open the conversation, run the session, and
end it the same way, exactly once, however the stream ends.

A stream ends by the edge half-closing it (the turns already heard are answered
first), by the edge cancelling it or going away (gRPC cancels the handler; a network
drop is found by keepalive), by its deadline, by the server stopping, or by an edge
that stops reading its events (``limits.max_outbox_events``). Every way runs the same
cleanup once, in its own task that a second (or third) cancellation cannot interrupt:
the session's turns are cancelled and their store writes land, the outbox writer
stops, ``conversation.ended_at`` is set (a stream that sent nothing after its Hello,
like ``parley edge --dry-run``, has its turn-less conversation deleted instead), and one
"disconnected" line is logged with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

import parley
from parley.config import Config, PipelineConfig
from parley.telemetry import Telemetry
from protos import edge_pb2
from server.auth import Identity
from server.delivery import AudioReceipts, DeliveryLedger
from server.outbox import Outbox
from server.pipeline import PipelineRunner
from server.session import Session
from server.smart_turn import ClipScorer
from server.store import TurnStore
from server.store_failures import StoreFailure
from server.vad import SileroVad
from server.vad_scheduler import BatchScheduler
from server.worker_clients import WorkerPool

log = logging.getLogger("server.edge_service")


async def run_to_end(work: Awaitable[None]) -> None:
    """Run ``work`` to its end even if the caller is cancelled meanwhile, any number
    of times; the cancellation is passed on once it is done."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    task.result()


@dataclass
class Services:
    """What every stream shares (one per server process)."""

    config: Config
    store: TurnStore
    vad: BatchScheduler[SileroVad]
    pools: dict[str, WorkerPool]
    telemetry: Telemetry
    ledger: DeliveryLedger
    # The end-of-turn model's scorers, by model file (pipelines with smart_turn).
    end_of_turn: dict[Path, BatchScheduler[ClipScorer]] = field(default_factory=dict)
    # Streams not cleaned up yet (the server waits for them before closing the store).
    open: set[asyncio.Event] = field(default_factory=set)

    async def wait_closed(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds) until every stream's cleanup has run."""
        pending = [asyncio.ensure_future(done.wait()) for done in self.open]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
            for waiter in pending:
                waiter.cancel()


class Conversation:
    def __init__(
        self,
        services: Services,
        hello: edge_pb2.Hello,
        identity: Identity,
        pipeline: PipelineConfig,
        context: grpc.aio.ServicerContext,
    ) -> None:
        self.services, self.hello, self.pipeline, self.context = services, hello, pipeline, context
        self.identity = identity  # who the device proved to be, and from where
        self.session_id = str(uuid.uuid4())
        self.session: Session | None = None
        self.outbox: Outbox | None = None
        self.ended = "the stream ended"

    async def run(self, events: AsyncIterator[edge_pb2.EdgeEvent | None]) -> None:
        done = asyncio.Event()
        self.services.open.add(done)
        try:
            await self._run(events)
        finally:
            self.services.open.discard(done)
            done.set()

    async def _run(self, events: AsyncIterator[edge_pb2.EdgeEvent | None]) -> None:
        services, hello = self.services, self.hello
        try:
            stored = await services.store.start_conversation(
                self.session_id,
                hello.device_id,
                self.pipeline.name,
                hello.agent_version,
                auth=self.identity.method,
                peer=self.identity.peer,
            )
        except StoreFailure as failure:
            message = f"the server cannot store conversations: {failure.reason}"
            log.error("refused device %s: %s (%s)", hello.device_id, message, failure.detail)
            error = edge_pb2.Error(code=edge_pb2.Error.STORE_FAILED, message=message, fatal=True)
            with contextlib.suppress(Exception):  # the edge may be gone already
                await self.context.write(edge_pb2.ServerEvent(error=error))
            await self.context.abort(grpc.StatusCode.UNAVAILABLE, message)
        try:
            await self._serve(events, stored)
        except asyncio.CancelledError:
            remaining = self.context.time_remaining()
            self.ended = (
                "its deadline passed"
                if remaining is not None and remaining <= 0
                else "cancelled (the edge went away, or the server is stopping)"
            )
            raise
        except grpc.aio.AbortError:  # the stream was ended on purpose (see _serve)
            raise
        except Exception as exc:  # a bug: one traceback in the log, a clear status
            log.exception("session %s failed", self.session_id)
            self.ended = f"internal error: {exc}"
            await self.context.abort(grpc.StatusCode.INTERNAL, f"internal error: {exc}")
        finally:
            await run_to_end(self._cleanup())

    async def _serve(
        self, events: AsyncIterator[edge_pb2.EdgeEvent | None], stored: tuple[str, int]
    ) -> None:
        services, hello, config = self.services, self.hello, self.services.config
        resume = services.ledger.resume(hello.device_id, hello.audio_epoch, stored)
        self.outbox = outbox = Outbox(self.context, config.limits.max_outbox_events)
        self.session = session = Session(
            session_id=self.session_id,
            hello=hello,
            runner=PipelineRunner(self.pipeline, services.pools, config.server),
            store=services.store,
            vad=services.vad,
            vad_config=config.vad,
            turn=(turn := config.turn_for(self.pipeline.name)),
            end_of_turn=services.end_of_turn.get(config.turn_model_path(turn)),
            emit=outbox,
            telemetry=services.telemetry,
            limits=config.limits,
            receipts=AudioReceipts(
                resume, ledger=services.ledger, device_id=hello.device_id, epoch=hello.audio_epoch
            ),
        )
        log.info(
            "device %s connected from %s (auth: %s; pipeline %s, session %s%s)",
            hello.device_id,
            self.identity.peer,
            self.identity.method,
            self.pipeline.name,
            self.session_id,
            f", audio resumes at {resume}" if resume else "",
        )
        outbox(
            edge_pb2.ServerEvent(
                welcome=edge_pb2.Welcome(
                    session_id=self.session_id,
                    conversation_id=self.session_id,
                    pipeline=self.pipeline.name,
                    input_format=edge_pb2.AudioFormat(
                        sample_rate=16000, channels=1, encoding=edge_pb2.AudioFormat.PCM16LE
                    ),
                    server_version=parley.__version__,
                    next_audio_seq=resume,
                )
            )
        )
        running = asyncio.create_task(session.run(events), name=f"session-{self.session_id}")
        overflow = asyncio.create_task(outbox.overflowed.wait())
        try:
            await asyncio.wait([running, overflow], return_when=asyncio.FIRST_COMPLETED)
        finally:
            overflow.cancel()
            if not running.done():
                running.cancel()
            await asyncio.gather(running, overflow, return_exceptions=True)
        if outbox.overflowed.is_set():
            limit = config.limits.max_outbox_events
            self.ended = f"it stopped reading ({limit} events queued: limits.max_outbox_events)"
            await self.context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the edge did not read its events ({limit} queued, limits.max_outbox_events)",
            )
        running.result()
        self.ended = "the edge closed the stream"

    async def _cleanup(self) -> None:
        """Everything a stream's end needs, each step guarded so none skips the next."""
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        if self.session is not None:
            steps.append(("close the session", self.session.close))
        if self.outbox is not None:
            steps.append(("close the outbox", self.outbox.close))
        steps.append(("end the conversation", self._end_conversation))
        for what, step in steps:
            try:
                await step()
            except Exception:
                log.exception("session %s: could not %s", self.session_id, what)
        turns = self.session.turn_index if self.session is not None else 0
        log.info(
            "device %s disconnected (session %s, %d turn(s)): %s",
            self.hello.device_id,
            self.session_id,
            turns,
            self.ended,
        )

    async def _end_conversation(self) -> None:
        """Set ``ended_at``; a stream that sent nothing after its Hello (``parley edge
        --dry-run``, or an edge gone right after connecting) leaves no conversation row
        behind unless it has a turn (the store checks, in the same transaction)."""
        store = self.services.store
        with contextlib.suppress(StoreFailure):  # logged by the store
            if self.session is not None and self.session.events_in == 0:
                if await store.discard_conversation(self.session_id):
                    log.info("session %s sent nothing after its Hello: not kept", self.session_id)
                return
            await store.end_conversation(self.session_id)
