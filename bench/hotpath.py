#!/usr/bin/env python
"""Where one call's time goes on the host: a profile from ``Pool.execute()`` to its result.

    python bench/hotpath.py [--calls 5000] [--transport local] [--top 25]

One worker, one caller, sequential trivial calls (``ping``). Prints the round trip
p50 at three depths (the pool, the worker handle, the transport's ``Ping`` that the
worker answers without running a tool), then a cProfile of the host for the pool
calls, sorted by own time. The worker's time shows only as waiting (epoll).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from typing import Any

import snakepit
from snakepit.pool._observe import worker_handle

ADAPTER = "snakepit.examples.showcase:Showcase"


async def _p50(fn: Any, calls: int) -> float:
    for _ in range(min(200, calls)):
        await fn()
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return samples[len(samples) // 2]


async def _run(calls: int, transport: str, top: int) -> None:
    async with snakepit.Pool(
        adapter=ADAPTER, size=1, transport=transport, heartbeat_interval=None
    ) as pool:
        worker = worker_handle(pool, pool.workers()[0].id)
        assert worker is not None
        depths = {
            "pool.execute('ping')": lambda: pool.execute("ping"),
            "handle.execute('ping')": lambda: worker.execute("ping", {}),
            "transport.ping()": lambda: worker.ping(timeout=5.0),
        }
        for name, fn in depths.items():
            print(f"{name:<24} p50 {await _p50(fn, calls) * 1e6:7.1f} µs")
        profile = cProfile.Profile()
        profile.enable()
        t0 = time.perf_counter()
        for _ in range(calls):
            await pool.execute("ping")
        elapsed = time.perf_counter() - t0
        profile.disable()
        print(f"\nprofiled: {calls} calls, {elapsed / calls * 1e6:.1f} µs per call (with cProfile)")
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--transport", default="local", choices=["local", "grpc", "tcp"])
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    asyncio.run(_run(args.calls, args.transport, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
