#!/usr/bin/env python
"""Cold start and round trip of ONE snakepit worker, below the pool.

    python bench/worker_startup.py [--starts 20] [--pings 1000] [--transport local] [--json out.json]

* cold start: ``WorkerHandle.start()`` from spawn to ready (ready line read, channel
  connected, ``Describe`` answered); median of ``--starts``;
* round trip on a warm worker: ``WorkerHandle.ping()`` (the gRPC ``Ping``) and
  ``WorkerHandle.execute("ping", {})`` (a tool call through the adapter); median
  and p99 of ``--pings`` each.

The measuring code is ``bench/peers/_floor.py`` (the full suite prints the
same figures below its table). Benchmarks are never tests: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--pings", type=int, default=1000)
    parser.add_argument("--transport", default="local", choices=["local", "grpc"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from bench.peers._floor import worker_floor

    result = asyncio.run(worker_floor(args.starts, args.pings, args.transport))
    cold, rpc, tool = (
        result["worker_cold_start"],
        result["worker_ping_rpc"],
        result["worker_execute_ping"],
    )
    print(
        f"cold start, {args.starts} workers: median {cold['p50'] * 1e3:.1f} ms "
        f"(min {cold['min'] * 1e3:.1f}, max {cold['max'] * 1e3:.1f})"
    )
    print(
        f"Ping RPC, {args.pings} calls: p50 {rpc['p50'] * 1e6:.0f} µs, p99 {rpc['p99'] * 1e6:.0f} µs"
    )
    print(
        f"execute('ping'), {args.pings} calls: p50 {tool['p50'] * 1e6:.0f} µs, "
        f"p99 {tool['p99'] * 1e6:.0f} µs"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
