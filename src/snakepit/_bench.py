"""``snakepit bench``: round-trip latency (p50, p99) and calls per second of a real pool.

A user measures their own setup: their adapter (the showcase by default), one of its
tools with their arguments, their pool size and transport, on their machine. One caller
makes sequential calls for half the budget (latency), then ``concurrency`` callers keep
calls in flight for the other half (throughput). The side-by-side comparison with other
process pools lives in the repository's ``bench/`` and is not installed.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from snakepit.errors import InvalidValueError, RequestError, SnakepitError, brief

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable

__all__ = ["BenchReport", "add_bench_parser", "bench", "run_bench_command"]

SHOWCASE = "snakepit.examples.showcase:Showcase"


@dataclass(frozen=True)
class BenchReport:
    """What one ``snakepit bench`` run measured; times in seconds."""

    adapter: str
    tool: str
    transport: str
    size: int
    concurrency: int
    start_s: float
    latency_calls: int
    p50_s: float
    p99_s: float
    throughput_calls: int
    throughput_s: float
    calls_per_s: float

    def text(self) -> str:
        """The report as a few lines for a terminal."""
        return (
            f"snakepit bench: {self.adapter}, tool {self.tool!r}, {self.size} worker(s), "
            f"{self.transport} transport\n"
            f"pool start   {self.start_s * 1e3:,.1f} ms until every worker was ready\n"
            f"latency      p50 {self.p50_s * 1e6:,.0f} µs, p99 {self.p99_s * 1e6:,.0f} µs "
            f"({self.latency_calls:,} sequential calls)\n"
            f"throughput   {self.calls_per_s:,.0f} calls/s ({self.throughput_calls:,} calls, "
            f"{self.concurrency} in flight, {self.throughput_s:.2f} s)\n"
        )


def _check(name: str, value: object, allowed: str, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not 0 < value < math.inf:
        raise InvalidValueError(f"--{name} must be {allowed}, got {brief(value)}", argument=name)


def _percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted samples, by the nearest-rank method."""
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


async def _latency(call: Callable[[], Awaitable[Any]], budget: float) -> list[float]:
    clock = time.perf_counter
    samples: list[float] = []
    deadline = clock() + budget
    while not samples or clock() < deadline:
        t0 = clock()
        await call()
        samples.append(clock() - t0)
    return samples


async def _throughput(
    call: Callable[[], Awaitable[Any]], concurrency: int, budget: float
) -> tuple[int, float]:
    clock = time.perf_counter
    done = 0
    t0 = clock()
    deadline = t0 + budget

    async def caller() -> None:
        nonlocal done
        while done == 0 or clock() < deadline:
            await call()
            done += 1

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(caller())
    except ExceptionGroup as failed:  # one caller's error, as a sequential call raises it
        raise failed.exceptions[0] from None
    return done, clock() - t0


async def bench(
    *,
    adapter: str = SHOWCASE,
    tool: str = "ping",
    args: dict[str, Any] | None = None,
    size: int = 2,
    transport: str = "local",
    seconds: float = 5.0,
    concurrency: int | None = None,
) -> BenchReport:
    """Start a pool, call ``tool`` for ``seconds`` seconds, and report what it measured.

    Args:
        adapter: ``pkg.module:Class`` of the adapter the workers run.
        tool: the tool to call; ``args`` are its keyword arguments.
        size: worker processes; ``transport``: the pool's transport.
        seconds: the measuring budget, half for latency and half for throughput (at
            least one call each, however small).
        concurrency: callers in the throughput half (default: twice ``size``).

    Raises:
        InvalidValueError: ``seconds`` or ``concurrency`` is out of range (a
            ``ConfigError``, one too, for a bad ``adapter``, ``size`` or ``transport``).
        ToolNotFoundError: the adapter has no such tool (the message lists its tools).
        InvalidArgumentsError: ``args`` do not fit the tool's signature.
        ToolError: the tool raised in a worker.
        WorkerStartupError: the workers did not start (the adapter did not import).
    """
    _check("seconds", seconds, "a positive number of seconds (the measuring budget)")
    if concurrency is not None:
        _check("concurrency", concurrency, "an integer >= 1 (calls in flight)", integer=True)
    from snakepit import Pool

    options: dict[str, Any] = {"transport": transport}  # checked by the Pool, as a user's is
    t0 = time.perf_counter()
    async with Pool(adapter=adapter, size=size, **options) as pool:
        start_s = time.perf_counter() - t0
        arguments = dict(args or {})

        def call() -> Awaitable[Any]:
            return pool.execute(tool, arguments)

        await _latency(call, seconds / 10)  # warm-up; a bad tool or arguments stop here
        samples = sorted(await _latency(call, seconds / 2))
        in_flight = 2 * size if concurrency is None else concurrency
        calls, elapsed = await _throughput(call, in_flight, seconds / 2)
    return BenchReport(
        adapter=adapter,
        tool=tool,
        transport=transport,
        size=size,
        concurrency=in_flight,
        start_s=start_s,
        latency_calls=len(samples),
        p50_s=_percentile(samples, 0.50),
        p99_s=_percentile(samples, 0.99),
        throughput_calls=calls,
        throughput_s=elapsed,
        calls_per_s=calls / elapsed,
    )


def add_bench_parser(sub: Any) -> None:
    """Declare the ``bench`` sub-command on ``sub`` (an argparse sub-parsers object)."""
    p = sub.add_parser(
        "bench",
        help="measure latency and calls/s of a pool of your adapter on this machine",
        description=(
            "Start a pool of your adapter and call one tool: p50 and p99 round-trip latency "
            "of sequential calls, then calls per second with several in flight. The "
            "comparison with other process pools is the repository's bench/ suite."
        ),
    )
    p.add_argument("--adapter", default=SHOWCASE, help=f"module:Class (default: {SHOWCASE})")
    p.add_argument("--tool", default="ping", help="the tool to call (default: ping)")
    p.add_argument(
        "--args", default="{}", metavar="JSON", help="the tool's arguments as a JSON object"
    )
    p.add_argument("--size", type=int, default=2, help="worker processes (default: 2)")
    p.add_argument("--transport", default="local", help="local (default), grpc or tcp")
    p.add_argument(
        "--seconds", type=float, default=5.0, help="measuring budget in seconds (default: 5)"
    )
    p.add_argument(
        "--concurrency", type=int, default=None, help="calls in flight (default: twice --size)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _tool_args(text: str) -> dict[str, Any]:
    """``--args``: a JSON object of keyword arguments."""
    try:
        value: Any = json.loads(text)
    except ValueError as exc:
        value = exc
    if not isinstance(value, dict):
        got = (
            f"not JSON ({value})"
            if isinstance(value, ValueError)
            else "a JSON " + (type(value).__name__)
        )
        raise InvalidValueError(
            "--args must be a JSON object of the tool's keyword arguments, e.g. "
            f'\'{{"a": 1, "b": 2}}\'; {brief(text)} is {got}',
            argument="args",
        )
    return value


def run_bench_command(args: argparse.Namespace) -> int:
    """Run ``snakepit bench``; 0 on success, 2 on bad input, 1 when the pool or tool failed."""
    try:
        report = asyncio.run(
            bench(
                adapter=args.adapter,
                tool=args.tool,
                args=_tool_args(args.args),
                size=args.size,
                transport=args.transport,
                seconds=args.seconds,
                concurrency=args.concurrency,
            )
        )
    except KeyboardInterrupt:
        return 130
    except SnakepitError as exc:
        print(f"snakepit bench: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, RequestError) else 1
    print(json.dumps(asdict(report)) if args.json else report.text(), end="\n" if args.json else "")
    return 0
