"""``snakepit.Executor``: a ``concurrent.futures.Executor`` on snakepit's supervised workers.

It is a drop-in for ``ProcessPoolExecutor`` (``submit``, ``map`` with ``timeout`` and
``chunksize``, ``shutdown(wait, cancel_futures)``, the context manager, ``wait`` and
``as_completed``) that keeps the pool's guarantees where ``ProcessPoolExecutor``
breaks: a worker that dies fails only the future it ran (``WorkerCrashedError``) and
the executor stays usable; a per-task ``timeout`` kills and replaces a stuck worker
and fails that future with ``ExecutionTimeoutError``.

Functions run through the built-in adapter ``snakepit.adapter._functions:FunctionRunner``
on an async :class:`~snakepit.Pool` that lives on a private event loop thread; the
executor uses only the pool's public API, whatever its transport. The same machinery
serves ``await pool.submit(fn, ...)`` and ``pool.map(fn, ...)`` on an async pool made by
``Pool.for_functions(...)``.

Decisions (see docs/executor.md): a function's exception reaches the caller as itself
when it can be unpickled, with the remote traceback chained as ``__cause__`` (like
``ProcessPoolExecutor``); otherwise a ``ToolError`` carries its type, message and
traceback. An ``initializer`` that fails breaks the executor: pending futures and later
``submit`` calls raise ``BrokenExecutorError`` (a ``concurrent.futures.BrokenExecutor``).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import collections
import concurrent.futures
import contextlib
import functools
import itertools
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from snakepit.adapter._functions import (
    CALL_TOOL,
    ENV_INITIALIZER,
    FUNCTION_RUNNER,
    dumps_by_value,
    loads,
    process_chunk,
)
from snakepit.config import PoolConfig
from snakepit.errors import (
    BrokenExecutorError,
    PoolClosedError,
    SerializationError,
    SnakepitTimeoutError,
    ToolError,
    ToolNotFoundError,
    WorkerError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Iterator

    from snakepit.pool import Pool

__all__ = ["Executor", "RemoteTraceback", "callable_name", "encode_call", "run_function"]

P = ParamSpec("P")
T = TypeVar("T")

# The environment carries the pickled initializer; Linux caps one variable at 128 KiB.
_MAX_INITIALIZER_CHARS = 100_000
_executor_ids = itertools.count(1)
_live: weakref.WeakSet[Executor] = weakref.WeakSet()


class RemoteTraceback(Exception):
    """Raised never: the ``__cause__`` of a function's exception, holding the worker's traceback."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


def callable_name(fn: Any) -> str:
    inner = fn.func if isinstance(fn, functools.partial) else fn
    return str(getattr(inner, "__qualname__", None) or type(inner).__name__)


def encode_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """Pickle one call for the ``snakepit.call`` tool.

    Raises:
        SerializationError: the function or an argument cannot be pickled.
    """
    try:
        return dumps_by_value((fn, args, kwargs))
    except Exception as exc:
        raise SerializationError(
            f"cannot pickle the call of {callable_name(fn)}: {type(exc).__name__}: {exc}; pass "
            "picklable arguments (open files, locks and sockets cannot travel to a worker)",
            path="fn, args, kwargs",
            type_name=type(exc).__name__,
        ) from exc


def decode_outcome(data: bytes, what: str) -> Any:
    """The function's value, or raise its exception with the remote traceback as cause.

    Raises:
        BaseException: what the function raised (rebuilt), or ``ToolError`` when it
            cannot be rebuilt here; ``SerializationError`` when the value cannot be.
    """
    try:
        outcome = loads(data)
    except Exception as exc:
        raise SerializationError(
            f"cannot unpickle the result of {what}: {type(exc).__name__}: {exc} (is its class "
            "importable here?)",
            path=f"result of {what}",
            type_name="pickle",
        ) from exc
    if outcome[0] == "ok":
        return outcome[1]
    _, blob, remote_type, message, tb = outcome
    error: object = None
    if blob is not None:
        try:
            error = loads(blob)
        except Exception as problem:
            tb += f"\n(the exception could not be unpickled here: {type(problem).__name__}: {problem})"
    if isinstance(error, BaseException):
        raise error from RemoteTraceback(tb)
    raise ToolError(
        f"{what} raised {remote_type}: {message}",
        tool=CALL_TOOL,
        remote_type=remote_type,
        remote_traceback=tb,
    )


async def run_function(pool: Pool, blob: bytes, what: str) -> Any:
    """Run one encoded call on ``pool`` and return its value (or raise as the function did).

    Raises:
        ToolNotFoundError: the pool does not run functions (not made by ``for_functions``).
        BaseException: as :func:`decode_outcome`, and every ``Pool.execute`` error.
    """
    try:
        data = await pool.execute(CALL_TOOL, {"task": blob})
    except (WorkerError, SnakepitTimeoutError) as exc:
        exc.add_note(f"(the function was {what})")
        raise
    except ToolNotFoundError as exc:
        raise ToolNotFoundError(
            f"pool {pool.name!r} runs the adapter {pool.config.adapter}, which cannot run "
            "plain functions; create the pool with snakepit.Pool.for_functions(...) (or use "
            "snakepit.Executor)",
            tool=CALL_TOOL,
            available=exc.details.get("available", []),
        ) from None
    return decode_outcome(data, what)


def function_pool_options(
    initializer: Callable[..., object] | None, initargs: tuple[Any, ...], options: dict[str, Any]
) -> dict[str, Any]:
    """Pool options for a pool of function runners (the executor's defaults applied).

    Raises:
        TypeError: ``initializer`` is not callable.
        ValueError: the pickled initializer is too large for the environment.
        SerializationError: the initializer or its arguments cannot be pickled.
    """
    options = dict(options)
    options.setdefault("adapter", FUNCTION_RUNNER)
    # A plain function may legitimately run for hours, as in ProcessPoolExecutor: no
    # deadline unless the caller sets one.
    options.setdefault("timeout", None)
    if initializer is not None:
        if not callable(initializer):
            raise TypeError("initializer must be a callable")
        try:
            blob = base64.b64encode(dumps_by_value((initializer, tuple(initargs)))).decode()
        except Exception as exc:
            raise SerializationError(
                f"cannot pickle the initializer {callable_name(initializer)} with its initargs: "
                f"{type(exc).__name__}: {exc}",
                path="initializer",
                type_name=type(exc).__name__,
            ) from exc
        if len(blob) > _MAX_INITIALIZER_CHARS:
            raise ValueError(
                f"the pickled initializer and initargs take {len(blob)} characters; at most "
                f"{_MAX_INITIALIZER_CHARS} fit in a worker's environment: pass small initargs "
                "(a path, not the data) and load the rest in the initializer"
            )
        options["env"] = {**(options.get("env") or {}), ENV_INITIALIZER: blob}
    return options


async def map_functions(
    pool: Pool,
    fn: Callable[..., Any],
    iterables: tuple[Iterable[Any], ...],
    *,
    timeout: float | None,
    chunksize: int,
) -> AsyncIterator[Any]:
    """``Pool.map``: results in order, at most a few calls per worker under way at once.

    Raises:
        ValueError: ``chunksize`` < 1.
        TimeoutError: the results were not all there ``timeout`` seconds after the call.
        BaseException: the first failing call's error, as ``Pool.submit``.
    """
    if chunksize < 1:
        raise ValueError("chunksize must be >= 1.")
    deadline = None if timeout is None else time.monotonic() + timeout
    window = 2 * pool.config.size * pool.config.max_concurrency
    chunks = _batched(zip(*iterables, strict=False), chunksize)
    what = callable_name(fn)
    pending: collections.deque[asyncio.Task[Any]] = collections.deque()

    def launch() -> bool:
        chunk = next(chunks, None)
        if chunk is None:
            return False
        blob = encode_call(process_chunk, (fn, chunk), {})
        pending.append(asyncio.ensure_future(run_function(pool, blob, what)))
        return True

    try:
        while len(pending) < window and launch():
            pass
        while pending:
            remaining = None if deadline is None else deadline - time.monotonic()
            async with asyncio.timeout(remaining):
                values = await asyncio.shield(pending[0])
            pending.popleft()
            launch()
            for value in values:
                yield value
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def _batched(iterable: Iterable[Any], n: int) -> Iterator[tuple[Any, ...]]:
    it = iter(iterable)
    while batch := tuple(itertools.islice(it, n)):
        yield batch


def _chain_results(chunks: Iterator[list[Any]]) -> Iterator[Any]:
    """Flatten the chunks' result lists, dropping each value once handed out."""
    for chunk in chunks:
        chunk.reverse()
        while chunk:
            yield chunk.pop()


@dataclass(eq=False)
class _WorkItem:
    future: concurrent.futures.Future[Any]
    blob: bytes
    what: str


class Executor(concurrent.futures.Executor):
    """A ``concurrent.futures.Executor`` whose tasks run on a supervised snakepit pool.

    Replace ``ProcessPoolExecutor`` with it and the results are the same::

        with snakepit.Executor(max_workers=4) as ex:
            list(ex.map(pow, range(5), range(5)))     # [1, 1, 4, 27, 256]
            ex.submit(len, "abc").result()            # 3

    Functions are pickled (module-level functions by reference, lambdas and closures by
    value with cloudpickle) and run on threads of the worker processes.

    Args:
        max_workers: worker processes (default: the CPU count); must be > 0.
        initializer: called as ``initializer(*initargs)`` once in every worker process,
            replacements included; if it raises, the executor is broken.
        initargs: its arguments.
        max_tasks_per_child: replace a worker after this many tasks (``max_requests``).
        **pool_options: :class:`~snakepit.PoolConfig` options; ``timeout`` (default None)
            bounds each task: past it the worker is killed and replaced and the future
            fails with ``ExecutionTimeoutError``.

    Raises:
        ValueError: ``max_workers`` <= 0 or an invalid pool option.
        TypeError: ``initializer`` is not callable.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_child: int | None = None,
        **pool_options: Any,
    ) -> None:
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        elif not isinstance(max_workers, int) or isinstance(max_workers, bool):
            raise TypeError(f"max_workers must be an int, got {type(max_workers).__name__}")
        elif max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if max_tasks_per_child is not None:
            pool_options["max_requests"] = max_tasks_per_child
        pool_options.setdefault("name", f"executor{next(_executor_ids)}")
        options = function_pool_options(
            initializer, initargs, {**pool_options, "size": max_workers}
        )
        self._config = PoolConfig.from_options(None, options)
        self._max_workers = max_workers
        self._capacity = max_workers * self._config.max_concurrency
        self._lock = threading.Lock()
        self._pending: collections.deque[_WorkItem] = collections.deque()
        self._shutdown = False
        self._broken: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._wake: asyncio.Event | None = None
        self._pool: Pool | None = None

    # -- the concurrent.futures API -----------------------------------------------------------

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        """Schedule ``fn(*args, **kwargs)``; returns its future.

        A call that cannot be pickled fails its future with ``SerializationError``.

        Raises:
            RuntimeError: the executor was shut down.
            BrokenExecutorError: the initializer failed; the executor cannot run tasks.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            blob = encode_call(fn, args, kwargs)
        except SerializationError as exc:
            blob = b""
            error: SerializationError | None = exc
        else:
            error = None
        with self._lock:
            if self._broken is not None:
                raise self._broken_error()
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if error is not None:
                future.set_exception(error)
                return future
            self._pending.append(_WorkItem(future, blob, callable_name(fn)))
            if self._thread is None:
                self._start()
            else:
                self._poke()
        return future

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[T]:
        """``map(fn, *iterables)`` run on the workers, results in order.

        Every call is submitted at once; with ``chunksize`` > 1 each task carries that
        many calls. Iterating raises the first failing call's exception at its place.

        Raises:
            ValueError: ``chunksize`` < 1.
            TimeoutError: (on iteration) a result is not there ``timeout`` seconds after
                the call to ``map``.
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        chunks = super().map(
            functools.partial(process_chunk, fn),
            _batched(zip(*iterables, strict=False), chunksize),
            timeout=timeout,
        )
        return _chain_results(chunks)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks; with ``wait``, return when every task ended and the workers are gone.

        Args:
            wait: block until running and pending tasks are done and the pool is closed.
            cancel_futures: cancel the tasks that have not started.
        """
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while self._pending:
                    self._pending.popleft().future.cancel()
            self._poke()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    # -- observation --------------------------------------------------------------------------

    @property
    def pool(self) -> Pool | None:
        """The async pool that runs the tasks (None before the first submit); it lives on the
        executor's own loop thread, so read ``stats()``/``workers()`` from it, nothing else."""
        return self._pool

    def __repr__(self) -> str:
        state = "broken" if self._broken else "shut down" if self._shutdown else "running"
        return f"<snakepit.Executor {self._config.name} max_workers={self._max_workers} {state}>"

    # -- the loop thread ----------------------------------------------------------------------

    def _broken_error(self) -> BrokenExecutorError:
        assert self._broken is not None
        error = BrokenExecutorError(
            f"executor {self._config.name!r} is broken: its workers could not start "
            f"({str(self._broken).splitlines()[0]}); fix the initializer or the options, and "
            "create a new Executor",
            pool=self._config.name,
        )
        error.__cause__ = self._broken
        return error

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._wake = asyncio.Event()
        self._thread = threading.Thread(
            target=self._run_loop, args=(loop,), name=f"snakepit-{self._config.name}", daemon=True
        )
        self._thread.start()
        _live.add(self)

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(wake.set)

    def _run_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    async def _main(self) -> None:
        from snakepit.pool import Pool

        pool = Pool(self._config)
        try:
            await pool.start()
        except Exception as exc:
            self._break(exc)
            return
        self._pool = pool
        slots = asyncio.Semaphore(self._capacity)
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                await slots.acquire()
                item = await self._next_item()
                if item is None:
                    slots.release()
                    break
                # Not before now: until a slot is free the future stays pending and can be
                # cancelled, as ProcessPoolExecutor's queued work items can.
                if not item.future.set_running_or_notify_cancel():
                    slots.release()
                    continue
                task = asyncio.ensure_future(self._run(pool, item))
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(lambda _: slots.release())
            if running:
                await asyncio.wait(running)
        finally:
            await pool.close()

    async def _next_item(self) -> _WorkItem | None:
        assert self._wake is not None
        while True:
            with self._lock:
                if self._pending:
                    return self._pending.popleft()
                if self._shutdown:
                    return None
                self._wake.clear()
            await self._wake.wait()

    async def _run(self, pool: Pool, item: _WorkItem) -> None:
        try:
            value = await run_function(pool, item.blob, item.what)
        except asyncio.CancelledError:
            item.future.set_exception(
                PoolClosedError(f"executor {self._config.name!r} stopped during {item.what}")
            )
            raise
        except BaseException as exc:
            item.future.set_exception(exc)
        else:
            item.future.set_result(value)
        finally:
            del item

    def _break(self, exc: BaseException) -> None:
        with self._lock:
            self._broken = exc
            pending = list(self._pending)
            self._pending.clear()
            error = self._broken_error
        for item in pending:
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(error())


@atexit.register
def _shutdown_all() -> None:
    # Interpreter exit waits for the tasks already submitted, as ProcessPoolExecutor does.
    for executor in list(_live):
        executor.shutdown(wait=True)
