"""Broken channels and silent workers: detected, replaced, and calls retried on fresh workers."""

from __future__ import annotations

import os
import signal

import pytest

import snakepit
from snakepit.events import WorkerExited, WorkerReady, WorkerUnhealthy
from snakepit.testing import isolated_pool, pool_mailbox, supervised
from supertester import inject_random_failures, wait_for_children

BOUND = 30.0


async def execute_with_retry(pool: snakepit.Pool, attempts: int = 4) -> object:
    """Retry on a fresh worker when a worker failed or timed out (the calls are idempotent)."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return await pool.execute("pid", timeout=1.0)
        except (snakepit.WorkerError, snakepit.ExecutionTimeoutError) as exc:
            last = exc
    assert last is not None
    raise last


@pytest.mark.usefixtures("both_transports")
class TestNetworkFailure:
    async def test_broken_channel_is_detected_and_the_worker_replaced(self) -> None:
        """When the channel to a live worker breaks, its call fails typed, the process ends
        (killed, or by itself on the local transport) and a fresh worker takes its place."""
        async with isolated_pool(size=1) as pool:
            box = pool_mailbox(pool)
            old = pool.workers()[0].pid
            await supervised(pool).inject("disconnect", "w1")
            with pytest.raises(snakepit.WorkerCrashedError, match="channel"):
                await pool.execute("ping")
            unhealthy = await box.assert_receive(WorkerUnhealthy, BOUND)
            assert unhealthy.pid == old and "channel broke" in unhealthy.reason
            exited = await box.assert_receive(WorkerExited, BOUND)
            # Killed by the pool, or (local transport) gone by itself first: the broken
            # channel is a local worker's lifeline, and its EOF makes it exit 0.
            assert exited.pid == old and exited.exit_code in (-signal.SIGKILL, 0)
            ready = await box.assert_receive(WorkerReady, BOUND)
            assert await pool.execute("pid") == ready.pid != old

    async def test_random_failures_keep_most_calls_successful_with_retries(self) -> None:
        """Failures injected at 50% (exit, timeout, disconnect) still let at least 75% of
        20 calls succeed when calls are retried on a fresh worker."""
        async with isolated_pool(size=4, max_restarts=50, backoff_max=0.2) as pool:
            sup = supervised(pool)
            report = await inject_random_failures(sup, 0.5, seed=1234)
            assert report.injected, "the seed must inject at least one failure"
            outcomes = []
            for _ in range(20):
                try:
                    outcomes.append(await execute_with_retry(pool))
                except snakepit.SnakepitError as exc:
                    outcomes.append(exc)
            successes = [o for o in outcomes if isinstance(o, int)]
            assert len(successes) >= 15, (report, outcomes)
            stopped = report.by_kind("timeout")
            for child in stopped:  # a SIGSTOPped worker that no call reached: resume it
                for w in pool.workers():
                    if f"w{w.slot}" == child and w.pid:
                        os.kill(w.pid, signal.SIGCONT)
            await wait_for_children(
                sup, lambda cs: sum(c.alive for c in cs) == 4, timeout=BOUND, what="4 live workers"
            )
