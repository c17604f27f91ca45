"""A watch: the stream of one session's variable updates, as an async iterator."""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from snakepit.events import VariableUpdated

__all__ = ["VariableWatch"]


class VariableWatch:
    """The :class:`~snakepit.events.VariableUpdated` events of one session, in write order.

    Returned by ``SessionStore.watch``. Iterate it with ``async for``; the
    iteration ends (``StopAsyncIteration``) once the buffered updates are
    consumed after the session is deleted or expires or the store closes;
    :attr:`ended_reason` says which. :meth:`close` (or leaving ``async with``)
    stops it at once and drops what is buffered. A watch that ends because
    the store failed (a Redis that went away) raises that error, a
    :class:`~snakepit.errors.SessionStoreUnavailableError`, once its buffer is
    drained, instead of ending quietly: updates may have been missed.

    The buffer is bounded (``maxsize``): when a consumer falls behind, the
    oldest update is dropped and counted in :attr:`dropped`; the gap also shows
    in the ``version`` numbers.

    Only the store's event loop may use a watch (the store is single-loop).
    """

    def __init__(
        self,
        session_id: str,
        names: frozenset[str] | None,
        *,
        maxsize: int,
        on_close: Callable[[VariableWatch], None] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"watch maxsize must be >= 1, got {maxsize!r}")
        self.session_id = session_id
        self.names = names
        self.dropped = 0
        self.ended_reason: str | None = None
        self.error: BaseException | None = None
        self._buffer: collections.deque[VariableUpdated] = collections.deque(maxlen=maxsize)
        self._waiter: asyncio.Future[None] | None = None
        self._on_close = on_close

    @property
    def ended(self) -> bool:
        """True once no more updates will arrive (buffered ones may still be read)."""
        return self.ended_reason is not None

    def wants(self, name: str) -> bool:
        """True when this watch follows the variable called ``name``."""
        return self.names is None or name in self.names

    def offer(self, event: VariableUpdated) -> None:
        """Buffer ``event`` for the consumer (the store calls this on every write)."""
        if self.ended or not self.wants(event.name):
            return
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(event)
        self._wake()

    def end(self, reason: str, error: BaseException | None = None) -> None:
        """No more updates: iteration stops after the buffer is drained (the store calls this).

        Args:
            reason: why, kept in :attr:`ended_reason`.
            error: raised by the consumer's next read once the buffer is drained, if given.
        """
        if self.ended_reason is None:
            self.ended_reason = reason
            self.error = error
        self._on_close = None
        self._wake()

    def close(self) -> None:
        """Stop watching now; buffered updates are dropped. Idempotent."""
        on_close, self._on_close = self._on_close, None
        self._buffer.clear()
        self.end("closed")
        if on_close is not None:
            on_close(self)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> VariableUpdated | None:
        """The next buffered update, or None when there is none right now."""
        return self._buffer.popleft() if self._buffer else None

    async def get(self) -> VariableUpdated:
        """Wait for the next update.

        Raises:
            StopAsyncIteration: the watch ended and its buffer is drained.
            SessionStoreUnavailableError: the store failed; updates may have been missed.
        """
        while not self._buffer:
            if self.ended:
                if self.error is not None:
                    raise self.error
                raise StopAsyncIteration
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            await waiter
        return self._buffer.popleft()

    def __aiter__(self) -> VariableWatch:
        return self

    async def __anext__(self) -> VariableUpdated:
        return await self.get()

    async def __aenter__(self) -> VariableWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"ended: {self.ended_reason}" if self.ended else "live"
        return (
            f"<VariableWatch session={self.session_id!r} {state} "
            f"buffered={len(self._buffer)} dropped={self.dropped}>"
        )
