#!/usr/bin/env python
"""The floor under one round trip: pipe+pickle against a bare gRPC call.

    python bench/transport_floor.py [--calls 2000]

Between this process and one child, a tiny payload: ``multiprocessing.Pipe``
with pickle (what ProcessPoolExecutor and multiprocessing.Pool build on), and a
unary call to a bare generic gRPC handler over a Unix socket from a blocking
and from a ``grpc.aio`` client (gRPC's own cost in Python, no snakepit code).
The measuring code is ``bench/peers/_floor.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _line(name: str, figures: dict[str, float]) -> str:
    return f"{name:<12} p50 {figures['p50'] * 1e6:6.0f} µs   p99 {figures['p99'] * 1e6:6.0f} µs"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from bench.peers._floor import grpc_floor, pipe_floor

    print(_line("pipe+pickle", pipe_floor(args.calls)))
    grpc = grpc_floor(args.calls)
    print(_line("grpc sync", grpc["grpc_sync"]))
    print(_line("grpc.aio", grpc["grpc_aio"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
