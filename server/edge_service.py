"""The Converse servicer: checks the Hello, then hands the stream to a Conversation.

Protobuf <-> domain only: validation errors become an Error event followed by the
matching gRPC status; everything after the Hello is the conversation's job
(:mod:`server.conversation`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping

import grpc

from parley.audio import AudioFormatError, check_format
from parley.config import Config, ConfigError
from parley.telemetry import Telemetry
from protos import edge_pb2, edge_pb2_grpc
from server.auth import DeviceGate, Identity, TokenRefused
from server.conversation import Conversation, Services
from server.delivery import DeliveryLedger
from server.limits import check_hello
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
        self.gate = gate or DeviceGate(config.server, store)  # default: a loopback server's
        self.services = Services(config, store, vad, dict(pools), telemetry, DeliveryLedger())

    def _check_hello(self, event: edge_pb2.EdgeEvent | None) -> edge_pb2.Hello:
        if event is None:
            raise HelloRejected(
                ErrorCode.BAD_REQUEST,
                grpc.StatusCode.INVALID_ARGUMENT,
                "the first message could not be decoded (expected a Hello)",
            )
        if event.WhichOneof("event") != "hello":
            raise HelloRejected(
                ErrorCode.BAD_REQUEST,
                grpc.StatusCode.INVALID_ARGUMENT,
                "the first message on a Converse stream must be a Hello",
            )
        hello = event.hello
        violation = check_hello(hello, self.config.limits)
        if violation is not None:
            raise HelloRejected(
                ErrorCode.LIMIT_EXCEEDED,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{violation.message} ({violation.limit})",
            )
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
        request_iterator: AsyncIterator[edge_pb2.EdgeEvent | None],
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
        conversation = Conversation(self.services, hello, identity, pipeline, context)
        await conversation.run(request_iterator)
