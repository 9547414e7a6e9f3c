"""A gRPC server that cannot listen says so in one line (parley.rpc.start_server)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from parley import rpc
from parley.errors import ParleyError


def test_a_taken_port_is_one_clear_error_not_a_traceback() -> None:
    """grpcio raises RuntimeError ("Failed to bind ...") for a taken port; Parley says
    which address, in one line (a worker's log ended in that traceback)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"

        async def start() -> None:
            await rpc.start_server(address, lambda s: None, [])

        with pytest.raises(rpc.ListenError, match=f"cannot listen on {address}: the port is taken"):
            asyncio.run(start())
    assert issubclass(rpc.ListenError, ParleyError) and issubclass(rpc.ListenError, OSError)
