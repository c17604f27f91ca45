"""A local worker's stream batching, without a worker: chunks collect while a frame is in
flight, a batch never outgrows the message limit, and credit bounds what is sent ahead."""

from __future__ import annotations

from typing import Any

import pytest

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._wire import STREAM_BATCH_CHUNKS, STREAM_CREDITS
from snakepit._wire._framing import Flag, Kind
from snakepit.adapter._local import _Cancelled, _Sink


class Wire:
    """Stands in for the worker's connection: records each frame a sink sends."""

    def __init__(self) -> None:
        self.frames: list[tuple[list[bytes], int, pb.ErrorInfo | None]] = []

    def send_message(
        self, kind: int, call_id: int, item: pb.StreamItem, attached: Any, flags: int = 0
    ) -> None:
        assert (kind, call_id) == (Kind.STREAM_ITEM, 7)
        error = item.error if item.HasField("error") else None
        self.frames.append(([c.document for c in item.chunks], flags, error))

    def chunks(self) -> list[list[bytes]]:
        return [docs for docs, _, _ in self.frames]


def _chunk(i: int) -> pb.Payload:
    return pb.Payload(document=str(i).encode())


def _sink(limit: int = 64 * 2**20) -> tuple[_Sink, Wire]:
    wire = Wire()
    return _Sink(wire, 7, limit), wire  # type: ignore[arg-type]


class TestBatching:
    def test_a_chunk_leaves_at_once_when_nothing_is_in_flight(self) -> None:
        sink, wire = _sink()
        sink.put(_chunk(0), [], 1)
        assert wire.chunks() == [[b"0"]]

    def test_chunks_made_while_a_frame_is_in_flight_go_together_on_credit(self) -> None:
        sink, wire = _sink()
        for i in range(5):
            sink.put(_chunk(i), [], 1)
        assert wire.chunks() == [[b"0"]]  # the rest waits for the host to consume the first
        sink.credit()
        assert wire.chunks() == [[b"0"], [b"1", b"2", b"3", b"4"]]

    def test_a_full_batch_goes_while_there_is_credit(self) -> None:
        sink, wire = _sink()
        for i in range(1 + STREAM_BATCH_CHUNKS):
            sink.put(_chunk(i), [], 1)
        assert [len(c) for c in wire.chunks()] == [1, STREAM_BATCH_CHUNKS]

    def test_a_chunk_that_would_not_fit_the_message_starts_the_next_one(self) -> None:
        sink, wire = _sink(limit=4096 + 100)  # 100 bytes of chunks per message
        sink.put(_chunk(0), [], 10)  # goes at once
        sink.put(_chunk(1), [], 60)
        sink.put(_chunk(2), [], 60)  # 120 > 100: the batch [1] goes, [2] starts the next
        assert wire.chunks() == [[b"0"], [b"1"]]
        sink.finish()
        assert wire.chunks() == [[b"0"], [b"1"], [b"2"]]

    def test_no_more_than_the_credit_is_sent_ahead_of_the_host(self) -> None:
        sink, wire = _sink()
        for i in range(STREAM_CREDITS * STREAM_BATCH_CHUNKS):
            sink.put(_chunk(i), [], 1)
        assert len(wire.frames) == STREAM_CREDITS  # the next full batch would wait for credit


class TestEnding:
    def test_finish_sends_what_is_left_with_the_end(self) -> None:
        sink, wire = _sink()
        sink.put(_chunk(0), [], 1)
        sink.put(_chunk(1), [], 1)
        sink.finish()
        assert wire.frames[-1][:2] == ([b"1"], Flag.END)

    def test_a_failed_stream_ends_with_its_error(self) -> None:
        sink, wire = _sink()
        sink.finish(pb.ErrorInfo(kind="ToolError", message="boom"))
        docs, flags, error = wire.frames[-1]
        assert (docs, flags) == ([], Flag.END)
        assert error is not None and error.message == "boom"

    def test_a_cancelled_stream_refuses_chunks_and_sends_nothing_more(self) -> None:
        sink, wire = _sink()
        sink.put(_chunk(0), [], 1)
        sink.cancel()
        with pytest.raises(_Cancelled):
            sink.put(_chunk(1), [], 1)
        sink.credit()
        sink.finish()
        assert wire.chunks() == [[b"0"]]

    async def test_an_async_producer_is_refused_the_same_way(self) -> None:
        sink, wire = _sink()
        await sink.aput(_chunk(0), [], 1)
        sink.cancel()
        with pytest.raises(_Cancelled):
            await sink.aput(_chunk(1), [], 1)
        assert wire.chunks() == [[b"0"]]
