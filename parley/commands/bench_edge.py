"""`parley bench edge`: what the edge agent costs the machine it runs on.

A server and the `instant` pipeline's workers run as processes on loopback (as for
`parley bench turn`), and the real agent (`parley edge`) runs as its own process,
streaming the bundled spoken command in a loop at real-time pace as its microphone
(resampled to 48 kHz first, like a USB microphone's native rate, so the agent's
conversion to 16 kHz is part of the cost) and one 640x480 JPEG per second as its
camera; the server answers every turn. After a warm-up, the agent's CPU time
(user + system, from /proc) over ``--seconds`` gives ``cpu_percent`` (of one core),
its peak resident memory (VmHWM) ``rss_mb``, and its proportional set size at the end
(shared library pages divided among the processes sharing them) ``pss_mb``. With
``--devices`` the agent uses the default sound devices (microphone and speaker)
instead of the file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from parley.audio import Resampler, float_to_pcm16_bytes, pcm16_to_float, write_wav
from parley.commands.bench import machine, memory_mb, process_cpu_seconds, report, scratch_stack
from parley.commands.demo import DEMO_WAV
from parley.config import Config

TARGET = {"cpu_percent": 5.0, "rss_mb": 60.0}
FRAME = Path(__file__).resolve().parent.parent / "assets" / "camera-frame.jpg"
WARMUP_S = 3.0
MIC_RATE = 48000


def _pss_mb(pid: int) -> float:
    """Proportional set size: shared library pages split among the processes using them."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _mic_file(folder: Path) -> Path:
    """The bundled command at the USB microphone rate (a native-rate source)."""
    import wave

    with wave.open(str(DEMO_WAV), "rb") as wav:
        rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
    resampler = Resampler(rate, MIC_RATE)
    samples = np.concatenate([resampler.process(pcm16_to_float(pcm)), resampler.flush()])
    path = folder / "mic-48k.wav"
    write_wav(path, float_to_pcm16_bytes(samples), MIC_RATE)
    return path


def _edge_command(address: str, scratch: Path, devices: bool) -> list[str]:
    frames = scratch / "frames"
    frames.mkdir()
    shutil.copy(FRAME, frames / FRAME.name)
    command = [sys.executable, "-m", "parley", "edge", "--server", address]
    command += ["--pipeline", "instant", "--device-id", "bench-edge"]
    command += ["--camera-folder", str(frames), "--fps", "1"]
    command += ["--stats-file", str(scratch / "edge-stats.json")]
    if not devices:
        command += ["--mic-file", str(_mic_file(scratch)), "--speaker", "none"]
    return command


def _spawn_edge(command: list[str], scratch: Path, config: Config) -> subprocess.Popen[bytes]:
    with (scratch / "edge.log").open("wb") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PARLEY_HOME=str(config.home)),
        )


async def measure(config: Config, seconds: float, *, devices: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="parley-bench-edge-") as tmp:
        scratch = Path(tmp)
        config, stack = scratch_stack(config, ["instant"], scratch)
        port = config.server.port
        await stack.start()
        edge = _spawn_edge(_edge_command(f"127.0.0.1:{port}", scratch, devices), scratch, config)
        try:
            await asyncio.sleep(WARMUP_S)
            if edge.poll() is not None:
                raise RuntimeError(f"the edge exited: {(scratch / 'edge.log').read_text()}")
            cpu0, wall0 = process_cpu_seconds(edge.pid), time.monotonic()
            rss_samples = []
            while time.monotonic() - wall0 < seconds:
                await asyncio.sleep(0.5)
                rss_samples.append(memory_mb(edge.pid)["VmRSS"])
            cpu1, wall1 = process_cpu_seconds(edge.pid), time.monotonic()
            peak, pss = memory_mb(edge.pid)["VmHWM"], _pss_mb(edge.pid)
        finally:
            edge.send_signal(signal.SIGTERM)
            try:
                edge.wait(10)
            except subprocess.TimeoutExpired:
                edge.kill()
            stack.stop()
        stats_path = scratch / "edge-stats.json"
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    return {
        "cpu_percent": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 2),
        "rss_mb": round(peak, 1),
        "rss_mb_mean": round(sum(rss_samples) / len(rss_samples), 1),
        "pss_mb": round(pss, 1),
        "seconds": round(wall1 - wall0, 1),
        "edge": stats,
    }


def run_bench_edge(args: argparse.Namespace, config: Config) -> int:
    figures = asyncio.run(measure(config, args.seconds, devices=args.devices))
    result = {
        "benchmark": "edge",
        **figures,
        "audio": "sound devices" if args.devices else f"WAV file at {MIC_RATE} Hz mono",
        "stream": {"sample_rate": config.edge.sample_rate, "chunk_ms": config.edge.chunk_ms},
        "frames": {"fps": 1, "size": "640x480", "jpeg_bytes": FRAME.stat().st_size},
        "target": TARGET,
        "meets_target": figures["cpu_percent"] <= TARGET["cpu_percent"]
        and figures["rss_mb"] <= TARGET["rss_mb"],
        "machine": machine(),
    }
    ok = "meets" if result["meets_target"] else "MISSES"
    report(
        result,
        args,
        f"edge: {result['cpu_percent']} % of one core, {result['rss_mb']} MB peak RSS: "
        f"{ok} the target (<= 5 %, <= 60 MB)",
    )
    return 0
