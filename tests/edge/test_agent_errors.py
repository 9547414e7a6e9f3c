"""Which fatal errors stop the agent (its own settings are wrong) and which only end
the stream (the server's side failed: it reconnects)."""

from __future__ import annotations

import grpc
import pytest

from edge.agent import EdgeAgent
from edge.scripted_mic import ScriptedSource
from edge.speaker import NullSpeaker
from edge.uplink import AgentRejected
from protos import edge_pb2
from tests.edge.conftest import edge_config


def agent() -> EdgeAgent:
    return EdgeAgent(
        edge_config("127.0.0.1:1"),
        source=ScriptedSource(),
        speaker=NullSpeaker(),
        dial=lambda: grpc.aio.insecure_channel("127.0.0.1:1"),
    )


def fatal(code: edge_pb2.Error.Code) -> edge_pb2.ServerEvent:
    return edge_pb2.ServerEvent(error=edge_pb2.Error(code=code, message="m", fatal=True))


@pytest.mark.parametrize("code", [edge_pb2.Error.STORE_FAILED, edge_pb2.Error.INTERNAL])
def test_a_server_side_failure_is_retried(code: edge_pb2.Error.Code) -> None:
    agent()._on_server_event(fatal(code))  # logged; the uplink reconnects


@pytest.mark.parametrize(
    "code",
    [
        edge_pb2.Error.UNAUTHENTICATED,
        edge_pb2.Error.UNKNOWN_PIPELINE,
        edge_pb2.Error.LIMIT_EXCEEDED,
    ],
)
def test_a_refusal_of_this_edge_stops_it(code: edge_pb2.Error.Code) -> None:
    with pytest.raises(AgentRejected):
        agent()._on_server_event(fatal(code))
