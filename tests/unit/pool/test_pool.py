"""The pool's logic with in-process workers: no processes, no sockets, driven by a fake clock."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

import snakepit
from snakepit.events import (
    PoolDegraded,
    PoolRecovered,
    RequestDispatched,
    RequestQueued,
    WorkerReady,
    WorkerRecycled,
    WorkerRestarting,
)
from snakepit.testing import in_process_workers

MOCK = "snakepit.testing.adapters:MockAdapter"
BOUND = 5.0


if TYPE_CHECKING:
    from conftest import Harness

MOCK = "snakepit.testing.adapters:MockAdapter"
BOUND = 5.0


class TestDispatch:
    async def test_calls_spread_over_all_workers(self, harness: Harness) -> None:
        """Concurrent calls are spread across every worker of the pool."""
        results = await asyncio.gather(
            *(harness.pool.execute("add", {"a": i, "b": 0}) for i in range(20))
        )
        assert results == list(range(20))
        assert all(w.requests > 0 for w in harness.workers)

    async def test_stream_and_errors_pass_through(self, harness: Harness) -> None:
        """Streams yield in order; tool errors are ToolError with the remote type."""
        assert [c async for c in harness.pool.stream("count", {"n": 3})] == [
            {"i": 0},
            {"i": 1},
            {"i": 2},
        ]
        with pytest.raises(snakepit.ToolError) as info:
            await harness.pool.execute("fail", {"message": "x"})
        assert info.value.remote_type == "ValueError"


class TestBackpressure:
    @pytest.mark.parametrize("harness", [{"size": 1, "max_queue": 2}], indirect=True)
    async def test_queue_fills_then_saturates(self, harness: Harness) -> None:
        """With one busy worker, max_queue calls wait and the next is rejected at once."""
        harness.workers[0].hang_next()
        busy = asyncio.ensure_future(harness.pool.execute("ping", timeout=None))
        await harness.box.assert_receive(RequestDispatched, BOUND)
        waiting = [asyncio.ensure_future(harness.pool.execute("ping")) for _ in range(2)]
        for _ in waiting:
            await harness.box.assert_receive(RequestQueued, BOUND)
        with pytest.raises(snakepit.PoolSaturatedError):
            await harness.pool.execute("ping")
        harness.workers[0].crash()
        with pytest.raises(snakepit.WorkerCrashedError):
            await busy
        restarting = await harness.box.assert_receive(WorkerRestarting, BOUND)
        await harness.clock.advance(restarting.delay)
        assert await asyncio.gather(*waiting) == [{"status": "pong"}] * 2

    @pytest.mark.parametrize("harness", [{"size": 1, "queue_timeout": 10.0}], indirect=True)
    async def test_queue_timeout_is_measured_on_the_clock(self, harness: Harness) -> None:
        """A queued call fails with QueueTimeoutError exactly when the clock passes its deadline."""
        harness.workers[0].hang_next()
        busy = asyncio.ensure_future(harness.pool.execute("ping", timeout=None))
        await harness.box.assert_receive(RequestDispatched, BOUND)
        queued = asyncio.ensure_future(harness.pool.execute("ping"))
        await harness.box.assert_receive(RequestQueued, BOUND)
        await harness.clock.wait_for_sleepers(1)
        await harness.clock.advance(9.9)
        assert not queued.done()
        await harness.clock.advance(0.2)
        with pytest.raises(snakepit.QueueTimeoutError):
            await queued
        busy.cancel()
        await asyncio.gather(busy, return_exceptions=True)


class TestFailureModes:
    async def test_close_after_a_failed_start_returns(self) -> None:
        """close() after start() failed returns at once (the try/finally pattern never hangs)."""
        pool = snakepit.Pool(
            adapter=MOCK,
            size=2,
            heartbeat_interval=None,
            worker_factory=in_process_workers(fail_start=lambda wid: wid == "w1"),
        )
        with pytest.raises(snakepit.WorkerStartupError):
            await pool.start()
        await asyncio.wait_for(pool.close(), BOUND)
        assert pool.state == "closed"

    @pytest.mark.parametrize(
        "harness", [{"size": 2, "ttl": 30.0, "affinity": "strict_queue"}], indirect=True
    )
    async def test_strict_waiter_fails_typed_when_its_worker_is_retired(
        self, harness: Harness
    ) -> None:
        """A call waiting strictly for a worker that is being retired (recycled while busy)
        fails with SessionWorkerUnavailableError instead of waiting forever."""
        session = harness.pool.session("s1")
        await session.execute("ping")
        pinned = next(w for w in harness.workers if w.id == session.worker_id)
        gate = pinned.hold_next()
        running = asyncio.ensure_future(session.execute("ping", timeout=None))
        await harness.box.assert_receive(RequestDispatched, BOUND)
        await harness.clock.wait_for_sleepers(1)
        await harness.clock.advance(31.0)  # past the TTL: the busy worker starts draining
        await harness.box.assert_receive(
            lambda e: isinstance(e, WorkerRecycled) and e.worker_id == pinned.id, BOUND
        )
        waiting = asyncio.ensure_future(session.execute("ping", timeout=None))
        await harness.box.assert_receive(RequestQueued, BOUND)
        gate.set()  # the running call ends, so the drained worker is stopped
        assert await running == {"status": "pong"}
        with pytest.raises(snakepit.SessionWorkerUnavailableError):
            await asyncio.wait_for(waiting, BOUND)

    @pytest.mark.parametrize(
        "harness", [{"size": 1, "max_restarts": 0, "restart_window": 30.0}], indirect=True
    )
    async def test_degraded_pool_with_no_worker_fails_fast_then_retries(
        self, harness: Harness
    ) -> None:
        """With no live worker and restarts stopped, queued and new calls fail at once with
        PoolDegradedError; after restart_window the pool tries again by itself."""
        harness.workers[0].hold_next()  # keeps the only worker busy
        busy = asyncio.ensure_future(harness.pool.execute("ping", timeout=None))
        await harness.box.assert_receive(RequestDispatched, BOUND)
        queued = asyncio.ensure_future(harness.pool.execute("ping"))
        await harness.box.assert_receive(RequestQueued, BOUND)
        harness.workers[0].crash()
        await harness.box.assert_receive(PoolDegraded, BOUND)
        with pytest.raises(snakepit.WorkerCrashedError):
            await busy
        with pytest.raises(snakepit.PoolDegradedError, match="recover"):
            await queued
        with pytest.raises(snakepit.PoolDegradedError):
            await harness.pool.execute("ping")
        await harness.clock.advance(30.0)
        await harness.box.assert_receive(PoolRecovered, BOUND)
        assert await harness.pool.execute("ping") == {"status": "pong"}
        assert not harness.pool.stats().degraded

    async def test_a_raising_listener_breaks_nothing(self, harness: Harness) -> None:
        """An event listener that raises is logged and skipped; calls and restarts go on."""

        def broken(_: object) -> None:
            raise RuntimeError("listener bug")

        harness.pool.events.add_listener(broken)
        assert await harness.pool.execute("add", {"a": 1, "b": 1}) == 2
        harness.workers[0].crash()
        restarting = await harness.box.assert_receive(WorkerRestarting, BOUND)
        await harness.clock.advance(restarting.delay)
        await harness.box.assert_receive(WorkerReady, BOUND)
        assert harness.pool.stats().live_workers == 2

    @pytest.mark.parametrize("harness", [{"size": 1}], indirect=True)
    async def test_unencodable_args_fail_before_waiting_for_a_worker(
        self, harness: Harness
    ) -> None:
        """Arguments the codec cannot carry fail at once, even while every worker is busy."""
        harness.workers[0].hang_next()
        busy = asyncio.ensure_future(harness.pool.execute("ping", timeout=None))
        await harness.box.assert_receive(RequestDispatched, BOUND)
        with pytest.raises(snakepit.SerializationError, match=r"args of tool 'echo'\['value'\]"):
            await harness.pool.execute("echo", {"value": {1, 2}})
        assert harness.pool.stats().queued == 0
        busy.cancel()
        await asyncio.gather(busy, return_exceptions=True)


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class TestBadInputs:
    async def test_inputs_that_cannot_be_printed_still_get_typed_errors(
        self, harness: Harness
    ) -> None:
        """A tool name whose repr() raises, an argument name of 10**5000, and an int timeout
        beyond float range are typed errors (or, for a timeout past any deadline, none), not
        RuntimeError, ValueError or OverflowError."""
        pool = harness.pool
        with pytest.raises(snakepit.ToolNotFoundError, match="Unprintable"):
            await pool.execute(Unprintable())  # type: ignore[arg-type]
        with pytest.raises(snakepit.InvalidArgumentsError, match="digits"):
            await pool.execute("ping", {10**5000: 1})  # type: ignore[dict-item]
        assert await pool.execute("ping", timeout=10**5000) == {"status": "pong"}  # no deadline
        with pytest.raises(snakepit.InvalidValueError, match="timeout") as info:
            await pool.execute("ping", timeout=-(10**5000))
        assert isinstance(info.value, ValueError)  # still the documented type
        with pytest.raises(snakepit.InvalidValueError, match="session id"):
            await pool.execute("ping", session_id="a b")
        assert await pool.sessions.delete(["not", "an", "id"]) is False  # type: ignore[arg-type]
        assert await pool.execute("ping") == {"status": "pong"}
