"""A tool's watch of its session's variables: one reading core, a blocking face and an async face.

Both faces read the same stream items and hand each to the core, which turns it
into an update, an end (the session was deleted or expired, the stream ended,
or the watch was closed) or the host's typed error; the faces only differ in
how they wait for the next item.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from snakepit._wire._errors import exception_from_info as error_from_wire
from snakepit.adapter._host_ops import check_watch_start, update_from_wire
from snakepit.errors import SnakepitError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from snakepit._proto.snakepit.v1 import host_pb2 as hpb
    from snakepit.adapter._host_link import AsyncWatchCall, WatchCall
    from snakepit.events import VariableUpdated

__all__ = ["AsyncHostWatch", "HostWatch"]


class _WatchCore:
    """What a watch has seen: whether it ended and why, and what each item means."""

    def __init__(self, call: WatchCall | AsyncWatchCall, session_id: str) -> None:
        self.session_id = session_id
        self.ended_reason: str | None = None
        self._call = call

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """A broken stream raises, unless it broke because this side closed the watch."""
        try:
            yield
        except SnakepitError:
            if self.ended_reason is None:
                raise

    def _take(self, item: hpb.WatchItem | None) -> VariableUpdated | None:
        """The update ``item`` carries, None once the watch ended (``item`` None: no more).

        Raises:
            SnakepitError: the host sent an error in the stream (rebuilt with its kind).
        """
        if item is None or item.HasField("ended"):
            if self.ended_reason is None:
                self.ended_reason = item.ended.reason if item is not None else "stream ended"
            return None
        if item.HasField("error"):
            self.ended_reason = "error"
            raise error_from_wire(item.error)
        return update_from_wire(item.update)

    def close(self) -> None:
        """Stop watching. Idempotent."""
        if self.ended_reason is None:
            self.ended_reason = "closed"
        self._call.cancel()


class HostWatch(_WatchCore):
    """A live watch of a session's variables, for sync tools: iterate it for updates.

    Yields :class:`~snakepit.events.VariableUpdated` in write order; the iteration
    ends when the session is deleted or expires (:attr:`ended_reason` says which)
    or after :meth:`close`. Use it as a context manager to close it.
    """

    _call: WatchCall

    def _started(self) -> None:
        check_watch_start(self._call.next_item(), self.session_id)

    def __iter__(self) -> HostWatch:
        return self

    def __next__(self) -> VariableUpdated:
        item = None
        if self.ended_reason is None:
            with self._reading():
                item = self._call.next_item()
        update = self._take(item)
        if update is None:
            raise StopIteration
        return update

    def __enter__(self) -> HostWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncHostWatch(_WatchCore):
    """A live watch of a session's variables, for async tools: ``async for`` it.

    Behaves as :class:`HostWatch`; use ``async with`` or :meth:`close` to stop it.
    """

    _call: AsyncWatchCall

    async def _started(self) -> None:
        check_watch_start(await self._call.read(), self.session_id)

    def __aiter__(self) -> AsyncHostWatch:
        return self

    async def __anext__(self) -> VariableUpdated:
        item = None
        if self.ended_reason is None:
            with self._reading():
                item = await self._call.read()
        update = self._take(item)
        if update is None:
            raise StopAsyncIteration
        return update

    async def __aenter__(self) -> AsyncHostWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
