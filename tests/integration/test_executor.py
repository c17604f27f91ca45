"""snakepit.Executor against CPython's test_concurrent_futures (the parts that apply to a
process executor), plus the guarantees ProcessPoolExecutor does not give."""

from __future__ import annotations

import concurrent.futures as cf
import gc
import os
import pickle
import subprocess
import sys
import threading
import traceback
import weakref
from typing import TYPE_CHECKING, Any

import pytest

import snakepit
from snakepit._executor import RemoteTraceback
from snakepit.events import WorkerReady
from snakepit.testing import assert_no_worker_left
from tests.support import executor_tasks as tasks
from tests.support.executor_tasks import Gate

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

BOUND = 15.0  # an upper bound on waits, never a delay


def make_executor(registry: Path, max_workers: int = 2, **options: Any) -> snakepit.Executor:
    options.setdefault("heartbeat_interval", None)
    options.setdefault("shutdown_grace", 2.0)
    options.setdefault("startup_timeout", 20.0)
    return snakepit.Executor(max_workers, registry_dir=str(registry), **options)


def worker_pids(executor: snakepit.Executor) -> set[int]:
    pool = executor.pool
    return {w.pid for w in pool.workers() if w.pid} if pool is not None else set()


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[snakepit.Executor]:
    """One executor for the cases that leave it as they found it."""
    ex = make_executor(tmp_path_factory.mktemp("reg"))
    pids: set[int] = set()
    try:
        ex.submit(int).result(BOUND)
        pids = worker_pids(ex)
        yield ex
    finally:
        ex.shutdown(wait=True)
        assert_no_worker_left(pids)


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    try:
        yield g
    finally:
        g.close()


class TestSubmitAndMap:
    def test_submit(self, executor: snakepit.Executor) -> None:
        assert executor.submit(pow, 2, 8).result(BOUND) == 256

    def test_submit_keyword(self, executor: snakepit.Executor) -> None:
        assert executor.submit(tasks.mul, 2, y=8).result(BOUND) == 16
        future = executor.submit(tasks.capture, 1, self=2, fn=3)
        assert future.result(BOUND) == ((1,), {"self": 2, "fn": 3})
        with pytest.raises(TypeError):
            executor.submit(fn=tasks.capture, arg=1)  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            executor.submit(arg=1)  # type: ignore[call-arg]

    def test_lambdas_and_closures_travel_by_value(self, executor: snakepit.Executor) -> None:
        """What ProcessPoolExecutor cannot pickle runs here (cloudpickle)."""
        base = 40
        assert executor.submit(lambda x: x + base, 2).result(BOUND) == 42
        assert list(executor.map(lambda x: -x, range(3))) == [0, -1, -2]

    def test_map(self, executor: snakepit.Executor) -> None:
        expected = list(map(pow, range(10), range(10)))
        assert list(executor.map(pow, range(10), range(10))) == expected
        assert list(executor.map(pow, range(10), range(10), chunksize=3)) == expected

    def test_map_chunksize(self, executor: snakepit.Executor) -> None:
        ref = list(map(pow, range(40), range(40)))
        for chunksize in (6, 50, 40):
            assert list(executor.map(pow, range(40), range(40), chunksize=chunksize)) == ref
        for bad in (0, -1):
            with pytest.raises(ValueError, match="chunksize"):
                list(executor.map(pow, range(40), range(40), chunksize=bad))

    def test_map_exception(self, executor: snakepit.Executor) -> None:
        results = executor.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
        assert next(results) == (0, 1)
        assert next(results) == (0, 1)
        with pytest.raises(ZeroDivisionError):
            next(results)

    def test_map_timeout(self, executor: snakepit.Executor, gate: Gate) -> None:
        results: list[Any] = []
        values = executor.map(tasks.wait_if_address, [0, 0, gate.address], timeout=0.3)
        with pytest.raises(TimeoutError):
            results.extend(values)
        assert results == [0, 0]
        gate.wait_started()  # the third call was running, blocked, when the timeout hit

    def test_free_reference(self, executor: snakepit.Executor) -> None:
        """The result iterator keeps no reference to the values it handed out."""
        for obj in executor.map(tasks.make_dummy_object, range(4), chunksize=3):  # two chunks
            ref = weakref.ref(obj)
            del obj
            gc.collect()
            assert ref() is None

    def test_no_stale_references(self, executor: snakepit.Executor) -> None:
        obj = tasks.MyObject()
        collected = threading.Event()
        ref = weakref.ref(obj, lambda _: collected.set())
        executor.submit(obj.my_method).result(BOUND)  # the future is kept, the call is not
        del obj
        gc.collect()
        assert collected.wait(BOUND), ref

    def test_a_call_that_cannot_be_pickled_fails_its_future(
        self, executor: snakepit.Executor
    ) -> None:
        future = executor.submit(tasks.capture, threading.Lock())
        with pytest.raises(snakepit.SerializationError, match="capture"):
            future.result(BOUND)


class TestExceptions:
    def test_traceback(self, executor: snakepit.Executor) -> None:
        """The exception is the function's own; the worker's traceback is its cause."""
        future = executor.submit(tasks.raise_runtime_error)
        with pytest.raises(RuntimeError) as info:
            future.result(BOUND)
        exc = info.value
        assert type(exc) is RuntimeError
        assert exc.args == (123,)
        cause = exc.__cause__
        assert type(cause) is RemoteTraceback
        assert "raise RuntimeError(123)  # some comment" in cause.tb
        assert "raise RuntimeError(123)  # some comment" in "".join(traceback.format_exception(exc))

    def test_each_future_gets_its_own_exception(self, executor: snakepit.Executor) -> None:
        futures = [executor.submit(tasks.raise_runtime_error) for _ in range(3)]
        errors = [f.exception(BOUND) for f in futures]
        assert len({id(e) for e in errors}) == 3

    def test_exception_that_cannot_be_rebuilt_becomes_tool_error(
        self, executor: snakepit.Executor
    ) -> None:
        future = executor.submit(tasks.raise_two_arg_error)
        with pytest.raises(snakepit.ToolError) as info:
            future.result(BOUND)
        assert "TwoArgError" in str(info.value)
        assert "x/y" in str(info.value)
        assert "could not be unpickled" in info.value.remote_traceback

    def test_system_exit_in_a_function_reaches_the_caller(
        self, executor: snakepit.Executor
    ) -> None:
        """As in ProcessPoolExecutor: the worker survives and the future holds SystemExit."""
        with pytest.raises(SystemExit) as info:
            executor.submit(sys.exit, 3).result(BOUND)
        assert info.value.code == 3
        assert executor.submit(int).result(BOUND) == 0


class TestWaitAndAsCompleted:
    def test_wait_first_completed_and_all(self, executor: snakepit.Executor, gate: Gate) -> None:
        blocked = executor.submit(tasks.wait_gate, gate.address)
        quick = executor.submit(tasks.mul, 6, 7)
        done, not_done = cf.wait([blocked, quick], timeout=BOUND, return_when=cf.FIRST_COMPLETED)
        assert done == {quick}
        assert not_done == {blocked}
        gate.wait_started()
        gate.open("open")
        done, not_done = cf.wait([blocked, quick], timeout=BOUND)
        assert (done, not_done) == ({blocked, quick}, set())
        assert blocked.result() == "open"

    def test_wait_first_exception(self, executor: snakepit.Executor, gate: Gate) -> None:
        blocked = executor.submit(tasks.wait_gate, gate.address)
        failing = executor.submit(divmod, 1, 0)
        done, not_done = cf.wait([blocked, failing], timeout=BOUND, return_when=cf.FIRST_EXCEPTION)
        assert done == {failing}
        assert not_done == {blocked}
        gate.wait_started()

    def test_as_completed(self, executor: snakepit.Executor, gate: Gate) -> None:
        blocked = executor.submit(tasks.wait_gate, gate.address)
        quick = [executor.submit(tasks.mul, i, 2) for i in range(5)]
        assert not cf.wait(quick, timeout=BOUND).not_done
        gate.wait_started()
        seen: list[cf.Future[Any]] = []
        with pytest.raises(TimeoutError):
            seen.extend(cf.as_completed([blocked, *quick], timeout=0.2))
        assert set(seen) == set(quick)
        assert sorted(f.result() for f in seen) == [0, 2, 4, 6, 8]


class TestGuarantees:
    def test_a_dying_worker_fails_only_its_future(self, tmp_path: Path, gate: Gate) -> None:
        """ProcessPoolExecutor breaks as a whole here; snakepit fails one future and goes on."""
        with make_executor(tmp_path) as ex:
            survivor = ex.submit(tasks.wait_gate, gate.address)
            gate.wait_started()
            dying = ex.submit(tasks.die, 7)
            with pytest.raises(snakepit.WorkerCrashedError) as info:
                dying.result(BOUND)
            assert info.value.exit_code == 7
            assert "die" in "".join(getattr(info.value, "__notes__", []))
            gate.open("alive")
            assert survivor.result(BOUND) == "alive"
            assert list(ex.map(tasks.mul, range(4), range(4))) == [0, 1, 4, 9]
            pids = worker_pids(ex)
        assert_no_worker_left(pids)

    def test_a_stuck_task_times_out_and_its_worker_is_replaced(
        self, tmp_path: Path, gate: Gate
    ) -> None:
        with make_executor(tmp_path, max_workers=1, timeout=0.5) as ex:
            first_pid = ex.submit(os.getpid).result(BOUND)
            assert ex.pool is not None
            replaced = threading.Event()
            ex.pool.events.add_listener(lambda _: replaced.set(), WorkerReady)
            stuck = ex.submit(tasks.wait_gate, gate.address)
            with pytest.raises(snakepit.ExecutionTimeoutError):
                stuck.result(BOUND)
            # The next task's timeout covers its queue wait too: let the replacement start.
            assert replaced.wait(BOUND)
            assert ex.submit(os.getpid).result(BOUND) != first_pid
            pids = worker_pids(ex)
        assert_no_worker_left(pids)


class TestShutdown:
    def test_run_after_shutdown(self, tmp_path: Path) -> None:
        ex = make_executor(tmp_path)
        ex.shutdown()
        with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
            ex.submit(pow, 2, 5)

    def test_context_manager_and_pending_work_finishes(self, tmp_path: Path) -> None:
        """shutdown() (the with block's end) waits for every submitted task."""
        with make_executor(tmp_path) as ex:
            futures = [ex.submit(tasks.mul, i, i) for i in range(50)]
            assert list(ex.map(abs, range(-5, 5))) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
        assert ex.pool is not None
        assert ex.pool.state == "closed"
        assert [f.result(0) for f in futures] == [i * i for i in range(50)]

    def test_cancel_futures(self, tmp_path: Path, gate: Gate) -> None:
        ex = make_executor(tmp_path, max_workers=1)
        running = ex.submit(tasks.wait_gate, gate.address)
        gate.wait_started()
        rest = [ex.submit(tasks.mul, i, 1) for i in range(49)]
        ex.shutdown(wait=False, cancel_futures=True)
        gate.open()
        ex.shutdown(wait=True)
        assert running.result(0) == "go"
        assert all(f.cancelled() for f in rest)

    def test_shutdown_without_wait_still_finishes_the_work(self, tmp_path: Path) -> None:
        ex = make_executor(tmp_path)
        results = ex.map(abs, range(-5, 5))
        ex.shutdown(wait=False)
        assert list(results) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
        ex.shutdown(wait=True)

    def test_a_cancelled_future_does_not_hang_shutdown(self, tmp_path: Path) -> None:
        ex = make_executor(tmp_path, max_workers=1)
        ex.submit(int).result(BOUND)
        ex.submit(int).cancel()
        ex.shutdown(wait=True)

    def test_max_workers_must_be_positive(self) -> None:
        for number in (0, -1):
            with pytest.raises(ValueError, match="max_workers must be greater than 0"):
                snakepit.Executor(max_workers=number)

    def test_a_bad_pool_option_is_named(self) -> None:
        with pytest.raises(ValueError, match="max_queue"):
            snakepit.Executor(1, max_queue=-1)


class TestInitializer:
    def test_initializer_runs_in_every_worker(self, tmp_path: Path) -> None:
        with make_executor(tmp_path, initializer=tasks.init, initargs=("initialized",)) as ex:
            futures = [ex.submit(tasks.get_init_status) for _ in range(4)]
            assert [f.result(BOUND) for f in futures] == ["initialized"] * 4
            assert tasks.get_init_status() == "uninitialized"  # not in this process

    def test_failing_initializer_breaks_the_executor(self, tmp_path: Path) -> None:
        ex = make_executor(tmp_path, initializer=tasks.init_fail)
        try:
            future = ex.submit(tasks.get_init_status)
            with pytest.raises(cf.BrokenExecutor) as info:
                future.result(BOUND)
            assert isinstance(info.value, snakepit.BrokenExecutorError)
            assert "ValueError: error in initializer" in str(info.value.__cause__)
            with pytest.raises(snakepit.BrokenExecutorError):
                ex.submit(tasks.get_init_status)
        finally:
            ex.shutdown()

    def test_initializer_must_be_callable(self) -> None:
        with pytest.raises(TypeError, match="initializer must be a callable"):
            snakepit.Executor(1, initializer=42)  # type: ignore[arg-type]


class TestAsyncPool:
    async def test_submit_and_map(self, tmp_path: Path) -> None:
        pool = snakepit.Pool.for_functions(
            size=2, heartbeat_interval=None, registry_dir=str(tmp_path)
        )
        async with pool:
            assert await pool.submit(pow, 2, 10) == 1024
            assert await pool.submit(lambda: "closure") == "closure"
            assert [v async for v in pool.map(tasks.mul, range(30), range(30), chunksize=4)] == [
                i * i for i in range(30)
            ]
            with pytest.raises(ZeroDivisionError):
                await pool.submit(divmod, 1, 0)
            seen: list[Any] = []

            async def consume() -> None:
                async for value in pool.map(divmod, [1, 1, 1], [1, 0, 1]):
                    seen.append(value)

            with pytest.raises(ZeroDivisionError):
                await consume()
            assert seen == [(1, 0)]
            assert await pool.submit(int) == 0

    async def test_submit_on_a_pool_of_tools_says_what_to_use(self, tmp_path: Path) -> None:
        async with snakepit.Pool(
            adapter="snakepit.examples.showcase:Showcase",
            size=1,
            heartbeat_interval=None,
            registry_dir=str(tmp_path),
        ) as pool:
            with pytest.raises(snakepit.ToolNotFoundError, match="for_functions"):
                await pool.submit(pow, 2, 2)


_SCRIPT = """
import dataclasses, sys
from concurrent.futures import ProcessPoolExecutor, as_completed
import snakepit

@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int

class Oops(Exception):
    pass

def norm(p):
    return Point(p.x * p.x, p.y * p.y)

def fail(n):
    raise Oops(f"bad {n}")

def main(make):
    with make(max_workers=2) as ex:
        print(list(ex.map(norm, [Point(i, -i) for i in range(5)], chunksize=2)))
        print(sorted(f.result() for f in as_completed([ex.submit(pow, i, 3) for i in range(6)])))
        try:
            ex.submit(fail, 7).result()
        except Oops as e:
            print("caught", type(e).__name__, e, type(e.__cause__).__name__.strip("_"))
        print(ex.submit(divmod, 17, 5).result(), ex.submit(sorted, {3, 1, 2}).result())

if __name__ == "__main__":
    if sys.argv[1] == "snakepit":
        main(lambda **kw: snakepit.Executor(heartbeat_interval=None, registry_dir=sys.argv[2], **kw))
    else:
        main(ProcessPoolExecutor)
"""


def test_a_program_gets_the_same_results_as_with_process_pool_executor(tmp_path: Path) -> None:
    """Functions, classes and exceptions of a __main__ script, by both executors."""
    script = tmp_path / "prog.py"
    script.write_text(_SCRIPT)
    outputs = [
        subprocess.run(
            [sys.executable, str(script), which, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            cwd=tmp_path,
        ).stdout
        for which in ("process", "snakepit")
    ]
    assert "caught Oops bad 7 RemoteTraceback" in outputs[0]
    assert outputs[1] == outputs[0]


def test_broken_executor_error_pickles() -> None:
    error = snakepit.BrokenExecutorError("broken", pool="p")
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, cf.BrokenExecutor)
    assert again.pool == "p"
