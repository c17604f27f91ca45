"""Below the pool: what one round trip costs in the transports, and one bare worker.

``python -m bench.peers._floor OUT.json [--calls N] [--starts N]``

Between this process and one child, with a tiny payload:

* ``pipe+pickle``: ``multiprocessing.Pipe`` ``send``/``recv`` of a pickled dict, what
  ProcessPoolExecutor and multiprocessing.Pool build on, without their threads;
* ``grpc sync`` / ``grpc.aio``: a unary call over a Unix socket to a bare generic
  gRPC handler (bytes in, bytes out): gRPC's own cost in Python, no snakepit code;

and one snakepit worker through its host-side ``WorkerHandle``, without the pool:
its cold start (spawn to ready: ready line read, channel up, ``Describe`` answered),
its ``Ping`` RPC, and ``execute("ping")`` (a tool call through the adapter).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path
from typing import Any, Literal

ADAPTER = "snakepit.examples.showcase:Showcase"
_METHOD = "/floor.Echo/Call"
_WARM = 200


def _identity(b: bytes) -> bytes:
    return b


def _pipe_child(conn: Any) -> None:
    while True:
        msg = conn.recv()
        if msg is None:
            return
        conn.send(msg)


def _grpc_child(address: str, ready: Any) -> None:
    import grpc

    def call(request: bytes, context: Any) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "floor.Echo",
        {
            "Call": grpc.unary_unary_rpc_method_handler(
                call, request_deserializer=_identity, response_serializer=_identity
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(address)
    server.start()
    ready.set()
    server.wait_for_termination()


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": statistics.median(samples),
        "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


def pipe_floor(calls: int) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_pipe_child, args=(child,), daemon=True)
    proc.start()
    msg = {"status": "pong"}
    try:
        for _ in range(_WARM):
            parent.send(msg)
            parent.recv()
        out = []
        for _ in range(calls):
            t0 = time.perf_counter()
            parent.send(msg)
            parent.recv()
            out.append(time.perf_counter() - t0)
    finally:
        parent.send(None)
        proc.join(30)
    return _summary(out)


def grpc_floor(calls: int) -> dict[str, dict[str, float]]:
    import grpc

    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="snakepit-floor-") as tmp:
        address = f"unix:{os.path.join(tmp, 'floor.sock')}"
        ready = ctx.Event()
        proc = ctx.Process(target=_grpc_child, args=(address, ready), daemon=True)
        proc.start()
        try:
            if not ready.wait(60):
                raise TimeoutError("the gRPC server did not start")
            payload = b'{"status": "pong"}'
            with grpc.insecure_channel(address) as channel:
                call = channel.unary_unary(
                    _METHOD, request_serializer=_identity, response_deserializer=_identity
                )
                for _ in range(_WARM):
                    call(payload)
                sync = []
                for _ in range(calls):
                    t0 = time.perf_counter()
                    call(payload)
                    sync.append(time.perf_counter() - t0)

            async def aio() -> list[float]:
                async with grpc.aio.insecure_channel(address) as channel:
                    acall = channel.unary_unary(
                        _METHOD, request_serializer=_identity, response_deserializer=_identity
                    )
                    for _ in range(_WARM):
                        await acall(payload)
                    out = []
                    for _ in range(calls):
                        t0 = time.perf_counter()
                        await acall(payload)
                        out.append(time.perf_counter() - t0)
                    return out

            asynchronous = asyncio.run(aio())
        finally:
            proc.kill()
            proc.join(30)
    return {"grpc_sync": _summary(sync), "grpc_aio": _summary(asynchronous)}


async def worker_floor(
    starts: int, calls: int, transport: Literal["local", "grpc"]
) -> dict[str, Any]:
    from snakepit.worker import WorkerHandle, WorkerOptions

    with tempfile.TemporaryDirectory(prefix="snakepit-floor-") as runtime:
        options = WorkerOptions(
            adapter=ADAPTER, runtime_dir=Path(runtime), log_level="WARNING", transport=transport
        )
        cold: list[float] = []
        for i in range(starts):
            handle = WorkerHandle(f"cold{i}", options)
            t0 = time.perf_counter()
            await handle.start()
            cold.append(time.perf_counter() - t0)
            await handle.stop()

        handle = WorkerHandle("warm", options)
        await handle.start()
        try:
            for _ in range(_WARM):
                await handle.ping()
                await handle.execute("ping", {})
            rpc: list[float] = []
            for _ in range(calls):
                t0 = time.perf_counter()
                await handle.ping()
                rpc.append(time.perf_counter() - t0)
            tool: list[float] = []
            for _ in range(calls):
                t0 = time.perf_counter()
                await handle.execute("ping", {})
                tool.append(time.perf_counter() - t0)
        finally:
            await handle.stop()
    return {
        "worker_cold_start": {
            "p50": statistics.median(cold),
            "min": min(cold),
            "max": max(cold),
            "n": len(cold),
        },
        "worker_ping_rpc": _summary(rpc),
        "worker_execute_ping": _summary(tool),
    }


def measure(calls: int, starts: int) -> dict[str, Any]:
    result: dict[str, Any] = {"calls": calls, "starts": starts}
    result["pipe_pickle"] = pipe_floor(calls)
    result.update(grpc_floor(calls))
    result["local"] = asyncio.run(worker_floor(starts, calls, "local"))
    result["grpc"] = asyncio.run(worker_floor(starts, calls, "grpc"))
    return result


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.peers._floor")
    parser.add_argument("out", type=Path)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--starts", type=int, default=20)
    args = parser.parse_args(argv)
    args.out.write_text(json.dumps(measure(args.calls, args.starts)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
