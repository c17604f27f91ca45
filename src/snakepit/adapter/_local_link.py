"""The local worker's end of the channel, and its own calls to the host on that channel.

:class:`Conn` sends frames from any thread, one whole frame at a time.
:class:`LocalLink` is the ``HostLink`` of :mod:`snakepit.adapter._host_client`
over that same connection: a worker's call to the host is a ``HOST_CALL``
frame, answered by ``HOST_REPLY`` frames that the reader hands to
:meth:`LocalLink.deliver`.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import queue
import socket
import threading
from typing import TYPE_CHECKING, Any

from snakepit._proto.snakepit.v1 import host_pb2 as hpb
from snakepit._wire._framing import HOST_METHODS, Attachment, Flag, Kind, pack, pack_attached
from snakepit.errors import SnakepitError

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Sequence

__all__ = ["Conn", "LocalLink", "closing_ok", "set_result"]

_SERVICE = hpb.DESCRIPTOR.services_by_name["HostService"]
_RESPONSES: dict[str, Any] = {
    name: getattr(hpb, _SERVICE.methods_by_name[name].output_type.name) for name in HOST_METHODS
}


class Conn:
    """The worker's end of the channel; any thread may send, one frame at a time."""

    def __init__(self, sock: socket.socket, limit: int) -> None:
        self.sock = sock
        self.limit = limit
        self._lock = threading.Lock()
        self.closed = False

    def send(self, frame: bytes, fds: Sequence[int] = ()) -> None:
        try:
            with self._lock:
                if fds:
                    # The descriptors travel with the frame's first byte.
                    sent = socket.send_fds(self.sock, [frame], list(fds))
                    if sent < len(frame):
                        self.sock.sendall(memoryview(frame)[sent:])
                else:
                    self.sock.sendall(frame)
        except OSError:
            self.closed = True  # the host is gone; the reader sees EOF and the worker exits
        finally:
            for fd in fds:
                os.close(fd)

    def send_message(
        self,
        kind: int,
        call_id: int,
        message: Any,
        attachments: list[Attachment] | None = None,
        flags: int = 0,
    ) -> None:
        body = message.SerializeToString()
        if attachments:
            frame, fds = pack_attached(kind, call_id, body, attachments, flags)
            self.send(frame, fds)
        else:
            self.send(pack(kind, call_id, body, flags))


def set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


class closing_ok:
    """Ignore the RuntimeError of a loop that closed under us (the worker is going away)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, tb: object) -> bool:
        return isinstance(exc, RuntimeError)


class LocalLink:
    """``HostLink`` over the worker's own connection."""

    address = "local"

    def __init__(self, conn: Conn) -> None:
        self._conn = conn
        self._ids = itertools.count(1)
        self._waiters: dict[int, Callable[[int, bytes | None], None]] = {}
        self._lock = threading.Lock()
        self._gone = False

    def start(self, method: str, request: Any, land: Callable[[int, bytes | None], None]) -> int:
        """Send a host call whose replies go to ``land(flags, body)`` on the reader thread
        (``body`` None: the connection is gone); the call's id.

        Raises:
            SnakepitError: the connection is closed.
        """
        call_id = next(self._ids)
        with self._lock:
            if self._gone:
                raise self._unreachable(method, "the connection is closed")
            self._waiters[call_id] = land
        index = HOST_METHODS.index(method)
        self._conn.send(pack(Kind.HOST_CALL + index, call_id, request.SerializeToString()))
        return call_id

    def _forget(self, call_id: int) -> None:
        with self._lock:
            self._waiters.pop(call_id, None)

    def _unreachable(self, method: str, reason: str) -> SnakepitError:
        return SnakepitError(
            f"cannot reach the snakepit host for {method} ({reason}); the pool may be closing",
            address=self.address,
        )

    def _timed_out(self, method: str, call_id: int, timeout: float | None) -> SnakepitError:
        self._forget(call_id)
        return self._unreachable(method, f"DEADLINE_EXCEEDED after {timeout}s")

    def deliver(self, call_id: int, flags: int, body: bytes) -> None:
        """A HOST_REPLY arrived (reader thread)."""
        with self._lock:
            land = self._waiters.get(call_id)
            if land is not None and flags & Flag.END:
                del self._waiters[call_id]
        if land is not None:
            land(flags, body)

    def lost(self) -> None:
        """The connection is gone: every waiting call fails (reader thread)."""
        with self._lock:
            self._gone = True
            waiters, self._waiters = self._waiters, {}
        for land in waiters.values():
            land(Flag.END, None)

    def _parse(self, method: str, body: bytes | None) -> Any:
        if body is None:
            raise self._unreachable(method, "the connection closed")
        return _RESPONSES[method].FromString(body)

    def call(self, method: str, request: Any, timeout: float | None) -> Any:
        done: concurrent.futures.Future[bytes | None] = concurrent.futures.Future()
        call_id = self.start(method, request, lambda _f, body: done.set_result(body))
        try:
            body = done.result(timeout)
        except TimeoutError:
            raise self._timed_out(method, call_id, timeout) from None
        return self._parse(method, body)

    async def acall(self, method: str, request: Any, timeout: float | None) -> Any:
        import asyncio  # lazily: a worker without async tools never loads it

        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes | None] = loop.create_future()

        def land(_flags: int, body: bytes | None) -> None:
            loop.call_soon_threadsafe(set_result, done, body)

        call_id = self.start(method, request, land)
        try:
            async with asyncio.timeout(timeout):
                body = await done
        except TimeoutError:
            raise self._timed_out(method, call_id, timeout) from None
        except BaseException:
            self._forget(call_id)
            raise
        return self._parse(method, body)

    def watch(self, request: hpb.WatchRequest) -> _Watch:
        return _Watch(self, request)

    def awatch(self, request: hpb.WatchRequest) -> _AsyncWatch:
        return _AsyncWatch(self, request)

    def cancel(self, call_id: int) -> None:
        self._forget(call_id)
        self._conn.send(pack(Kind.HOST_CANCEL, call_id, b""))

    def close(self) -> None:
        pass


_END = object()


class _WatchCore:
    """One watch's items as they land on the reader thread, for a reader of either kind.

    A subclass says how an item is queued from the reader thread (``_push``) and from
    the side that reads (``_push_here``); both kinds read through :meth:`_item`.
    """

    def __init__(self, link: LocalLink, request: hpb.WatchRequest) -> None:
        self._link = link
        self._done = False
        self._call_id = link.start("WatchVariables", request, self._land)

    def _push(self, item: Any) -> None:
        raise NotImplementedError

    def _push_here(self, item: Any) -> None:
        raise NotImplementedError

    def _land(self, flags: int, body: bytes | None) -> None:
        self._push(body if body is not None else _END)
        if flags & Flag.END and body is not None:
            self._push(_END)

    def _item(self, body: Any) -> hpb.WatchItem | None:
        if body is _END:
            self._done = True
            return None
        return hpb.WatchItem.FromString(body)

    def cancel(self) -> None:
        if not self._done:
            self._link.cancel(self._call_id)
        self._push_here(_END)


class _Watch(_WatchCore):
    """A watch read by a synchronous tool (blocking)."""

    def __init__(self, link: LocalLink, request: hpb.WatchRequest) -> None:
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._push = self._push_here = self._items.put  # type: ignore[method-assign]
        super().__init__(link, request)

    def next_item(self) -> hpb.WatchItem | None:
        return None if self._done else self._item(self._items.get())


class _AsyncWatch(_WatchCore):
    """A watch read by an ``async`` tool, on the worker's event loop."""

    def __init__(self, link: LocalLink, request: hpb.WatchRequest) -> None:
        import asyncio  # lazily: a worker without async tools never loads it

        self._loop = asyncio.get_running_loop()
        self._items: asyncio.Queue[Any] = asyncio.Queue()
        self._push_here = self._items.put_nowait  # type: ignore[method-assign]
        super().__init__(link, request)

    def _push(self, item: Any) -> None:
        with closing_ok():
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)

    async def read(self) -> hpb.WatchItem | None:
        return None if self._done else self._item(await self._items.get())
