"""The Converse method as registered with gRPC, with a request decoder that never
throws.

The generated ``add_EdgeServicer_to_server`` decodes each request with
``EdgeEvent.FromString``: bytes that are not an EdgeEvent raise inside gRPC, which
logs a traceback and ends the stream with ``UNKNOWN``. Here an undecodable message
becomes ``None`` in the request stream instead, and the session answers it with an
Error BAD_REQUEST and goes on (:mod:`server.inbound`). Messages above
``limits.max_message_bytes`` are refused by gRPC itself (``RESOURCE_EXHAUSTED``,
naming both sizes) before any decoding.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import grpc

from protos import edge_pb2

SERVICE_NAME = "parley.edge.v1.Edge"


class ConverseServicer(Protocol):
    async def Converse(
        self,
        request_iterator: AsyncIterator[edge_pb2.EdgeEvent | None],
        context: grpc.aio.ServicerContext,
    ) -> None: ...


def decode_event(data: bytes) -> edge_pb2.EdgeEvent | None:
    """An EdgeEvent, or None for bytes that are not one."""
    try:
        return edge_pb2.EdgeEvent.FromString(data)
    except Exception:  # protobuf's DecodeError (and anything else a parser may raise)
        return None


def add_edge_servicer(servicer: ConverseServicer, server: grpc.aio.Server) -> None:
    handler = grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "Converse": grpc.stream_stream_rpc_method_handler(
                servicer.Converse,
                request_deserializer=decode_event,
                response_serializer=edge_pb2.ServerEvent.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
