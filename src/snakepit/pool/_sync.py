"""``SyncPool``: the Pool for scripts, threads and notebooks.

It runs a :class:`Pool` on a private event loop in a daemon thread, so it
works from plain threads and also where an event loop already runs in the
calling thread (Jupyter). Streams come back as plain iterators.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from snakepit.errors import PoolClosedError
from snakepit.pool._arguments import DEFAULT
from snakepit.pool._pool import Pool
from snakepit.pool._sync_session import SyncSession, SyncSessions

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine, Iterator

    from snakepit.config import PoolConfig
    from snakepit.pool._types import PoolStats, WorkerInfo

__all__ = ["SyncPool"]

log = logging.getLogger("snakepit.pool")

T = TypeVar("T")
_State = Literal["new", "starting", "running", "closing", "closed"]
# How long the loop thread waits, once the pool is closed, for calls still pending to
# end after they were cancelled (they are the pool's own coroutines and end at once).
_LEFTOVER_GRACE = 5.0


class _Call:
    """One coroutine submitted from a thread: its future, and its task once on the loop."""

    __slots__ = ("coro", "future", "task")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro: Coroutine[Any, Any, Any] | None = coro
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.task: asyncio.Task[Any] | None = None


class SyncPool:
    """A blocking facade over :class:`Pool` with the same options and errors.

    Every method may be called from any thread, at any moment: a call that races
    ``start()`` or ``close()`` ends in its result or in ``PoolClosedError``, never in a
    hang. Calls submitted before ``close()`` run (and finish or fail typed as the pool
    closes); calls made from the moment ``close()`` begins fail with ``PoolClosedError``.

    Example::

        with snakepit.SyncPool(adapter="snakepit.examples.showcase:Showcase", size=2) as pool:
            pool.execute("ping")
            for chunk in pool.stream("count", {"n": 3}): ...
    """

    def __init__(self, config: PoolConfig | None = None, /, **options: Any) -> None:
        self._pool = Pool(config, **options)
        # Guards the state, the loop's lifetime and the set of calls: a call is submitted
        # to the loop only while the state allows it, and the loop closes only once the
        # state says so, so no call can land on a loop that will never run it.
        self._lock = threading.Lock()
        self._state: _State = "new"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._calls: set[_Call] = set()
        self._start_call: _Call | None = None
        self._close_call: _Call | None = None
        self._started = threading.Event()  # start() has finished, either way
        self._stopped = threading.Event()  # the loop thread is gone

    @property
    def pool(self) -> Pool:
        """The underlying async pool (use it only from the pool's own loop)."""
        return self._pool

    @property
    def name(self) -> str:
        return self._pool.name

    @property
    def events(self) -> Any:
        return self._pool.events

    # -- calls from threads ------------------------------------------------------------------

    def _refusal(self) -> PoolClosedError:
        if self._state in ("new", "starting"):
            return PoolClosedError(
                f"SyncPool {self.name!r} is not started; use 'with SyncPool(...)' or .start()",
                pool=self.name,
            )
        return PoolClosedError(
            f"SyncPool {self.name!r} is {self._state}; create a new SyncPool to run more calls",
            pool=self.name,
        )

    def _submit(self, coro: Coroutine[Any, Any, Any], allowed: tuple[_State, ...]) -> _Call:
        """Hand ``coro`` to the loop if the state allows it (the caller holds the lock)."""
        if self._state not in allowed or self._loop is None:
            coro.close()
            raise self._refusal()
        call = _Call(coro)
        self._calls.add(call)
        self._loop.call_soon_threadsafe(self._launch, call)
        return call

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._thread is not None and threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("SyncPool methods cannot be called from the pool's own loop thread")
        with self._lock:
            call = self._submit(coro, ("running",))
        try:
            result: T = call.future.result()
        except BaseException:
            if not call.future.done():
                # Ctrl-C in the calling thread: cancel the call in the pool too, so an
                # abandoned call does not keep holding a worker.
                self._abandon(call)
            raise
        return result

    def _launch(self, call: _Call) -> None:
        """On the loop: start the call's task; its end settles the caller's future."""
        coro, call.coro = call.coro, None
        assert coro is not None and self._loop is not None
        call.task = self._loop.create_task(coro)
        call.task.add_done_callback(functools.partial(self._settle, call))

    def _settle(self, call: _Call, task: asyncio.Task[Any]) -> None:
        with self._lock:
            self._calls.discard(call)
            closing = self._state in ("closing", "closed")
        future = call.future
        if future.done():
            return
        if task.cancelled():
            if closing:
                future.set_exception(self._closed_during_call())
            else:  # its caller abandoned it; nobody reads this
                future.cancel()
            return
        exc = task.exception()
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(task.result())

    def _closed_during_call(self) -> PoolClosedError:
        return PoolClosedError(
            f"SyncPool {self.name!r} was closed while the call was under way; create a new "
            "SyncPool to run more calls",
            pool=self.name,
        )

    def _abandon(self, call: _Call) -> None:
        with self._lock:
            if self._loop is not None and self._state != "closed":
                self._loop.call_soon_threadsafe(self._cancel_task, call)

    @staticmethod
    def _cancel_task(call: _Call) -> None:
        if call.task is not None:
            call.task.cancel()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SyncPool:
        """Start the loop thread and the workers; returns self.

        Safe to call from several threads: the first starts the pool, the others wait
        for it. A ``close()`` from another thread while the pool starts stops the start.

        Raises:
            WorkerStartupError: a worker failed to start (the pool is cleaned up).
            PoolClosedError: the pool was closed (before or while it started).
        """
        with self._lock:
            first = self._state == "new"
            if first:
                self._state = "starting"
                loop = asyncio.new_event_loop()
                self._loop = loop
                self._thread = threading.Thread(
                    target=self._serve, args=(loop,), name=f"snakepit-{self.name}", daemon=True
                )
                self._thread.start()
                self._start_call = self._submit(self._pool.start(), ("starting",))
        if not first:
            self._started.wait()
            with self._lock:
                if self._state == "running":
                    return self
                raise self._refusal()
        assert self._start_call is not None
        try:
            self._start_call.future.result()
        except BaseException as exc:
            self._started.set()
            self._begin_close()
            self._stopped.wait()
            if isinstance(exc, asyncio.CancelledError | concurrent.futures.CancelledError):
                raise self._refusal() from None
            raise
        with self._lock:
            running = self._state == "starting"
            if running:
                self._state = "running"
        self._started.set()
        if not running:  # close() won the race after the workers were up
            self._stopped.wait()
            raise self._refusal()
        return self

    def close(self) -> None:
        """Stop the workers and the loop thread (idempotent, from any thread).

        Calls still under way end typed (their own error, or ``PoolClosedError``); a
        second ``close()`` waits until the first is done.

        Raises:
            RuntimeError: called from the pool's own loop thread (it would wait for itself).
        """
        if self._thread is not None and threading.current_thread() is self._thread:
            raise RuntimeError("SyncPool.close() cannot be called from the pool's own loop thread")
        call = self._begin_close()
        self._stopped.wait()
        if call is not None and not call.future.cancelled():
            exc = call.future.exception()
            if exc is not None:
                raise exc

    def _begin_close(self) -> _Call | None:
        """Move to "closing" and hand the shutdown to the loop; None if another did."""
        with self._lock:
            if self._state == "new":
                self._state = "closed"
                self._started.set()
                self._stopped.set()
                return None
            if self._state in ("closing", "closed"):
                return None
            self._state = "closing"
            self._close_call = self._submit(self._shutdown(), ("closing",))
            return self._close_call

    async def _shutdown(self) -> None:
        """On the loop: stop a start under way, close the pool, then stop the loop."""
        try:
            start = self._start_call
            if start is not None and start.task is not None and not start.task.done():
                start.task.cancel()
                await asyncio.wait([start.task])
            await self._pool.close()
        finally:
            asyncio.get_running_loop().stop()

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop thread: run until the shutdown stops the loop, then end every call."""
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                _cancel_leftovers(loop)
            finally:
                with self._lock:
                    self._state = "closed"
                    leftovers = list(self._calls)
                    self._calls.clear()
                loop.close()
                for call in leftovers:  # none unless the loop stopped abnormally
                    if call.coro is not None:
                        call.coro.close()
                    if not call.future.done():
                        call.future.set_exception(self._closed_during_call())
                self._started.set()
                self._stopped.set()

    def __enter__(self) -> SyncPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(
        self,
        tool: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = DEFAULT,
        session_id: str | None = None,
    ) -> Any:
        """Blocking ``Pool.execute`` (same arguments and errors)."""
        return self._run(self._pool.execute(tool, args, timeout=timeout, session_id=session_id))

    def stream(
        self,
        tool: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = DEFAULT,
        session_id: str | None = None,
    ) -> Iterator[Any]:
        """Blocking ``Pool.stream``: a plain iterator of the chunks."""
        return self._iterate(self._pool.stream(tool, args, timeout=timeout, session_id=session_id))

    def _iterate(self, agen: AsyncIterator[Any]) -> Iterator[Any]:
        """A plain iterator over an async iterator that lives on the pool's loop."""

        async def next_chunk() -> tuple[bool, Any]:
            try:
                return True, await agen.__anext__()
            except StopAsyncIteration:
                return False, None

        try:
            while True:
                more, chunk = self._run(next_chunk())
                if not more:
                    return
                yield chunk
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                # A closing pool ends the stream itself (its calls are cancelled, then its
                # async generators closed).
                with contextlib.suppress(PoolClosedError):
                    self._run(aclose())

    def session(self, session_id: str | None = None) -> SyncSession:
        """``Pool.session`` for threads: ``execute``, ``stream`` (a plain iterator),
        ``variables.get/set/...``, ``initialize``, ``info`` and ``delete`` all block.

        Raises:
            ValueError: ``session_id`` is malformed.
        """
        return SyncSession(self._pool.session(session_id), self)

    @property
    def sessions(self) -> SyncSessions:
        """``Pool.sessions`` for threads: ``list()``, ``get(id)``, ``delete(id)`` block."""
        return SyncSessions(self._pool.sessions, self)

    def register_host_tool(
        self, name: str, fn: Callable[..., Any], *, description: str | None = None
    ) -> None:
        """``Pool.register_host_tool`` (see there); safe to call from any thread."""

        async def register() -> None:
            self._pool.register_host_tool(name, fn, description=description)

        self._run(register())

    def stats(self) -> PoolStats:
        return self._pool.stats()

    def workers(self) -> list[WorkerInfo]:
        return self._pool.workers()

    def __repr__(self) -> str:
        return repr(self._pool).replace("<Pool", "<SyncPool", 1)


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still on a stopped loop, let them end (bounded), close async generators."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        _, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=_LEFTOVER_GRACE))
        if pending:
            log.error(
                "SyncPool: %d task(s) did not end after cancellation: %s", len(pending), pending
            )
    loop.run_until_complete(loop.shutdown_asyncgens())
