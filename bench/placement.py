#!/usr/bin/env python
"""Per-call latency and throughput of each place a worker can run (docs/scaling.md).

    python bench/placement.py [--calls 2000] [--size 2] [--no-ray] [--json out.json]

Five setups of the same pool (``snakepit.examples.showcase:Showcase``), on this
machine: local workers over the local transport (the default), over gRPC on a Unix
socket (``transport="grpc"``), local workers over TCP
(``transport="tcp"``), a worker served by ``snakepit worker`` and attached with
``remote_workers=`` (over loopback TLS, as on a network), and workers placed as Ray
actors (``launcher="ray"``, a local Ray instance). For each:

* latency: ``pool.execute("add", ...)`` one at a time on a warm pool, p50 and p99;
* throughput: ``--calls`` calls with 32 in flight, calls per second;
* start: ``Pool.start()`` to all workers ready.

Benchmarks are never tests: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import snakepit

REPO = Path(__file__).resolve().parents[1]
ADAPTER = "snakepit.examples.showcase:Showcase"
IN_FLIGHT = 32


async def measure(label: str, calls: int, **options: Any) -> dict[str, Any]:
    began = time.perf_counter()
    async with snakepit.Pool(adapter=ADAPTER, heartbeat_interval=None, **options) as pool:
        start = time.perf_counter() - began
        for i in range(50):  # warm up channels and threads
            await pool.execute("add", {"a": i, "b": 1})
        latencies = []
        for i in range(min(calls, 1000)):
            t = time.perf_counter()
            await pool.execute("add", {"a": i, "b": 1})
            latencies.append(time.perf_counter() - t)
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(i: int) -> None:
            async with gate:
                await pool.execute("add", {"a": i, "b": 1})

        t = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(calls)))
        elapsed = time.perf_counter() - t
    latencies.sort()
    result = {
        "setup": label,
        "start_s": start,
        "p50_us": statistics.median(latencies) * 1e6,
        "p99_us": latencies[int(len(latencies) * 0.99) - 1] * 1e6,
        "calls_per_s": calls / elapsed,
    }
    print(
        f"{label:<34} start {start * 1e3:7.0f} ms   p50 {result['p50_us']:6.0f} µs   "
        f"p99 {result['p99_us']:6.0f} µs   {result['calls_per_s']:7.0f} calls/s",
        flush=True,
    )
    return result


@contextlib.contextmanager
def remote_workers(size: int, directory: Path) -> Any:
    """``size`` workers served by ``snakepit worker`` over loopback TLS."""
    sys.path.insert(0, str(REPO))
    from tests.support.remote_worker import make_tls, serve

    tls = make_tls(directory)
    token = directory / "token"
    token.write_text("bench-token\n")
    workers = [serve(token, tls=tls) for _ in range(size)]
    try:
        yield [w.address for w in workers], token, tls.ca
    finally:
        for w in workers:
            w.kill()


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--size", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    n, size = args.calls, args.size
    results = [
        await measure("local, socket pair (default)", n, size=size),
        await measure("local, gRPC on a Unix socket", n, size=size, transport="grpc"),
        await measure("local, TCP loopback", n, size=size, transport="tcp"),
    ]
    with tempfile.TemporaryDirectory() as tmp, remote_workers(size, Path(tmp)) as (addrs, tok, ca):
        results.append(
            await measure(
                "remote_workers, TLS over loopback",
                n,
                remote_workers=addrs,
                token_file=str(tok),
                tls_ca=str(ca),
            )
        )
    if not args.no_ray:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            results.append(
                await measure(
                    "launcher='ray', local Ray",
                    n,
                    size=size,
                    launcher="ray",
                    ray_options={"num_cpus": 0.5},
                )
            )
        finally:
            ray.shutdown()
    if args.json is not None:
        args.json.write_text(
            json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
