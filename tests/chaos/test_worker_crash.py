"""Crash storms with real processes: every call ends typed, the pool refills, nothing is orphaned."""

from __future__ import annotations

import asyncio
import random

import pytest

import snakepit
from snakepit.events import RequestCompleted
from snakepit.testing import isolated_pool, supervised
from supertester import kill_children, wait_for_children

BOUND = 30.0


@pytest.mark.usefixtures("both_transports")
class TestCrashStorm:
    async def test_calls_end_typed_while_workers_are_killed(self) -> None:
        """200 calls at concurrency 16 on a pool of 8 while random workers are SIGKILLed:
        each call ends in a result or a SnakepitError, and the pool returns to 8 live workers."""
        async with isolated_pool(size=8, max_restarts=100, backoff_max=0.2) as pool:
            sup = supervised(pool)
            completed = 0
            wave = asyncio.Event()

            def on_completed(_: object) -> None:
                nonlocal completed
                completed += 1
                if completed % 40 == 0:
                    wave.set()

            pool.events.add_listener(on_completed, RequestCompleted)
            gate = asyncio.Semaphore(16)

            async def call(i: int) -> object:
                async with gate:
                    try:
                        return await pool.execute("add", {"a": i, "b": 1}, timeout=BOUND)
                    except snakepit.SnakepitError as exc:
                        return exc

            calls = [asyncio.ensure_future(call(i)) for i in range(200)]
            reports = []
            rng = random.Random(2026)
            for _ in range(3):  # three waves of kills, each after 40 more calls completed
                wave.clear()
                await asyncio.wait_for(wave.wait(), BOUND)
                reports.append(kill_children(sup, count=2, seed=rng.randrange(2**32)))
            results = await asyncio.gather(*calls)

            assert all(isinstance(r, int | snakepit.SnakepitError) for r in results)
            failures = [r for r in results if isinstance(r, snakepit.SnakepitError)]
            assert all(isinstance(f, snakepit.WorkerCrashedError) for f in failures), failures
            assert len(failures) <= sum(len(r.killed) for r in reports)
            assert sum(1 for r in results if isinstance(r, int)) >= 200 - len(failures)
            await wait_for_children(
                sup, lambda cs: sum(c.alive for c in cs) == 8, timeout=BOUND, what="8 live workers"
            )
            assert pool.stats().live_workers == 8
            assert pool.stats().crashes >= 1
