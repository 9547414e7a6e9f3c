"""The Converse servicer: checks the Hello, then hands the stream to a Session.

Protobuf <-> domain only: validation errors become an Error event followed by the
matching gRPC status; everything after the Hello is the session's job.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Mapping

import grpc

import parley
from parley.audio import AudioFormatError, check_format
from parley.config import Config, ConfigError
from parley.telemetry import Telemetry
from protos import edge_pb2, edge_pb2_grpc
from server.auth import DeviceGate, Identity, TokenRefused
from server.outbox import Outbox
from server.pipeline import PipelineRunner
from server.session import Session
from server.store import TurnStore
from server.vad import SileroVad
from server.vad_scheduler import BatchScheduler
from server.worker_clients import WorkerPool

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
ErrorCode = edge_pb2.Error.Code


class HelloRejected(Exception):
    def __init__(self, code: edge_pb2.Error.Code, status: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


class EdgeServicer(edge_pb2_grpc.EdgeServicer):
    def __init__(
        self,
        config: Config,
        store: TurnStore,
        vad: BatchScheduler[SileroVad],
        pools: Mapping[str, WorkerPool],
        telemetry: Telemetry,
        gate: DeviceGate | None = None,
    ) -> None:
        self.config = config
        self.gate = gate or DeviceGate(config.server)  # default: a loopback server's
        self.telemetry = telemetry
        self.store = store
        self.vad = vad
        self.pools = pools

    def _check_hello(self, event: edge_pb2.EdgeEvent) -> edge_pb2.Hello:
        if event.WhichOneof("event") != "hello":
            raise HelloRejected(
                ErrorCode.BAD_REQUEST,
                grpc.StatusCode.INVALID_ARGUMENT,
                "the first message on a Converse stream must be a Hello",
            )
        hello = event.hello
        if not hello.device_id:
            raise HelloRejected(
                ErrorCode.BAD_REQUEST, grpc.StatusCode.INVALID_ARGUMENT, "Hello needs a device_id"
            )
        return hello

    def _check_request(self, hello: edge_pb2.Hello) -> None:
        """What an admitted device asks for: a configured pipeline, an audio format we
        take (checked after authentication, so strangers learn no pipeline names)."""
        try:
            self.config.pipeline(hello.pipeline or self.config.server.default_pipeline)
        except ConfigError as exc:
            raise HelloRejected(
                ErrorCode.UNKNOWN_PIPELINE, grpc.StatusCode.NOT_FOUND, str(exc)
            ) from None
        fmt = hello.audio_format
        try:
            if fmt.encoding != edge_pb2.AudioFormat.PCM16LE:
                raise AudioFormatError("only PCM16LE audio is supported")
            check_format(fmt.sample_rate, fmt.channels)
        except AudioFormatError as exc:
            raise HelloRejected(
                ErrorCode.BAD_AUDIO_FORMAT, grpc.StatusCode.INVALID_ARGUMENT, str(exc)
            ) from None

    async def _admit(self, hello: edge_pb2.Hello, context: grpc.aio.ServicerContext) -> Identity:
        """The device's identity (server/auth.py), or UNAUTHENTICATED."""
        try:
            return await self.gate.admit(hello, context)
        except TokenRefused as exc:
            raise HelloRejected(
                ErrorCode.UNAUTHENTICATED, grpc.StatusCode.UNAUTHENTICATED, exc.reason
            ) from None

    async def Converse(
        self,
        request_iterator: AsyncIterator[edge_pb2.EdgeEvent],
        context: grpc.aio.ServicerContext,
    ) -> None:
        try:
            async with asyncio.timeout(HELLO_TIMEOUT_S):
                first = await anext(request_iterator)
            hello = self._check_hello(first)
            identity = await self._admit(hello, context)
            self._check_request(hello)
        except (StopAsyncIteration, TimeoutError):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no Hello received")
        except HelloRejected as exc:
            log.warning("rejected a stream: %s", exc.message)
            await context.write(
                edge_pb2.ServerEvent(
                    error=edge_pb2.Error(code=exc.code, message=exc.message, fatal=True)
                )
            )
            await context.abort(exc.status, exc.message)

        pipeline = self.config.pipeline(hello.pipeline or self.config.server.default_pipeline)
        session_id = str(uuid.uuid4())
        outbox = Outbox(context)
        await self.store.start_conversation(
            session_id,
            hello.device_id,
            pipeline.name,
            hello.agent_version,
            auth=identity.method,
            peer=identity.peer,
        )
        session = Session(
            session_id=session_id,
            hello=hello,
            runner=PipelineRunner(pipeline, self.pools, self.config.server),
            store=self.store,
            vad=self.vad,
            vad_config=self.config.vad,
            emit=outbox,
            telemetry=self.telemetry,
        )
        log.info(
            "device %s connected from %s (auth: %s; pipeline %s, session %s)",
            hello.device_id,
            identity.peer,
            identity.method,
            pipeline.name,
            session_id,
        )
        try:
            outbox(
                edge_pb2.ServerEvent(
                    welcome=edge_pb2.Welcome(
                        session_id=session_id,
                        conversation_id=session_id,
                        pipeline=pipeline.name,
                        input_format=edge_pb2.AudioFormat(
                            sample_rate=16000, channels=1, encoding=edge_pb2.AudioFormat.PCM16LE
                        ),
                        server_version=parley.__version__,
                    )
                )
            )
            await session.run(request_iterator)
        finally:
            await outbox.close()
            await self.store.end_conversation(session_id)
            log.info("device %s disconnected (session %s)", hello.device_id, session_id)
