"""Deadlines users can reason about, and retries of what is safe to retry (real workers)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

import snakepit
from snakepit.events import RequestDispatched, RequestQueued
from snakepit.testing import isolated_pool, pool_mailbox
from supertester import FakeClock
from tests.support.executor_tasks import Gate

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TOOLS = "tests.support.adapters:RetryTools"
BOUND = 15.0  # an upper bound on waits, never a delay


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    try:
        yield g
    finally:
        g.close()


class TestTimeoutIncludesTheQueue:
    async def test_timeout_runs_out_in_the_queue(self, gate: Gate) -> None:
        """timeout= bounds the whole call: spent queued, it is a QueueTimeoutError naming it,
        counted in stats(), and the busy worker is left alone."""
        clock = FakeClock()
        async with isolated_pool(TOOLS, clock=clock) as pool:
            box = pool_mailbox(pool)
            busy = asyncio.create_task(pool.execute("gate", {"address": gate.address}))
            await asyncio.to_thread(gate.wait_started)
            queued = asyncio.create_task(
                pool.execute("gate", {"address": gate.address}, timeout=2.0)
            )
            await box.assert_receive(RequestQueued, BOUND)
            await clock.wait_for_sleepers(1)
            await clock.advance(1.5)
            assert not queued.done()
            await clock.advance(0.6)
            with pytest.raises(snakepit.QueueTimeoutError, match=r"whole timeout=2.0s") as info:
                await asyncio.wait_for(queued, BOUND)
            assert info.value.timeout == 2.0
            stats = pool.stats()
            assert (stats.queue_timeouts, stats.timeouts) == (1, 0)
            gate.open("done")
            assert await asyncio.wait_for(busy, BOUND) == "done"

    async def test_the_worker_gets_what_the_queue_left(self, gate: Gate) -> None:
        """A call that waited 0.9 s of its 1.0 s gives the worker 0.1 s, not a fresh 1.0 s."""
        clock = FakeClock()
        async with isolated_pool(TOOLS, clock=clock) as pool:
            box = pool_mailbox(pool)
            busy = asyncio.create_task(pool.execute("gate", {"address": gate.address}))
            await asyncio.to_thread(gate.wait_started)
            late = asyncio.create_task(pool.execute("hang", timeout=1.0))
            await box.assert_receive(RequestQueued, BOUND)
            await clock.wait_for_sleepers(1)
            await clock.advance(0.9)
            gate.open()
            await asyncio.wait_for(busy, BOUND)
            await box.assert_receive(RequestDispatched, BOUND)
            with pytest.raises(snakepit.ExecutionTimeoutError) as info:
                await asyncio.wait_for(late, BOUND)
            assert info.value.timeout == pytest.approx(0.1)

    async def test_queue_timeout_still_bounds_the_queue_alone(self, gate: Gate) -> None:
        clock = FakeClock()
        async with isolated_pool(TOOLS, clock=clock, queue_timeout=0.5) as pool:
            box = pool_mailbox(pool)
            busy = asyncio.create_task(pool.execute("gate", {"address": gate.address}))
            await asyncio.to_thread(gate.wait_started)
            queued = asyncio.create_task(
                pool.execute("gate", {"address": gate.address}, timeout=None)
            )
            await box.assert_receive(RequestQueued, BOUND)
            await clock.wait_for_sleepers(1)
            await clock.advance(0.6)
            with pytest.raises(snakepit.QueueTimeoutError, match="queue deadline"):
                await asyncio.wait_for(queued, BOUND)
            assert pool.stats().queue_timeouts == 1
            gate.open()
            await asyncio.wait_for(busy, BOUND)


class TestStreamOrExecute:
    async def test_the_wrong_one_fails_at_once_and_says_which_to_use(self, gate: Gate) -> None:
        """Even with the only worker busy, the mistake is reported before any queueing."""
        async with isolated_pool(TOOLS) as pool:
            busy = asyncio.create_task(pool.execute("gate", {"address": gate.address}))
            await asyncio.to_thread(gate.wait_started)
            with pytest.raises(snakepit.RequestError, match=r"pool\.stream\('count', \.\.\.\)"):
                await pool.execute("count", {"n": 2})
            with pytest.raises(snakepit.RequestError, match=r"pool\.execute\('gate', \.\.\.\)"):
                async for _ in pool.stream("gate", {"address": gate.address}):
                    pass
            assert pool.stats().queued == 0
            gate.open()
            await asyncio.wait_for(busy, BOUND)
            assert [c async for c in pool.stream("count", {"n": 3})] == [0, 1, 2]


class TestRetries:
    async def test_an_idempotent_tool_runs_again_on_a_fresh_worker(self, tmp_path: Path) -> None:
        counter = tmp_path / "runs"
        async with isolated_pool(TOOLS) as pool:
            first = pool.workers()[0].id
            args = {"path": str(counter), "crashes": 1}
            assert await pool.execute("idempotent_crash", args, timeout=BOUND) == 2
            assert pool.workers()[0].id != first

    async def test_attempts_are_bounded_and_recorded(self, tmp_path: Path) -> None:
        counter = tmp_path / "runs"
        async with isolated_pool(TOOLS) as pool:
            with pytest.raises(snakepit.WorkerCrashedError) as info:
                await pool.execute("idempotent_crash", {"path": str(counter), "crashes": 5})
            assert info.value.attempts == 2  # idempotent_retries defaults to 1
            assert len(info.value.errors) == 2
            assert "2 times, each on a fresh worker" in str(info.value)
            assert counter.read_text() == "2"

    async def test_a_plain_tool_is_never_retried(self, tmp_path: Path) -> None:
        counter = tmp_path / "runs"
        async with isolated_pool(TOOLS) as pool:
            with pytest.raises(snakepit.WorkerCrashedError) as info:
                await pool.execute("plain_crash", {"path": str(counter), "crashes": 1})
            assert info.value.attempts == 1
            assert counter.read_text() == "1"

    async def test_retries_on_the_call(self, tmp_path: Path) -> None:
        counter = tmp_path / "runs"
        async with isolated_pool(TOOLS, idempotent_retries=0) as pool:
            args = {"path": str(counter), "crashes": 2}
            assert await pool.execute("plain_crash", args, retries=2) == 3
            with pytest.raises(snakepit.WorkerCrashedError):  # the pool's default: 0 retries
                await pool.execute("idempotent_crash", {"path": str(tmp_path / "b"), "crashes": 1})
            with pytest.raises(ValueError, match="retries must be an integer >= 0"):
                await pool.execute("plain_crash", args, retries=-1)

    async def test_a_tool_error_is_not_retried(self, tmp_path: Path) -> None:
        counter = tmp_path / "runs"
        async with isolated_pool(TOOLS) as pool:
            with pytest.raises(snakepit.ToolError, match="never retried"):
                await pool.execute("idempotent_fail", {"path": str(counter)}, retries=3)
            assert counter.read_text() == "1"
