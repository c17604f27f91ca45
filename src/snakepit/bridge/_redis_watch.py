"""The Redis store's watches: one pub/sub subscription per watched session, shared by its watches.

Each message on a session's channel carries the session's incarnation and a
sequence number (see :mod:`snakepit.bridge._redis_wire`), so a watch skips the
messages of an earlier session with the same id and those its starting
snapshot already holds. A pub/sub connection that fails ends every watch with
the store's :class:`~snakepit.errors.SessionStoreUnavailableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from snakepit._tasks import TaskOwner
from snakepit.bridge import _redis_wire as wire
from snakepit.errors import SerializationError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    import redis.asyncio as aioredis

    from snakepit.bridge._watch import VariableWatch
    from snakepit.errors import SessionStoreUnavailableError

__all__ = ["Follower", "Subscriptions"]

_log = logging.getLogger("snakepit.bridge.redis")


@dataclass(eq=False)
class Follower:
    """One local watch of a session's channel, and what it has already seen.

    Messages that arrive before the watch's snapshot is read wait in ``pending``
    (None once it started).
    """

    watch: VariableWatch
    inc: str = ""
    seq: int = 0
    pending: list[tuple[str, int, str]] | None = field(default_factory=list)


@dataclass(eq=False)
class _Channel:
    ready: asyncio.Future[None]
    followers: set[Follower] = field(default_factory=set)


class Subscriptions:
    """A store's pub/sub connection and the watches following each channel.

    Args:
        name: the store's name, in task names and logs.
        connect: makes the Redis client for the pub/sub connection.
        call: runs one Redis round trip, its failures made the store's typed error.
        unavailable: the store's error for an operation that failed with an exception.
        timeout: seconds Redis may take to confirm a subscription.
    """

    def __init__(
        self,
        name: str,
        *,
        connect: Callable[[], aioredis.Redis],
        call: Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]],
        unavailable: Callable[[str, BaseException], SessionStoreUnavailableError],
        timeout: float,
    ) -> None:
        self.name = name
        self.closed = False
        self._connect = connect
        self._call = call
        self._unavailable = unavailable
        self._timeout = timeout
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._channels: dict[str, _Channel] = {}
        self._tasks = TaskOwner("store", name, _log)  # the reader and its chores
        self._closing = TaskOwner("store", name, _log)  # connections being closed: joined

    @property
    def watches(self) -> int:
        """How many watches follow a channel now."""
        return sum(len(entry.followers) for entry in self._channels.values())

    async def follow(self, channel: str, follower: Follower) -> None:
        """Subscribe to ``channel`` (once per store) and wait until Redis confirms it.

        Raises:
            SessionStoreUnavailableError: Redis cannot be reached or does not confirm.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            entry = self._channels.get(channel)
            if entry is None:
                entry = _Channel(ready=asyncio.get_running_loop().create_future())
                self._channels[channel] = entry
                try:
                    if self._pubsub is None:
                        self._client = self._connect()
                        self._pubsub = self._client.pubsub()
                    await self._call("watch", lambda: self._pubsub.subscribe(channel))
                except BaseException:
                    del self._channels[channel]
                    raise
                if self._reader is None:
                    self._reader = self._tasks.spawn(
                        self._read_messages(self._pubsub), "watch-reader"
                    )
            entry.followers.add(follower)
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(entry.ready)
        except TimeoutError as exc:
            raise self._unavailable("watch", exc) from exc

    def start(self, channel: str, follower: Follower, inc: str, seq: int) -> None:
        """The follower's snapshot was read at ``inc``/``seq``: deliver what waited since."""
        follower.inc, follower.seq = inc, seq
        pending, follower.pending = follower.pending or [], None
        for message in pending:
            self.deliver(channel, follower, *message)

    def unfollow(self, channel: str, follower: Follower | None) -> None:
        """Stop delivering to ``follower``; the last one leaving unsubscribes the channel."""
        entry = self._channels.get(channel)
        if entry is None or follower not in entry.followers:
            return
        entry.followers.discard(follower)
        if not entry.followers:
            del self._channels[channel]
            if not self.closed:
                self._tasks.spawn(self._unsubscribe(channel), "unsubscribe")

    async def _unsubscribe(self, channel: str) -> None:
        assert self._lock is not None
        async with self._lock:
            if channel not in self._channels and self._pubsub is not None:
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(channel)

    async def _read_messages(self, pubsub: Any) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                kind, channel = message["type"], message["channel"]
                entry = self._channels.get(channel)
                if kind == "subscribe":
                    if entry is not None and not entry.ready.done():
                        entry.ready.set_result(None)
                elif kind == "message" and entry is not None:
                    try:
                        inc, seq, body = message["data"].split("|", 2)
                        number = int(seq)
                    except ValueError:
                        _log.warning(
                            "store %s: ignored a malformed message on %s", self.name, channel
                        )
                        continue
                    for follower in list(entry.followers):
                        self.deliver(channel, follower, inc, number, body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = self._unavailable("watch", exc)
            _log.warning("store %s: watches ended: %s", self.name, error)
            self._reader = None  # this task ends here; the next watch starts a fresh reader
            self.end_all("session store unavailable", error)
            self._closing.spawn(self._drop(), "drop")  # detaches the connection now

    def deliver(self, channel: str, follower: Follower, inc: str, seq: int, body: str) -> None:
        """Hand ``follower`` one message of ``channel``: an update it has not seen, or the end."""
        if follower.pending is not None:
            follower.pending.append((inc, seq, body))
            return
        if inc and inc != follower.inc:
            return  # an earlier incarnation of the session id
        if body[:1] == "E":
            follower.watch.end(body[1:])
            self.unfollow(channel, follower)
        elif seq > follower.seq:
            try:
                event = wire.parse_update(follower.watch.session_id, body[1:])
            except (ValueError, LookupError, TypeError, SerializationError):
                _log.warning("store %s: ignored a malformed update on %s", self.name, channel)
                return
            follower.seq = seq
            follower.watch.offer(event)

    def end_all(self, reason: str, error: BaseException | None = None) -> None:
        """End every watch (with ``error`` raised to its reader once drained, if given)."""
        channels, self._channels = self._channels, {}
        for entry in channels.values():
            if not entry.ready.done():
                if error is None:
                    entry.ready.set_result(None)  # closing: the watch being made ends at once
                else:
                    entry.ready.set_exception(error)
                    entry.ready.exception()  # retrieved: the waiter may have gone
            for follower in entry.followers:
                follower.watch.end(reason, error)

    async def stop(self) -> None:
        """Stop the reader and the chores, and close the connection (the next watch reopens)."""
        self._reader = None
        await self._tasks.aclose()
        await self._closing.join()  # never cancelled: a cancelled close would leak them
        await self._drop()

    def _drop(self) -> Coroutine[Any, Any, None]:
        """Detach the pub/sub connection now (the next watch makes a new one); close it later."""
        pubsub, self._pubsub = self._pubsub, None
        client, self._client = self._client, None
        return _close(pubsub, client)


async def _close(pubsub: Any, client: aioredis.Redis | None) -> None:
    with contextlib.suppress(Exception):
        if pubsub is not None:
            await pubsub.aclose()
    with contextlib.suppress(Exception):
        if client is not None:
            await client.aclose()
