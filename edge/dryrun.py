"""`parley edge --dry-run`: open each device once, ask the server's health service,
send it this edge's Hello (device id, token, pipeline) and report its verdict
(welcomed, wrong token, unknown pipeline), print one line per check, and exit (0 when
everything is usable). No audio is sent: the server stores no turn."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import numpy as np

import parley
from edge import build
from edge.connection import Connection
from parley import rpc
from parley.config import EdgeConfig
from parley.errors import ParleyError
from protos import edge_pb2

HELLO_TIMEOUT_S = 5.0  # the server's answer to the Hello


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{self.name:<11} {'ok' if self.ok else 'FAIL':<4}  {self.detail}"


async def _microphone(config: EdgeConfig, seconds: float = 0.5) -> str:
    source = build.audio_source(config)
    source.start(asyncio.get_running_loop())
    pcm = bytearray()
    try:
        async with asyncio.timeout(seconds + 2.0):
            async for chunk in source.chunks():
                pcm += chunk.pcm
                if len(pcm) >= 2 * source.rate * seconds:
                    break
    except TimeoutError:
        raise ParleyError(f"{source.describe()}: no audio within {seconds + 2:.1f} s") from None
    finally:
        source.stop()
    samples = np.frombuffer(bytes(pcm), np.int16).astype(np.float32) / 32768
    rms = float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0
    level = f"{20 * math.log10(rms):.0f} dBFS" if rms > 0 else "silence"
    return f"{source.describe()}: {len(pcm) / 2 / source.rate:.1f} s captured, level {level}"


async def _speaker(config: EdgeConfig) -> str:
    speaker = build.speaker(config)
    speaker.start(asyncio.get_running_loop())
    await asyncio.sleep(0.1)  # the stream runs (playing silence)
    speaker.stop()
    return speaker.describe()


async def _camera(config: EdgeConfig) -> str:
    camera = build.camera(config)
    if camera is None:
        return "none"
    await asyncio.to_thread(camera.open)
    try:
        frame = await asyncio.to_thread(camera.capture)
    finally:
        camera.close()
    return f"{camera.describe()}: {frame.width}x{frame.height} JPEG, {len(frame.jpeg)} bytes"


def _hello(config: EdgeConfig) -> edge_pb2.Hello:
    return edge_pb2.Hello(
        device_id=config.device_id,
        token=config.token,
        pipeline=config.pipeline,
        audio_format=edge_pb2.AudioFormat(
            sample_rate=config.sample_rate, channels=1, encoding=edge_pb2.AudioFormat.PCM16LE
        ),
        agent_version=parley.__version__,
    )


async def _welcome(conn: Connection, server: str) -> edge_pb2.Welcome:
    """The server's answer to the Hello: its Welcome, or ParleyError with its reason."""
    try:
        async with asyncio.timeout(HELLO_TIMEOUT_S):
            async for event in conn.events():
                if event.HasField("welcome"):
                    return event.welcome
                if event.HasField("error"):
                    raise ParleyError(f"{server} refused this edge: {event.error.message}")
    except grpc.aio.AioRpcError as exc:
        raise ParleyError(f"{server} refused this edge: {exc.details()}") from None
    except TimeoutError:
        raise ParleyError(
            f"{server} did not answer the Hello within {HELLO_TIMEOUT_S:g} s"
        ) from None
    raise ParleyError(f"{server} ended the stream without a Welcome")


async def _server(config: EdgeConfig) -> str:
    """Health, then a Converse stream with this edge's Hello (device, token, pipeline):
    the server's verdict is what a real run would get. The stream is half-closed
    without audio, so the server stores no turn."""
    async with build.dialer(config)() as channel:
        if not await rpc.check_health(channel, build.EDGE_SERVICE, timeout=3.0):
            raise ParleyError(f"{config.server} did not answer its health check within 3 s")
        conn = Connection(channel, _hello(config))
        try:
            welcome = await _welcome(conn, config.server)
            conn.close_send()
            with contextlib.suppress(grpc.aio.AioRpcError, TimeoutError):
                async with asyncio.timeout(2.0):  # let the server end it cleanly
                    async for _ in conn.events():
                        pass
        finally:
            await conn.close()
    scheme = "TLS" if config.tls or config.tls_ca or config.tls_cert else "plain"
    return (
        f"{config.server} is serving ({scheme}) and welcomed device {config.device_id!r} "
        f"(pipeline {welcome.pipeline})"
    )


async def dry_run(config: EdgeConfig) -> list[Check]:
    checks: list[tuple[str, Callable[[EdgeConfig], Awaitable[str]]]] = [
        ("microphone", _microphone),
        ("speaker", _speaker),
        ("camera", _camera),
        ("server", _server),
    ]
    results = []
    for name, check in checks:
        try:
            results.append(Check(name, True, await check(config)))
        except (ParleyError, OSError) as exc:
            results.append(Check(name, False, str(exc)))
    return results
