"""A local worker's calls to the host, on its own connection: replies, deadlines, a lost host."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import pytest

from snakepit._proto.snakepit.v1 import host_pb2 as hpb
from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._wire._framing import HOST_METHODS, Flag, Kind
from snakepit.adapter._local_link import LocalLink
from snakepit.errors import SnakepitError

if TYPE_CHECKING:
    from conftest import HostEnd

    from snakepit.adapter._local_link import Conn

BOUND = 5.0
LIST = "ListHostTools"


def _tools(*names: str) -> bytes:
    return hpb.ListHostToolsResponse(tools=[pb.ToolSpec(name=n) for n in names]).SerializeToString()


class TestUnaryCalls:
    async def test_a_call_is_a_host_call_frame_answered_by_its_reply(
        self, channel: tuple[Conn, HostEnd]
    ) -> None:
        conn, host = channel
        link = LocalLink(conn)
        call = asyncio.ensure_future(link.acall(LIST, hpb.ListHostToolsRequest(), BOUND))
        frame = await asyncio.to_thread(host.next)
        assert frame.kind == Kind.HOST_CALL + HOST_METHODS.index(LIST)
        link.deliver(frame.call_id, Flag.END, _tools("a", "b"))
        response = await asyncio.wait_for(call, BOUND)
        assert [t.name for t in response.tools] == ["a", "b"]

    def test_a_blocking_call_past_its_deadline_fails_and_forgets_the_call(
        self, channel: tuple[Conn, HostEnd]
    ) -> None:
        """No reply in time: a SnakepitError naming DEADLINE_EXCEEDED; a late reply is dropped."""
        conn, host = channel
        link = LocalLink(conn)
        with pytest.raises(SnakepitError, match="DEADLINE_EXCEEDED"):
            link.call(LIST, hpb.ListHostToolsRequest(), 0.01)
        link.deliver(host.next().call_id, Flag.END, _tools("late"))  # nobody waits: ignored

    def test_a_lost_connection_fails_waiting_calls_and_refuses_new_ones(
        self, channel: tuple[Conn, HostEnd]
    ) -> None:
        conn, host = channel
        link = LocalLink(conn)
        failed: list[BaseException] = []

        def wait() -> None:
            try:
                link.call(LIST, hpb.ListHostToolsRequest(), BOUND)
            except SnakepitError as exc:
                failed.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        host.next()  # the call is out
        link.lost()
        waiter.join(BOUND)
        assert "connection closed" in str(failed[0])
        with pytest.raises(SnakepitError, match="connection is closed"):
            link.call(LIST, hpb.ListHostToolsRequest(), BOUND)


class TestWatches:
    def test_items_arrive_in_order_until_the_end(self, channel: tuple[Conn, HostEnd]) -> None:
        conn, host = channel
        link = LocalLink(conn)
        watch = link.watch(hpb.WatchRequest(session_id="s"))
        call_id = host.next().call_id
        for name in ("x", "y"):
            item = hpb.WatchItem(update=hpb.VariableUpdate(name=name))
            link.deliver(call_id, 0, item.SerializeToString())
        link.deliver(call_id, Flag.END, hpb.WatchItem(ended=hpb.WatchEnded()).SerializeToString())
        got = [watch.next_item() for _ in range(4)]
        kinds = [i.WhichOneof("item") if i is not None else None for i in got]
        assert kinds == ["update", "update", "ended", None]
        assert [i.update.name for i in got[:2] if i is not None] == ["x", "y"]

    async def test_an_async_watch_cancelled_tells_the_host_and_ends(
        self, channel: tuple[Conn, HostEnd]
    ) -> None:
        conn, host = channel
        link = LocalLink(conn)
        watch = link.awatch(hpb.WatchRequest(session_id="s"))
        call_id = (await asyncio.to_thread(host.next)).call_id
        link.deliver(
            call_id, 0, hpb.WatchItem(update=hpb.VariableUpdate(name="x")).SerializeToString()
        )
        first = await asyncio.wait_for(watch.read(), BOUND)
        assert first is not None and first.update.name == "x"
        watch.cancel()
        assert await asyncio.wait_for(watch.read(), BOUND) is None
        cancel = await asyncio.to_thread(host.next)
        assert (cancel.kind, cancel.call_id) == (Kind.HOST_CANCEL, call_id)
