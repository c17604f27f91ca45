"""The worker's watch faces over a scripted stream: no host, no processes.

Both faces (blocking and async) read the same items through one core, so each
case runs against both and must end the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from snakepit._proto.snakepit.v1 import host_pb2 as hpb
from snakepit._wire import error_info, to_payload
from snakepit.adapter._host_watch import AsyncHostWatch, HostWatch
from snakepit.errors import SessionNotFoundError, SnakepitError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from snakepit.events import VariableUpdated

    # A scripted item: what the stream yields (None: it ended), raises, or does on that read.
    Item = hpb.WatchItem | None | BaseException | Callable[[], BaseException]


class _Stream:
    """A watch call that hands out scripted items (None: the stream ended)."""

    def __init__(self, items: Iterable[Item]) -> None:
        self.items = list(items)
        self.cancelled = 0

    def next_item(self) -> hpb.WatchItem | None:
        item = self.items.pop(0) if self.items else None
        if callable(item):
            item = item()
        if isinstance(item, BaseException):
            raise item
        return item

    async def read(self) -> hpb.WatchItem | None:
        return self.next_item()

    def cancel(self) -> None:
        self.cancelled += 1


def _live() -> hpb.WatchItem:
    return hpb.WatchItem(started=hpb.WatchStarted())


def update(name: str, version: int, value: object) -> hpb.WatchItem:
    return hpb.WatchItem(
        update=hpb.VariableUpdate(
            session_id="s1", name=name, version=version, value=to_payload(value, name), at=1.0
        )
    )


def ended(reason: str) -> hpb.WatchItem:
    return hpb.WatchItem(ended=hpb.WatchEnded(reason=reason))


def failed(exc: Exception) -> hpb.WatchItem:
    return hpb.WatchItem(error=error_info(exc))


async def drain(
    face: str, stream: _Stream
) -> tuple[list[VariableUpdated], str | None, BaseException | None]:
    """Everything the face yields from ``stream``, its end reason, and what it raised."""
    seen: list[VariableUpdated] = []
    try:
        if face == "sync":
            sync = HostWatch(stream, "s1")
            sync._started()
            with sync:
                seen.extend(sync)
            return seen, sync.ended_reason, None
        watch = AsyncHostWatch(stream, "s1")
        await watch._started()
        async with watch:
            async for u in watch:
                seen.append(u)
        return seen, watch.ended_reason, None
    except SnakepitError as exc:
        return seen, None, exc


@pytest.fixture(params=["sync", "async"])
def face(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class TestWatchFaces:
    async def test_updates_arrive_in_order_until_the_session_ends(self, face: str) -> None:
        stream = _Stream([_live(), update("a", 1, 10), update("a", 2, 11), ended("deleted")])
        seen, reason, error = await drain(face, stream)
        assert [(u.name, u.version, u.value, u.source) for u in seen] == [
            ("a", 1, 10, "host"),
            ("a", 2, 11, "host"),
        ]
        assert (reason, error) == ("deleted", None)

    async def test_a_stream_that_stops_ends_the_watch_quietly(self, face: str) -> None:
        seen, reason, error = await drain(face, _Stream([_live(), update("a", 1, 1), None]))
        assert (len(seen), reason, error) == (1, "stream ended", None)

    async def test_an_error_in_the_stream_is_raised_with_its_kind(self, face: str) -> None:
        gone = SessionNotFoundError("session 's1' expired", session_id="s1")
        seen, _, error = await drain(face, _Stream([_live(), update("a", 1, 1), failed(gone)]))
        assert len(seen) == 1
        assert isinstance(error, SessionNotFoundError)
        assert "expired" in str(error)

    async def test_a_refused_start_raises_and_an_empty_start_names_the_session(
        self, face: str
    ) -> None:
        refused = SessionNotFoundError("no session 's1'", session_id="s1")
        _, _, error = await drain(face, _Stream([failed(refused)]))
        assert isinstance(error, SessionNotFoundError)
        _, _, error = await drain(face, _Stream([None]))
        assert isinstance(error, SnakepitError)
        assert "before it began" in str(error)
        assert "'s1'" in str(error)

    async def test_a_broken_link_raises_unless_the_watch_was_closed(self, face: str) -> None:
        broken = SnakepitError("cannot reach the snakepit host")
        _, _, error = await drain(face, _Stream([_live(), broken]))
        assert error is broken

        # close() from another thread while a read waits: the read breaks, the watch just ends.
        watches: list[HostWatch | AsyncHostWatch] = []

        def closed_while_reading() -> BaseException:
            watches[0].close()
            return broken

        stream = _Stream([_live(), update("a", 1, 1), closed_while_reading])
        watch: HostWatch | AsyncHostWatch
        if face == "sync":
            watch = HostWatch(stream, "s1")
            watches.append(watch)
            watch._started()
            assert [u.version for u in watch] == [1]
        else:
            watch = AsyncHostWatch(stream, "s1")
            watches.append(watch)
            await watch._started()
            assert [u.version async for u in watch] == [1]
        assert watch.ended_reason == "closed"
        assert stream.cancelled == 1

    async def test_close_cancels_the_stream_and_keeps_the_first_reason(self, face: str) -> None:
        stream = _Stream([_live(), ended("expired")])
        _, reason, _ = await drain(face, stream)
        assert reason == "expired"
        assert stream.cancelled == 1  # leaving the with block closed it
