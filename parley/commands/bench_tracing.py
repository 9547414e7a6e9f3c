"""`parley bench tracing`: what tracing costs, over the same number of turns with tracing
off, spans to the database only, and spans to the database and an OTLP receiver.

Each mode starts fresh server and worker processes (instant engines) with the mode's
environment, runs turns (unpaced, so idle time does not dilute the figures), and reads
the CPU time those processes used from /proc. Modes alternate over several rounds.
The OTLP receiver is a real OTLP/gRPC TraceService run by the benchmark itself, so
spans really are encoded and sent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from parley.commands.bench import bench_turns, percentiles, report
from parley.commands.models import ensure_models
from parley.config import Config

PIPELINE = "instant"
TARGET = {"cpu_percent": 3.0, "added_ms_per_turn": 1.0}


class _CountingReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0

    def Export(self, request: Any, context: Any) -> Any:
        self.spans += sum(
            len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
        )
        return trace_service_pb2.ExportTraceServiceResponse()


def _start_receiver() -> tuple[grpc.Server, int, _CountingReceiver]:
    receiver = _CountingReceiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port, receiver


async def _traced_call_cost(calls: int = 300, rounds: int = 3) -> dict[str, float]:
    """CPU per gRPC call (client and server in this process, an instant LLM answering
    12 deltas), untraced and traced (interceptors and spans, nothing exported): the
    part of tracing's cost that the per-turn figures are too noisy to resolve."""
    from parley import rpc
    from parley.config import PoolConfig
    from parley.telemetry import setup_telemetry
    from protos import workers_pb2 as wpb
    from server.worker_clients import WorkerPool, generate
    from workers.instant import InstantLlmEngine
    from workers.service import servicers

    traced = setup_telemetry("parley-bench", env={})
    request = wpb.LlmRequest(messages=[wpb.ChatMessage(role="user", content="hi")])
    servicer_cls, add, name = servicers()["llm"]
    totals = {"untraced": 0.0, "traced": 0.0}
    for _ in range(rounds):
        for mode in totals:
            on = mode == "traced"
            server, port, _ = await rpc.start_server(
                "127.0.0.1:0",
                lambda s: add(servicer_cls(InstantLlmEngine(), "instant"), s),
                [name],
                interceptors=traced.server_interceptors() if on else (),
            )
            pool = WorkerPool(
                PoolConfig("bench", "llm", "instant", (f"127.0.0.1:{port}",)),
                traced.client_interceptors() if on else (),
            )
            for i in range(calls + 20):
                if i == 20:
                    before = time.process_time()
                async for _delta in generate(pool, request, timeout=5):
                    pass
            totals[mode] += (time.process_time() - before) * 1000 / calls
            await pool.close()
            await server.stop(None)
    traced.shutdown()
    per_call = {mode: round(total / rounds, 3) for mode, total in totals.items()}
    per_call["added"] = round(per_call["traced"] - per_call["untraced"], 3)
    return per_call


async def _measure(config: Config, turns: int, rounds: int = 3) -> dict[str, Any]:
    server, port, receiver = _start_receiver()
    modes = {
        "off": {"OTEL_SDK_DISABLED": "true"},
        "db": {"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": ""},
        "db+otlp": {
            "OTEL_SDK_DISABLED": "false",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        },
    }
    result: dict[str, Any] = {"turns": turns, "rounds": rounds, "pipeline": PIPELINE}
    cpu: dict[str, list[float]] = {mode: [] for mode in modes}
    overheads: dict[str, list[float]] = {mode: [] for mode in modes}
    try:
        # Modes take turns, round after round, so drift in the machine's load hits all.
        for _ in range(rounds):
            for mode, env in modes.items():
                run = await bench_turns(
                    config, PIPELINE, turns // rounds, warmup=2, fast=True, env=env, settle_s=2.5
                )
                cpu[mode].append(run.cpu_seconds * 1000 / (turns // rounds))
                overheads[mode] += [r["overhead_ms"] for r in run.records]
        for mode in modes:
            result[mode] = {
                "cpu_ms_per_turn": round(sum(cpu[mode]) / rounds, 3),
                # the spread between rounds shows how much of a difference is noise
                "cpu_ms_per_turn_by_round": [round(c, 1) for c in cpu[mode]],
                "overhead_ms": percentiles(overheads[mode]),
            }
        result["db+otlp"]["spans_received_by_otlp"] = receiver.spans
    finally:
        server.stop(None)
    off, full = result["off"], result["db+otlp"]
    result["overhead_percent"] = round(
        (full["cpu_ms_per_turn"] - off["cpu_ms_per_turn"]) / off["cpu_ms_per_turn"] * 100, 2
    )
    result["added_ms_per_turn"] = round(full["overhead_ms"]["p50"] - off["overhead_ms"]["p50"], 3)
    result["cpu_ms_per_call"] = await _traced_call_cost()
    result["target"] = TARGET
    result["meets_target"] = (
        result["overhead_percent"] < TARGET["cpu_percent"]
        and result["added_ms_per_turn"] < TARGET["added_ms_per_turn"]
    )
    result["machine"] = {"cpus": os.cpu_count()}
    return result


def run_bench_tracing(args: argparse.Namespace, config: Config) -> int:
    ensure_models(config, PIPELINE)
    result = asyncio.run(_measure(config, args.turns))
    report(result, args)
    return 0
