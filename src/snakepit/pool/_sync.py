"""``SyncPool``: the Pool for scripts, threads and notebooks.

It runs a :class:`Pool` on a private event loop in a daemon thread, so it
works from plain threads and also where an event loop already runs in the
calling thread (Jupyter). Streams come back as plain iterators.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from snakepit.errors import PoolClosedError
from snakepit.pool._pool import DEFAULT, Pool
from snakepit.pool._sync_session import SyncSession, SyncSessions

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine, Iterator

    from snakepit.config import PoolConfig
    from snakepit.pool._types import PoolStats, WorkerInfo

__all__ = ["SyncPool"]

T = TypeVar("T")


class SyncPool:
    """A blocking facade over :class:`Pool` with the same options and errors.

    Example::

        with snakepit.SyncPool(adapter="snakepit.examples.showcase:Showcase", size=2) as pool:
            pool.execute("ping")
            for chunk in pool.stream("count", {"n": 3}): ...
    """

    def __init__(self, config: PoolConfig | None = None, /, **options: Any) -> None:
        self._pool = Pool(config, **options)
        # The loop and its thread exist only between start() and close().
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = False
        self._lock = threading.Lock()

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

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if not self._started or self._loop is None or self._loop.is_closed():
            coro.close()
            raise PoolClosedError(
                f"SyncPool {self.name!r} is not started; use 'with SyncPool(...)' or .start()",
                pool=self.name,
            )
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("SyncPool methods cannot be called from the pool's own loop thread")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except BaseException:
            # Ctrl-C (or a timeout) in the calling thread: cancel the call in the pool too,
            # so an abandoned call does not keep holding a worker.
            future.cancel()
            raise

    def start(self) -> SyncPool:
        """Start the loop thread and the workers; returns self.

        Raises:
            WorkerStartupError: a worker failed to start (the pool is cleaned up).
            PoolClosedError: the SyncPool was closed.
        """
        with self._lock:
            if self._started:
                if self._loop is None or self._loop.is_closed():
                    raise PoolClosedError(
                        f"SyncPool {self.name!r} was closed; create a new SyncPool",
                        pool=self.name,
                    )
                return self
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name=f"snakepit-{self._pool.name}", daemon=True
            )
            self._thread.start()
            self._started = True
        try:
            self._run(self._pool.start())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def close(self) -> None:
        """Stop the workers and the loop thread (idempotent)."""
        with self._lock:
            if not self._started or self._loop is None or self._loop.is_closed():
                return
        try:
            self._run(self._pool.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
        if not loop.is_closed():
            loop.close()

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
            if aclose is not None and self._loop is not None and not self._loop.is_closed():
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
