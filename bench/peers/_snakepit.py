"""snakepit itself, driven through the public async ``snakepit.Pool``.

The pool is looked up at run time (``snakepit.Pool``) so that this module
imports, and the peers run, even where the pool is not built yet.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import time
from typing import Any

from bench.peers._subject import (
    IN_FLIGHT,
    IN_FLIGHT_BYTES,
    CrashOutcome,
    Session,
    Subject,
    Unavailable,
    alive,
    measure_memory,
    pid_of,
)

ADAPTER = "snakepit.examples.showcase:Showcase"
_WAIT = 60.0
_MAX_ROUNDS = 200


def _pool_class() -> Any:
    snakepit = importlib.import_module("snakepit")
    pool = getattr(snakepit, "Pool", None)  # may be a lazy attribute of the package
    if pool is None:
        raise Unavailable("snakepit.Pool not built yet")
    return pool


def _new_pool(workers: int, transport: str, **options: Any) -> Any:
    return _pool_class()(adapter=ADAPTER, size=workers, transport=transport, **options)


async def _round(pool: Any, n: int) -> list[object]:
    """``n`` concurrent ``pid`` calls; each answer is a pid or the exception raised."""
    answers = await asyncio.gather(
        *(pool.execute("pid", {}) for _ in range(n)), return_exceptions=True
    )
    return [a if isinstance(a, BaseException) else pid_of(a) for a in answers]


async def _distinct(pool: Any, n: int, exclude: int | None = None) -> set[int]:
    """Rounds of ``n`` concurrent ``pid`` calls until ``n`` distinct workers have answered."""
    seen: set[int] = set()
    for _ in range(_MAX_ROUNDS):
        for answer in await _round(pool, n):
            if isinstance(answer, BaseException):
                raise answer
            if isinstance(answer, int) and answer != exclude:
                seen.add(answer)
        if len(seen) >= n:
            return seen
    raise RuntimeError(f"only {len(seen)} of {n} workers answered in {_MAX_ROUNDS} rounds")


class _SnakepitSession(Session):
    def __init__(self, workers: int, transport: str) -> None:
        self._runner = asyncio.Runner()
        self._pool: Any = None
        self._transport = transport
        try:
            self._pool = self._runner.run(self._open(workers))
        except BaseException:
            self._runner.close()
            raise

    async def _open(self, workers: int) -> Any:
        pool = _new_pool(workers, self._transport)
        entered = await pool.__aenter__()
        try:
            await _distinct(entered, workers)
            for _ in range(50):
                await entered.execute("ping")
        except BaseException:
            await pool.__aexit__(None, None, None)
            raise
        return entered

    def latency(self, calls: int) -> list[float]:
        return self._runner.run(self._latency(calls))

    async def _latency(self, calls: int) -> list[float]:
        execute, clock = self._pool.execute, time.perf_counter
        out: list[float] = []
        for _ in range(calls):
            t0 = clock()
            await execute("ping")
            out.append(clock() - t0)
        return out

    def throughput(self, calls: int, concurrency: int) -> float:
        return self._runner.run(self._throughput(calls, concurrency))

    async def _throughput(self, calls: int, concurrency: int) -> float:
        execute = self._pool.execute
        left = calls

        async def caller() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await execute("ping")

        t0 = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return calls / (time.perf_counter() - t0)

    def payload(self, data: bytes, calls: int, verify: bool) -> float:
        return self._runner.run(self._payload(data, calls, verify))

    async def _payload(self, data: bytes, calls: int, verify: bool) -> float:
        execute = self._pool.execute
        if verify and await execute("echo", {"value": data}) != data:
            raise AssertionError("echo returned different bytes")
        t0 = time.perf_counter()
        for _ in range(calls):
            await execute("echo", {"value": data})
        return len(data) * calls / (time.perf_counter() - t0)

    def stream(self, chunks: int) -> float:
        return self._runner.run(self._stream(chunks))

    async def _stream(self, chunks: int) -> float:
        received = 0
        last: Any = None
        t0 = time.perf_counter()
        async for chunk in self._pool.stream("count", {"n": chunks}):
            received += 1
            last = chunk
        elapsed = time.perf_counter() - t0
        if received != chunks or last != {"i": chunks - 1}:
            raise AssertionError(f"stream gave {received} chunks, last {last!r}")
        return chunks / elapsed

    def close(self) -> None:
        try:
            if self._pool is not None:
                self._runner.run(self._pool.__aexit__(None, None, None))
        finally:
            self._runner.close()


class SnakepitSubject(Subject):
    """snakepit over one transport: ``"local"`` (frames on a socket pair) or ``"grpc"``."""

    distribution = "pysnakepit"

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.name = f"snakepit-{transport}"
        self.start_method = (
            "fork server, local frames + shared memory"
            if transport == "local"
            else "fork server + gRPC (Unix socket)"
        )

    def check(self) -> None:
        _pool_class()

    def session(self, workers: int) -> Session:
        return _SnakepitSession(workers, self.transport)

    def start(self, workers: int, spawn: bool) -> float:
        return asyncio.run(self._start(workers, "spawn" if spawn else "forkserver"))

    async def _start(self, workers: int, method: str) -> float:
        t0 = time.perf_counter()
        # As many starts at once as workers: the figure is how fast a pool can fill.
        async with _new_pool(
            workers, self.transport, start_method=method, startup_concurrency=workers
        ) as pool:
            await _distinct(pool, workers)
            return time.perf_counter() - t0

    def start_many(self, workers: int) -> float:
        return asyncio.run(self._start_many(workers))

    async def _start_many(self, workers: int) -> float:
        # Pool.start returns once every worker is ready; start them all at once.
        t0 = time.perf_counter()
        pool = _new_pool(
            workers, self.transport, startup_concurrency=workers, startup_timeout=120.0
        )
        async with pool:
            return time.perf_counter() - t0

    def memory(self, workers: int, spawn: bool = False) -> dict[str, float]:
        return asyncio.run(self._memory(workers, "spawn" if spawn else "forkserver"))

    async def _memory(self, workers: int, method: str) -> dict[str, float]:
        async with _new_pool(workers, self.transport, start_method=method) as pool:
            pids = await _distinct(pool, workers)
            return measure_memory(pids)

    def crash(self, workers: int) -> CrashOutcome:
        return asyncio.run(self._crash(workers))

    async def _crash(self, workers: int) -> CrashOutcome:
        events = importlib.import_module("snakepit.events")
        async with _new_pool(workers, self.transport) as pool:
            await _distinct(pool, workers)
            dispatched = pool.events.subscribe(
                lambda e: isinstance(e, events.RequestDispatched) and e.tool == "hang"
            )
            ready = pool.events.subscribe(events.WorkerReady)
            long_task = asyncio.ensure_future(pool.execute("hang"))
            outstanding: list[asyncio.Future[Any]] = []
            try:
                event = await asyncio.wait_for(dispatched.get(), _WAIT)
                victim = next(w.pid for w in pool.workers() if w.id == event.worker_id)
                blob = bytes(IN_FLIGHT_BYTES)
                outstanding = [
                    asyncio.ensure_future(pool.execute("echo", {"value": blob}))
                    for _ in range(IN_FLIGHT)
                ]
                t_kill = time.perf_counter()
                os.kill(victim, signal.SIGKILL)

                # Calls made straight after the kill, as a busy caller would.
                failed = 0
                seen: set[int] = set()
                for answer in await _round(pool, workers):
                    if isinstance(answer, BaseException):
                        failed += 1
                    elif isinstance(answer, int) and answer != victim:
                        seen.add(answer)
                # Then wait (on events, not by polling) for a replacement to be ready.
                while len(seen) < workers:
                    new = await asyncio.wait_for(ready.get(), _WAIT)
                    if new.pid == victim or new.pid in seen:
                        continue
                    for _ in range(_MAX_ROUNDS):
                        for answer in await _round(pool, workers):
                            if isinstance(answer, BaseException):
                                failed += 1
                            elif isinstance(answer, int) and answer != victim:
                                seen.add(answer)
                        if len(seen) >= workers:
                            break
                    break
                recovery = time.perf_counter() - t_kill
                if not all(alive(p) for p in seen) or len(seen) < workers:
                    raise RuntimeError(f"only {len(seen)} live workers after the crash")

                for answer in await asyncio.gather(*outstanding, return_exceptions=True):
                    if isinstance(answer, BaseException):
                        failed += 1

                what = "the running call returned"
                try:
                    await asyncio.wait_for(long_task, _WAIT)
                except TimeoutError:
                    what = "the running call never returns"
                except Exception as exc:
                    failed += 1
                    what = f"the running call raised {type(exc).__name__}"
                return CrashOutcome(recovery, None, failed, 0, what)
            finally:
                dispatched.close()
                ready.close()
                for task in [long_task, *outstanding]:
                    if not task.done():
                        task.cancel()
