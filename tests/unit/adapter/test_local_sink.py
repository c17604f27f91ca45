"""A local worker's stream going out: batches while a frame is in flight, credits bound it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._wire import STREAM_CREDITS
from snakepit._wire._framing import Flag, Kind
from snakepit.adapter._local_sink import Cancelled, Sink

if TYPE_CHECKING:
    from conftest import HostEnd

    from snakepit.adapter._local_link import Conn

BOUND = 5.0


def _chunk(i: int) -> pb.Payload:
    return pb.Payload(document=str(i).encode())


def _read(host: HostEnd) -> tuple[list[int], bool, pb.StreamItem]:
    frame = host.next()
    assert frame.kind == Kind.STREAM_ITEM
    item = pb.StreamItem.FromString(frame.body)
    return [int(c.document) for c in item.chunks], bool(frame.flags & Flag.END), item


def _small_batches(conn: Conn) -> Sink:
    """A sink whose batches hold one 10-byte chunk each (its message limit is that small)."""
    return Sink(conn, 1, 4096 + 10)


class TestBatches:
    def test_the_first_chunk_leaves_at_once_and_later_ones_join_the_next_batch(
        self, channel: tuple[Conn, HostEnd]
    ) -> None:
        """Nothing in flight: a chunk goes at once. Chunks made while a frame is in flight
        collect into one batch, sent when the host consumes a frame."""
        conn, host = channel
        sink = Sink(conn, 7, conn.limit)
        sink.put(_chunk(0), [], 1)
        assert _read(host)[:2] == ([0], False)
        sink.put(_chunk(1), [], 1)
        sink.put(_chunk(2), [], 1)
        assert host.nothing_sent()
        sink.credit()
        assert _read(host)[:2] == ([1, 2], False)
        sink.finish()
        assert _read(host)[:2] == ([], True)

    def test_a_failed_stream_ends_with_its_error(self, channel: tuple[Conn, HostEnd]) -> None:
        conn, host = channel
        sink = Sink(conn, 3, conn.limit)
        sink.put(_chunk(0), [], 1)
        sink.put(_chunk(1), [], 1)
        sink.finish(pb.ErrorInfo(kind="ToolError", message="broke"))
        assert _read(host)[:2] == ([0], False)
        chunks, end, item = _read(host)
        assert (chunks, end, item.error.message) == ([1], True, "broke")


class TestCredits:
    async def test_a_producer_without_credit_waits_until_the_host_consumes(
        self, channel: tuple[Conn, HostEnd]
    ) -> None:
        """STREAM_CREDITS frames may be unconsumed, plus one batch collecting: the next chunk
        waits (without blocking the loop) until the host consumes a frame."""
        conn, host = channel
        sink = _small_batches(conn)
        for i in range(STREAM_CREDITS + 1):
            await asyncio.wait_for(sink.aput(_chunk(i), [], 10), BOUND)
        waiting = asyncio.ensure_future(sink.aput(_chunk(99), [], 10))
        done, _ = await asyncio.wait({waiting}, timeout=0.05)
        assert not done  # a full batch and no credit: it waits
        sink.credit()
        await asyncio.wait_for(waiting, BOUND)
        sent = [_read(host)[0] for _ in range(STREAM_CREDITS + 1)]
        assert sent == [[i] for i in range(STREAM_CREDITS + 1)]

    async def test_cancelling_the_stream_wakes_a_waiting_producer(
        self, channel: tuple[Conn, HostEnd]
    ) -> None:
        """The host cancelled the stream: a producer waiting for credit ends with Cancelled,
        and nothing more is sent, not even the end."""
        conn, host = channel
        sink = _small_batches(conn)
        for i in range(STREAM_CREDITS + 1):
            await asyncio.wait_for(sink.aput(_chunk(i), [], 10), BOUND)
        waiting = asyncio.ensure_future(sink.aput(_chunk(99), [], 10))
        done, _ = await asyncio.wait({waiting}, timeout=0.05)
        assert not done
        sink.cancel()
        with pytest.raises(Cancelled):
            await asyncio.wait_for(waiting, BOUND)
        sink.finish()
        for _ in range(STREAM_CREDITS):
            host.next()
        assert host.nothing_sent()
