"""The pool with real worker processes: dispatch, backpressure, timeouts, crashes, recycling."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter

import pytest

import snakepit
from snakepit.events import (
    PoolDegraded,
    RequestDispatched,
    RequestQueued,
    WorkerExited,
    WorkerReady,
    WorkerRecycled,
    WorkerRestarting,
    WorkerUnhealthy,
)
from snakepit.testing import isolated_pool, pool_mailbox
from supertester import FakeClock

BOUND = 15.0  # an upper bound on waits, never a delay


async def wait_queued(box: object, count: int = 1) -> None:
    for _ in range(count):
        await box.assert_receive(RequestQueued, BOUND)  # type: ignore[attr-defined]


@pytest.mark.usefixtures("both_transports")
class TestDispatch:
    async def test_hundred_concurrent_calls_use_every_worker(self) -> None:
        """100 concurrent calls on a pool of 4 all succeed and are spread over all 4 workers."""
        async with isolated_pool(size=4) as pool:
            pids = await asyncio.gather(*(pool.execute("pid") for _ in range(100)))
            assert len(pids) == 100
            assert set(pids) == {w.pid for w in pool.workers()}
            assert len(set(pids)) == 4
            stats = pool.stats()
            assert (stats.requests, stats.completed, stats.errors) == (100, 100, 0)

    async def test_stream_through_the_pool(self) -> None:
        """pool.stream yields a generator tool's chunks in order and frees the worker after."""
        async with isolated_pool() as pool:
            assert [c async for c in pool.stream("count", {"n": 50})] == [
                {"i": i} for i in range(50)
            ]
            assert pool.stats().busy == 0
            assert await pool.execute("add", {"a": 2, "b": 2}) == 4

    async def test_breaking_out_of_a_stream_frees_the_worker(self) -> None:
        """A consumer that stops reading early releases the worker for the next call."""
        async with isolated_pool() as pool:
            stream = pool.stream("count", {"n": 100_000})
            async for chunk in stream:
                if chunk["i"] == 3:
                    break
            await stream.aclose()  # type: ignore[attr-defined]
            assert await pool.execute("ping", timeout=BOUND) == {"status": "pong"}

    @pytest.mark.parametrize("both_transports", ["local"], indirect=True)  # host-side checks
    async def test_unknown_tool_and_bad_args_fail_before_dispatch(self) -> None:
        """The host rejects an unknown tool or a missing argument without using a worker."""
        async with isolated_pool() as pool:
            with pytest.raises(snakepit.ToolNotFoundError, match="no tool 'nope'"):
                await pool.execute("nope")
            with pytest.raises(
                snakepit.InvalidArgumentsError, match="missing required argument 'b'"
            ):
                await pool.execute("add", {"a": 1})
            with pytest.raises(snakepit.InvalidArgumentsError, match="must be a dict"):
                await pool.execute("add", [1, 2])  # type: ignore[arg-type]
            assert pool.workers()[0].requests == 0

    async def test_tool_error_leaves_the_worker_in_service(self) -> None:
        """A tool that raises gives ToolError and the same worker serves the next call."""
        async with isolated_pool() as pool:
            pid = await pool.execute("pid")
            with pytest.raises(snakepit.ToolError, match="boom"):
                await pool.execute("fail", {"message": "boom"})
            assert await pool.execute("pid") == pid
            assert pool.stats().errors == 1


class TestBackpressure:
    async def test_full_queue_is_saturated_at_once(self) -> None:
        """With the worker busy and max_queue calls waiting, one more is PoolSaturatedError at once."""
        async with isolated_pool(max_queue=1) as pool:
            box = pool_mailbox(pool)
            hung = asyncio.create_task(pool.execute("hang", timeout=None))
            queued = asyncio.create_task(pool.execute("ping", timeout=None))
            await wait_queued(box)
            with pytest.raises(snakepit.PoolSaturatedError, match="max_queue=1"):
                await pool.execute("ping")
            assert pool.stats().saturated == 1
            for task in (hung, queued):
                task.cancel()
            await asyncio.gather(hung, queued, return_exceptions=True)

    async def test_queue_timeout_follows_the_clock(self) -> None:
        """A call queued longer than queue_timeout (on the pool's clock) gets QueueTimeoutError."""
        clock = FakeClock()
        async with isolated_pool(queue_timeout=5.0, clock=clock) as pool:
            box = pool_mailbox(pool)
            hung = asyncio.create_task(pool.execute("hang", timeout=None))
            queued = asyncio.create_task(pool.execute("ping", timeout=None))
            await wait_queued(box)
            await clock.wait_for_sleepers(1)
            await clock.advance(4.0)
            assert not queued.done()
            await clock.advance(1.5)
            with pytest.raises(snakepit.QueueTimeoutError):
                await asyncio.wait_for(queued, BOUND)
            hung.cancel()
            await asyncio.gather(hung, return_exceptions=True)

    async def test_cancelled_queued_caller_leaves_the_queue(self) -> None:
        """Cancelling a queued call removes it from the queue; the next call still runs."""
        async with isolated_pool() as pool:
            box = pool_mailbox(pool)
            hung = asyncio.create_task(pool.execute("hang", timeout=None))
            queued = asyncio.create_task(pool.execute("ping", timeout=None))
            await wait_queued(box)
            assert pool.stats().queued == 1
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            assert pool.stats().queued == 0
            hung.cancel()
            await asyncio.gather(hung, return_exceptions=True)

    @pytest.mark.usefixtures("both_transports")
    async def test_cancelled_running_sync_call_replaces_its_worker(self) -> None:
        """Cancelling a running call to a sync tool (which cannot be interrupted in its thread)
        replaces its worker, so the next call never waits behind the abandoned one."""
        async with isolated_pool() as pool:
            box = pool_mailbox(pool)
            old = pool.workers()[0].pid
            hung = asyncio.create_task(pool.execute("hang", timeout=None))
            await box.assert_receive(RequestDispatched, BOUND)
            hung.cancel()
            with pytest.raises(asyncio.CancelledError):
                await hung
            assert pool.stats().busy == 0
            unhealthy = await box.assert_receive(WorkerUnhealthy, BOUND)
            assert unhealthy.pid == old and "cancelled" in unhealthy.reason
            assert await pool.execute("pid", timeout=BOUND) != old

    @pytest.mark.usefixtures("both_transports")
    async def test_cancelled_running_async_call_keeps_its_worker(self) -> None:
        """Cancelling a running call to an async tool cancels it in the worker, which stays."""
        async with isolated_pool("snakepit.testing.adapters:Streams") as pool:
            box = pool_mailbox(pool)
            old = pool.workers()[0].pid
            waiting = asyncio.create_task(pool.execute("wait_forever", timeout=None))
            await box.assert_receive(RequestDispatched, BOUND)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert await pool.execute("ticks_total", {"n": 4}, timeout=BOUND) == 6
            assert pool.workers()[0].pid == old
            await box.refute_receive(WorkerExited, within=0.05)


@pytest.mark.usefixtures("both_transports")
class TestTimeoutsAndCrashes:
    async def test_execution_timeout_kills_and_replaces_the_worker(self) -> None:
        """A call past its deadline fails with ExecutionTimeoutError and its worker is replaced."""
        async with isolated_pool() as pool:
            box = pool_mailbox(pool)
            old_pid = pool.workers()[0].pid
            with pytest.raises(snakepit.ExecutionTimeoutError, match="'hang'"):
                await pool.execute("hang", timeout=0.3)
            exited = await box.assert_receive(WorkerExited, BOUND)
            assert exited.pid == old_pid
            ready = await box.assert_receive(WorkerReady, BOUND)
            assert ready.pid != old_pid
            assert await pool.execute("pid") == ready.pid
            stats = pool.stats()
            assert (stats.timeouts, stats.crashes, stats.restarts) == (1, 0, 1)

    async def test_crash_mid_call_fails_only_that_call(self) -> None:
        """A worker that dies mid-call fails that call; calls on other workers succeed; it is replaced."""
        async with isolated_pool(size=2) as pool:
            box = pool_mailbox(pool)
            crash = asyncio.create_task(pool.execute("crash", {"code": 3}))
            others = [pool.execute("add", {"a": i, "b": 1}) for i in range(10)]
            results = await asyncio.gather(*others)
            assert results == [i + 1 for i in range(10)]
            with pytest.raises(snakepit.WorkerCrashedError, match="exit code 3") as info:
                await crash
            assert info.value.exit_code == 3
            await box.assert_receive(WorkerReady, BOUND)
            assert pool.stats().live_workers == 2
            assert pool.stats().crashes == 1

    @pytest.mark.parametrize("both_transports", ["local"], indirect=True)  # supervision only
    async def test_restart_intensity_makes_the_pool_degraded(self) -> None:
        """More crashes than max_restarts within the window stop restarts and report degraded."""
        async with isolated_pool(size=2, max_restarts=1, restart_window=60.0) as pool:
            box = pool_mailbox(pool)
            with pytest.raises(snakepit.WorkerCrashedError):
                await pool.execute("crash")
            await box.assert_receive(WorkerReady, BOUND)
            with pytest.raises(snakepit.WorkerCrashedError):
                await pool.execute("crash")
            degraded = await box.assert_receive(PoolDegraded, BOUND)
            assert "more than 1 unexpected worker exits within 60.0s" in degraded.reason
            stats = pool.stats()
            assert stats.degraded and stats.live_workers == 1
            assert "DEGRADED" in repr(pool)
            assert await pool.execute("ping") == {"status": "pong"}
            await pool.recover()
            assert pool.stats().live_workers == 2 and not pool.stats().degraded

    async def test_heartbeat_failure_replaces_a_stopped_worker(self) -> None:
        """A worker that stops answering Ping (SIGSTOP) is killed and replaced at the first
        heartbeat it misses."""
        clock = FakeClock()
        # One worker: on a loaded machine a second, healthy one could miss a 0.5 s Ping too.
        async with isolated_pool(
            size=1, heartbeat_interval=10.0, heartbeat_timeout=0.5, clock=clock
        ) as pool:
            box = pool_mailbox(pool)
            pid = pool.workers()[0].pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            # kill() returns before a multi-threaded process has stopped: the kernel wakes one
            # thread to stop the group, and until that thread gets a CPU another one can still
            # read and answer a Ping. So heartbeat rounds run until one fails; each round ends
            # when the maintenance loop sleeps again (after WorkerUnhealthy, if it failed).
            async with asyncio.timeout(BOUND):
                while not any(isinstance(e, WorkerUnhealthy) for e in box.pending):
                    await clock.wait_for_sleepers(1)
                    await clock.advance(10.0)
                    await clock.wait_for_sleepers(1, timeout=BOUND)
            unhealthy = await box.assert_receive(WorkerUnhealthy, BOUND)
            assert unhealthy.pid == pid and "heartbeat" in unhealthy.reason
            restarting = await box.assert_receive(WorkerRestarting, BOUND)
            await clock.advance(restarting.delay)  # the restart backoff runs on the pool's clock
            ready = await box.assert_receive(WorkerReady, BOUND)
            assert ready.pid != pid


class TestAffinity:
    async def test_hint_affinity_keeps_a_session_on_its_worker(self) -> None:
        """Calls of one session run on the worker it used last, so worker-local state is there."""
        async with isolated_pool(size=3) as pool, pool.session("user-1") as session:
            await session.execute("remember", {"key": "k", "value": 42})
            pid = await session.execute("pid")
            for _ in range(5):
                assert await session.execute("recall", {"key": "k"}) == 42
            assert await session.execute("pid") == pid
            assert session.worker_id is not None

    async def test_strict_fail_fast_rejects_when_the_worker_is_busy(self) -> None:
        """In strict_fail_fast a session call whose worker is busy fails at once with WorkerBusyError."""
        async with isolated_pool(size=2, affinity="strict_fail_fast") as pool:
            box = pool_mailbox(pool)
            session = pool.session("s1")
            await session.execute("ping")
            hung = asyncio.create_task(session.execute("hang", timeout=BOUND))
            await box.assert_receive(
                lambda e: isinstance(e, RequestDispatched) and e.tool == "hang", BOUND
            )
            with pytest.raises(snakepit.WorkerBusyError):
                await session.execute("ping")
            assert await pool.execute("ping") == {"status": "pong"}  # the other worker serves
            hung.cancel()
            await asyncio.gather(hung, return_exceptions=True)

    async def test_strict_mode_reports_a_gone_worker(self) -> None:
        """In strict_queue, once the session's worker died, its calls fail with SessionWorkerUnavailableError."""
        async with isolated_pool(size=2, affinity="strict_queue") as pool:
            box = pool_mailbox(pool)
            session = pool.session("s2")
            await session.execute("ping")
            with pytest.raises(snakepit.WorkerCrashedError):
                await session.execute("crash")
            await box.assert_receive(WorkerExited, BOUND)
            with pytest.raises(snakepit.SessionWorkerUnavailableError):
                await session.execute("ping")


class TestRecycling:
    async def test_recycling_by_requests_fails_no_call(self) -> None:
        """After max_requests a worker is drained and replaced, and every call succeeds."""
        async with isolated_pool(max_requests=3) as pool:
            box = pool_mailbox(pool)
            first = await pool.execute("pid")
            await pool.execute("ping")
            await pool.execute("ping")
            recycled = await box.assert_receive(WorkerRecycled, BOUND)
            assert recycled.pid == first and "max_requests" in recycled.reason
            results = await asyncio.gather(*(pool.execute("pid", timeout=BOUND) for _ in range(5)))
            # The draining worker took no new call, and no worker served more than
            # max_requests: the replacement was itself recycled after three.
            assert first not in results
            assert sorted(Counter(results).values()) == [2, 3]
            assert pool.stats().recycled == 2
            assert pool.stats().errors == 0

    async def test_recycling_by_ttl_follows_the_clock(self) -> None:
        """A worker older than ttl on the pool's clock is recycled at the next check."""
        clock = FakeClock()
        async with isolated_pool(ttl=30.0, clock=clock) as pool:
            box = pool_mailbox(pool)
            first = await pool.execute("pid")
            await clock.wait_for_sleepers(1)
            await clock.advance(31.0)
            recycled = await box.assert_receive(WorkerRecycled, BOUND)
            assert recycled.pid == first and "ttl" in recycled.reason
            ready = await box.assert_receive(WorkerReady, BOUND)
            assert await pool.execute("pid") == ready.pid

    async def test_recycling_by_memory(self) -> None:
        """A worker above memory_limit_mb RSS is recycled at the next check."""
        clock = FakeClock()
        async with isolated_pool(memory_limit_mb=1.0, clock=clock) as pool:
            box = pool_mailbox(pool)
            await clock.wait_for_sleepers(1)
            await clock.advance(1.0)
            recycled = await box.assert_receive(WorkerRecycled, BOUND)
            assert "memory" in recycled.reason


class TestLifecycle:
    async def test_calls_after_close_raise_pool_closed(self) -> None:
        """After close(), calls raise PoolClosedError; close() again is a no-op."""
        async with isolated_pool() as pool:
            pass
        with pytest.raises(snakepit.PoolClosedError, match="closed"):
            await pool.execute("ping")
        await pool.close()
        assert pool.state == "closed"

    async def test_unstarted_pool_says_how_to_start(self) -> None:
        """A call on a pool that was never started says to start it."""
        pool = snakepit.Pool(adapter="snakepit.examples.showcase:Showcase", size=1)
        with pytest.raises(snakepit.PoolClosedError, match="not started"):
            await pool.execute("ping")

    async def test_startup_failure_cleans_up_every_worker(self) -> None:
        """If a worker fails to start, start() raises WorkerStartupError and no worker is left."""
        with pytest.raises(snakepit.WorkerStartupError, match="refuses to start") as info:
            async with isolated_pool("snakepit.testing.adapters:FailingSetup", size=2):
                pass
        assert info.value.exit_code == 4

    async def test_repr_and_stats_tell_the_state(self) -> None:
        """repr shows busy/idle/queued at a glance; stats() and workers() are snapshots."""
        async with isolated_pool(size=2, name="demo-pool") as pool:
            assert repr(pool) == "<Pool demo-pool running [busy 0, idle 2 | queued 0] workers=2/2>"
            stats = pool.stats()
            with pytest.raises(AttributeError):
                stats.requests = 5  # type: ignore[misc]
            infos = pool.workers()
            assert [w.state for w in infos] == ["ready", "ready"]
            assert all(w.address and w.pid for w in infos)

    async def test_pickle_serialization_is_opt_in(self) -> None:
        """With serialization='pickle' a Python-only value (a set) round-trips."""
        async with isolated_pool(serialization="pickle") as pool:
            assert await pool.execute("echo", {"value": {1, 2, 3}}) == {1, 2, 3}

    async def test_tcp_transport(self) -> None:
        """transport='tcp' serves on loopback and works the same."""
        async with isolated_pool(transport="tcp") as pool:
            assert pool.workers()[0].address.startswith("127.0.0.1:")  # type: ignore[union-attr]
            assert await pool.execute("add", {"a": 1, "b": 2}) == 3
