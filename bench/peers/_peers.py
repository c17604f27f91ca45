"""The executor peers: ProcessPoolExecutor, multiprocessing.Pool, pebble and loky.

Each is driven the way its documentation shows (``submit().result()``,
``apply``, ``schedule``), with the functions of :mod:`._peer_tasks`. pebble and
loky are imported lazily: when missing, the subject reports ``Unavailable``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import multiprocessing
import multiprocessing.pool
import os
import signal
import threading
import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bench.peers import _peer_tasks as tasks
from bench.peers._subject import (
    IN_FLIGHT,
    IN_FLIGHT_BYTES,
    CrashOutcome,
    NotSupported,
    Session,
    Subject,
    Unavailable,
    alive,
    measure_memory,
)

if TYPE_CHECKING:
    from collections.abc import Callable

_WAIT = 60.0  # the longest any single wait may take before the scenario is declared failed
_HANG = 300.0  # how long a "long task" blocks if nobody kills it


class _Handle(Protocol):
    def done(self) -> bool: ...

    def result(self, timeout: float | None = None) -> Any: ...


@dataclass(frozen=True)
class _Control:
    """The objects every worker receives through the initializer (see ``_peer_tasks``)."""

    arrived: Any
    go: Any
    report: Any

    @classmethod
    def of(cls, ctx: Any) -> _Control:
        return cls(ctx.Semaphore(0), ctx.Event(), ctx.Queue())

    def initargs(self) -> tuple[Any, Any, Any]:
        return (self.arrived, self.go, self.report)


class _Executor:
    """The few operations the scenarios need, in each library's own idiom."""

    @abstractmethod
    def call(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    @abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> _Handle: ...

    @abstractmethod
    def submit_cb(self, fn: Callable[..., Any], done: Callable[[bool], None]) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class _FuturesExecutor(_Executor):
    """Anything with ``submit(fn, *args) -> concurrent.futures.Future`` and ``shutdown``."""

    def __init__(self, executor: Any, cancel_futures: bool = True) -> None:
        self._ex = executor
        self._cancel = cancel_futures

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._ex.submit(fn, *args).result()

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Handle:
        future: concurrent.futures.Future[Any] = self._ex.submit(fn, *args)
        return future

    def submit_cb(self, fn: Callable[..., Any], done: Callable[[bool], None]) -> None:
        future: concurrent.futures.Future[Any] = self._ex.submit(fn)
        future.add_done_callback(lambda f: done(f.exception() is None))

    def close(self) -> None:
        broken = bool(getattr(self._ex, "_broken", False))
        if broken:
            # A broken ProcessPoolExecutor's feeder thread may be stuck writing to a dead
            # worker's pipe, and shutdown(wait=True) would wait for it for ever: shut down
            # without waiting and kill what is left, as a caller recreating it would.
            self._ex.shutdown(wait=False, cancel_futures=True)
            for proc in list((getattr(self._ex, "_processes", None) or {}).values()):
                proc.kill()
                proc.join(_WAIT)
            # With every reader gone, closing our read end makes the stuck write fail, so the
            # feeder thread ends (else the interpreter would wait for it at exit).
            queue = getattr(self._ex, "_call_queue", None)
            reader = getattr(queue, "_reader", None)
            if reader is not None:
                with contextlib.suppress(OSError):
                    reader.close()
        elif self._cancel:
            self._ex.shutdown(wait=True, cancel_futures=True)
        else:  # loky's shutdown has no cancel_futures
            self._ex.shutdown(wait=True)


class _PebbleExecutor(_Executor):
    """pebble's ``schedule(fn, args=...)``; its futures are ``concurrent.futures.Future``."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._pool.schedule(fn, args=args).result()

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Handle:
        future: concurrent.futures.Future[Any] = self._pool.schedule(fn, args=args)
        return future

    def submit_cb(self, fn: Callable[..., Any], done: Callable[[bool], None]) -> None:
        future: concurrent.futures.Future[Any] = self._pool.schedule(fn)
        future.add_done_callback(lambda f: done(f.exception() is None))

    def close(self) -> None:
        self._pool.stop()
        self._pool.join(timeout=_WAIT)


class _AsyncResultHandle:
    def __init__(self, result: multiprocessing.pool.AsyncResult[Any]) -> None:
        self._result = result

    def done(self) -> bool:
        return self._result.ready()

    def result(self, timeout: float | None = None) -> Any:
        return self._result.get(timeout)


class _MPPoolExecutor(_Executor):
    """``multiprocessing.Pool``: ``apply`` and ``apply_async``."""

    def __init__(self, pool: multiprocessing.pool.Pool) -> None:
        self._pool = pool

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._pool.apply(fn, args)

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Handle:
        return _AsyncResultHandle(self._pool.apply_async(fn, args))

    def submit_cb(self, fn: Callable[..., Any], done: Callable[[bool], None]) -> None:
        self._pool.apply_async(
            fn, (), callback=lambda _r: done(True), error_callback=lambda _e: done(False)
        )

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()


def _gate(ex: _Executor, control: _Control, n: int) -> set[int]:
    """Make ``n`` distinct workers answer one call each; their pids.

    ``n`` tasks that each hold their worker until all ``n`` are running: no worker
    can take two, so ``n`` distinct workers must exist and answer.
    """
    handles = [ex.submit(tasks.gate_pid, _WAIT) for _ in range(n)]
    deadline = time.monotonic() + _WAIT
    arrived = 0
    try:
        while arrived < n:
            if control.arrived.acquire(timeout=0.05):
                arrived += 1
                continue
            for handle in handles:
                if handle.done():  # before the gate opens only a failure can be done
                    handle.result(0)
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {arrived} of {n} workers answered in {_WAIT:.0f} s")
        control.go.set()
        pids = {int(handle.result(_WAIT)) for handle in handles}
    finally:
        control.go.clear()
    if len(pids) != n:
        raise RuntimeError(f"expected {n} distinct workers, got {len(pids)}")
    return pids


class _PeerSession(Session):
    def __init__(self, ex: _Executor) -> None:
        self._ex = ex

    def latency(self, calls: int) -> list[float]:
        call, ping, clock = self._ex.call, tasks.ping, time.perf_counter
        out: list[float] = []
        for _ in range(calls):
            t0 = clock()
            call(ping)
            out.append(clock() - t0)
        return out

    def throughput(self, calls: int, concurrency: int) -> float:
        window = threading.Semaphore(concurrency)
        failures: list[bool] = []

        def done(ok: bool) -> None:
            if not ok:
                failures.append(True)
            window.release()

        submit_cb, ping = self._ex.submit_cb, tasks.ping
        t0 = time.perf_counter()
        for _ in range(calls):
            window.acquire()
            submit_cb(ping, done)
        for _ in range(concurrency):
            if not window.acquire(timeout=_WAIT):
                raise TimeoutError("calls did not complete")
        elapsed = time.perf_counter() - t0
        if failures:
            raise RuntimeError(f"{len(failures)} calls failed")
        return calls / elapsed

    def payload(self, data: bytes, calls: int, verify: bool) -> float:
        if verify and self._ex.call(tasks.echo, data) != data:
            raise AssertionError("echo returned different bytes")
        call, echo = self._ex.call, tasks.echo
        t0 = time.perf_counter()
        for _ in range(calls):
            call(echo, data)
        return len(data) * calls / (time.perf_counter() - t0)

    def close(self) -> None:
        self._ex.close()


class _PeerSubject(Subject):
    #: True when the pool replaces a dead worker by itself
    recovers = False

    def _context(self, spawn: bool) -> Any:
        return multiprocessing.get_context("spawn" if spawn else None)

    @abstractmethod
    def _make(self, workers: int, control: _Control, ctx: Any) -> _Executor: ...

    def _open(self, workers: int, spawn: bool = False) -> tuple[_Executor, _Control, set[int]]:
        ctx = self._context(spawn)
        control = _Control.of(ctx)
        ex = self._make(workers, control, ctx)
        try:
            pids = _gate(ex, control, workers)
        except BaseException:
            ex.close()
            raise
        return ex, control, pids

    def session(self, workers: int) -> Session:
        ex, _, _ = self._open(workers)
        session = _PeerSession(ex)
        try:
            session.latency(50)  # warm the paths
        except BaseException:
            session.close()
            raise
        return session

    def start(self, workers: int, spawn: bool) -> float:
        ctx = self._context(spawn)
        control = _Control.of(ctx)  # made before the clock starts: it is not the pool's cost
        t0 = time.perf_counter()
        ex = self._make(workers, control, ctx)
        try:
            _gate(ex, control, workers)
            return time.perf_counter() - t0
        finally:
            ex.close()

    def memory(self, workers: int, spawn: bool = False) -> dict[str, float]:
        ex, _, pids = self._open(workers, spawn)
        try:
            return measure_memory(pids)
        finally:
            ex.close()

    def crash(self, workers: int) -> CrashOutcome:
        ex, control, _ = self._open(workers)
        try:
            long_task = ex.submit(tasks.hang, _HANG)
            victim = int(control.report.get(timeout=_WAIT))
            if not control.arrived.acquire(timeout=_WAIT):
                raise TimeoutError("the long task never started")
            blob = bytes(IN_FLIGHT_BYTES)
            outstanding = [ex.submit(tasks.echo, blob) for _ in range(IN_FLIGHT)]
            t_kill = time.perf_counter()
            os.kill(victim, signal.SIGKILL)
            if self.recovers:
                pids = _gate(ex, control, workers)
                recovery = time.perf_counter() - t_kill
                if victim in pids or not all(alive(p) for p in pids):
                    raise RuntimeError("a dead worker answered")
                failed, lost, what = _outcome(long_task, 2.0)
                failed, lost = _tally(outstanding, failed, lost)
                return CrashOutcome(recovery, None, failed, lost, what)
            failed, lost, what = _outcome(long_task, _WAIT)
            failed, lost = _tally(outstanding, failed, lost)
            ex.close()
            ctx = self._context(False)
            control = _Control.of(ctx)
            ex = self._make(workers, control, ctx)
            _gate(ex, control, workers)
            recreate = time.perf_counter() - t_kill
            return CrashOutcome(None, recreate, failed, lost, f"{what}; the pool is broken")
        finally:
            ex.close()


def _tally(handles: list[_Handle], failed: int, lost: int) -> tuple[int, int]:
    """Add the outstanding calls that raised (failed) or never came back (lost)."""
    for handle in handles:
        try:
            handle.result(_WAIT)
        except (TimeoutError, multiprocessing.TimeoutError):
            lost += 1
        except Exception:
            failed += 1
    return failed, lost


def _outcome(handle: _Handle, wait: float) -> tuple[int, int, str]:
    """(failed, lost, what the caller saw) for the killed long task."""
    try:
        handle.result(wait)
    except (TimeoutError, multiprocessing.TimeoutError):
        return 0, 1, "the running call never returns"
    except Exception as exc:
        return 1, 0, f"the running call raised {type(exc).__name__}"
    return 0, 0, "the running call returned"


class ProcessPoolExecutorSubject(_PeerSubject):
    name = "ProcessPoolExecutor"

    def __init__(self) -> None:
        self.start_method = multiprocessing.get_context().get_start_method()

    def _make(self, workers: int, control: _Control, ctx: Any) -> _Executor:
        return _FuturesExecutor(
            concurrent.futures.ProcessPoolExecutor(
                max_workers=workers,
                mp_context=ctx,
                initializer=tasks.init_control,
                initargs=control.initargs(),
            )
        )


class MultiprocessingPoolSubject(_PeerSubject):
    name = "multiprocessing.Pool"
    recovers = True

    def __init__(self) -> None:
        self.start_method = multiprocessing.get_context().get_start_method()

    def _make(self, workers: int, control: _Control, ctx: Any) -> _Executor:
        pool = ctx.Pool(
            processes=workers, initializer=tasks.init_control, initargs=control.initargs()
        )
        return _MPPoolExecutor(pool)


class PebbleSubject(_PeerSubject):
    name = "pebble.ProcessPool"
    distribution = "pebble"
    recovers = True

    def __init__(self) -> None:
        self.start_method = multiprocessing.get_context().get_start_method()

    def check(self) -> None:
        _import("pebble")

    def _make(self, workers: int, control: _Control, ctx: Any) -> _Executor:
        pebble = _import("pebble")
        pool = pebble.ProcessPool(
            max_workers=workers,
            initializer=tasks.init_control,
            initargs=control.initargs(),
            context=ctx,
        )
        return _PebbleExecutor(pool)


class LokySubject(_PeerSubject):
    name = "loky"
    distribution = "loky"
    start_method = "loky (fork+exec)"

    def check(self) -> None:
        _import("loky")

    def _context(self, spawn: bool) -> Any:
        if spawn:
            raise NotSupported("= default (loky always execs)")
        return _import("loky.backend.context").get_context("loky")

    def _make(self, workers: int, control: _Control, ctx: Any) -> _Executor:
        loky = _import("loky")
        executor = loky.get_reusable_executor(
            max_workers=workers, initializer=tasks.init_control, initargs=control.initargs()
        )
        return _FuturesExecutor(executor, cancel_futures=False)


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Unavailable("not installed") from exc
