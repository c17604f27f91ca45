"""In-process workers (``snakepit.testing._mock``): real worker code on threads, nothing left behind."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

import snakepit
from snakepit.clock import SystemClock
from snakepit.events import EventBus, RequestDispatched, WorkerExited
from snakepit.testing import MockWorker, in_process_workers, pool_mailbox
from snakepit.worker import WorkerOptions
from supertester import ThreadLeakCheck

if TYPE_CHECKING:
    from pathlib import Path

MOCK = "snakepit.testing.adapters:MockAdapter"
BOUND = 5.0


def _pool(
    adapter: str, workers: list[MockWorker] | None = None, **options: object
) -> snakepit.Pool:
    return snakepit.Pool(
        adapter=adapter,
        worker_factory=in_process_workers(workers),
        heartbeat_interval=None,
        **{"size": 1, **options},  # type: ignore[arg-type]
    )


class TestRealWorkerCode:
    async def test_a_tool_taking_a_context_gets_a_real_one(self) -> None:
        """A tool that takes a SessionContext gets one (not None), and its variables reach
        the pool's session store through the worker's own connection."""
        async with _pool("tests.support.parity:Parity") as pool:
            assert await pool.execute("where") == {"session": None, "tool": "where", "worker": True}
            async with pool.session("ctx") as session:
                assert await session.execute("remember", {"value": 4}) == [5, 2]
                assert (await session.variables.get("n")).value == 5

    async def test_setup_failure_is_a_startup_error_with_the_worker_exit_code(self) -> None:
        """An adapter whose setup() raises fails the start with WorkerStartupError and exit
        code 4, as a worker process does, with the traceback as its reason."""
        pool = _pool("snakepit.testing.adapters:FailingSetup")
        with pytest.raises(snakepit.WorkerStartupError) as info:
            await pool.start()
        await pool.close()
        assert info.value.exit_code == 4
        assert "refuses to start" in info.value.stderr_tail

    async def test_an_adapter_that_cannot_be_imported_exits_with_code_3(self) -> None:
        pool = _pool("tests.support.no_such_module:Adapter")
        with pytest.raises(snakepit.WorkerStartupError) as info:
            await pool.start()
        await pool.close()
        assert info.value.exit_code == 3
        assert "no_such_module" in info.value.stderr_tail

    async def test_a_worker_outside_a_pool_says_it_has_no_host(self, tmp_path: Path) -> None:
        """Built without a pool, a worker has no host: a tool's call to it fails with a
        SnakepitError saying so, instead of answering with empty values."""
        options = WorkerOptions(adapter="tests.support.parity:Parity", runtime_dir=tmp_path)
        worker = MockWorker("w1", options, events=EventBus("t"), clock=SystemClock(), source="t")
        await worker.start()
        try:
            with pytest.raises(snakepit.SnakepitError, match="no host to answer RegisterVariable"):
                await worker.execute("remember", {"value": 1}, session_id="s", timeout=BOUND)
            assert await worker.execute("host_tools", {}, timeout=BOUND) == []
        finally:
            await worker.stop()


class TestNothingLeaks:
    async def test_no_thread_outlives_the_pool_whatever_its_workers_went_through(self) -> None:
        """Crashed, held, killed past a deadline or closed: every worker's threads (reader,
        tool crew, event loop of async tools) end."""
        workers: list[MockWorker] = []
        parity = "tests.support.parity:Parity"
        async with ThreadLeakCheck(grace=BOUND), _pool(parity, workers, size=2) as pool:
            box = pool_mailbox(pool)
            assert await pool.execute("total", {"n": 3}) == 3  # the event loop thread
            with pytest.raises(snakepit.ExecutionTimeoutError):
                await pool.execute("forever", timeout=0.01)
            for worker in workers:
                worker.hang_next()  # the call waits in whichever worker takes it
            held = asyncio.ensure_future(pool.execute("add", {"a": 1, "b": 1}, timeout=None))
            await box.assert_receive(RequestDispatched, BOUND)
            for worker in list(workers):
                worker.crash()
            with pytest.raises(snakepit.WorkerCrashedError):
                await held
            await box.assert_receive(WorkerExited, BOUND)

    async def test_stopping_with_a_held_call_ends_it_as_a_crash(self) -> None:
        """A call held in the worker cannot end by itself: a graceful stop ends the worker
        (exit code 0, an expected exit) and the call fails as calls do when their worker
        dies; no thread is left."""
        workers: list[MockWorker] = []
        async with ThreadLeakCheck(grace=BOUND), _pool(MOCK, workers) as pool:
            box = pool_mailbox(pool)
            workers[0].hold_next()
            held = asyncio.ensure_future(pool.execute("ping", timeout=None))
            await box.assert_receive(RequestDispatched, BOUND)
            assert await asyncio.wait_for(workers[0].stop(grace=BOUND), BOUND) == 0
            with pytest.raises(snakepit.WorkerCrashedError):
                await held
            exited = await box.assert_receive(WorkerExited, BOUND)
            assert exited.expected
