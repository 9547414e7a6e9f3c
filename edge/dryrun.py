"""`parley edge --dry-run`: open each device once, ask the server's health service,
print one line per check, and exit (0 when everything is usable)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from edge import build
from parley import rpc
from parley.config import EdgeConfig
from parley.errors import ParleyError


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


async def _server(config: EdgeConfig) -> str:
    async with build.dialer(config)() as channel:
        if not await rpc.check_health(channel, build.EDGE_SERVICE, timeout=3.0):
            raise ParleyError(f"{config.server} did not answer its health check within 3 s")
    scheme = "TLS" if config.tls or config.tls_ca or config.tls_cert else "plain"
    return f"{config.server} is serving ({scheme})"


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
