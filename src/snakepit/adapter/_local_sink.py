"""A local worker's stream going out: chunks in batches, sent while the host has credit left."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._wire._constants import STREAM_BATCH_BYTES, STREAM_BATCH_CHUNKS, STREAM_CREDITS
from snakepit._wire._framing import Attachment, Flag, Kind
from snakepit.adapter._local_link import closing_ok, set_result

if TYPE_CHECKING:
    import asyncio

    from snakepit.adapter._local_link import Conn

__all__ = ["Cancelled", "Sink"]


class Cancelled(Exception):
    """Raised in a stream's producer when the host cancelled the stream."""


class Sink:
    """A stream's outgoing side: batches of chunks, sent while the host has credit left.

    Chunks the producer makes while a frame is in flight collect into the next batch;
    a full batch waits for credit. So the worker holds at most one batch beyond the
    ``STREAM_CREDITS`` frames the host has not consumed yet.
    """

    def __init__(self, conn: Conn, call_id: int, limit: int) -> None:
        self._conn = conn
        self._id = call_id
        self._cond = threading.Condition()
        self._credits = STREAM_CREDITS
        self._batch: list[pb.Payload] = []
        self._attached: list[Attachment] = []
        self._bytes = 0
        # The message must fit the limit (with room for the frame and the message's own fields).
        self._max = min(STREAM_BATCH_BYTES, limit - 4096)
        self.cancelled = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def _flush(self, flags: int = 0, error: pb.ErrorInfo | None = None) -> None:
        """Send the batch (the condition is held)."""
        item = pb.StreamItem(chunks=self._batch, error=error)
        self._conn.send_message(Kind.STREAM_ITEM, self._id, item, self._attached or None, flags)
        self._batch = []
        self._attached = []
        self._bytes = 0

    def _fits(self, size: int) -> bool:
        return not self._batch or (
            len(self._batch) < STREAM_BATCH_CHUNKS and self._bytes + size <= self._max
        )

    def _add(self, payload: pb.Payload, attached: list[Attachment], size: int) -> None:
        index = len(self._batch)
        self._batch.append(payload)
        if attached:
            self._attached.extend(Attachment(index, a.blob, a.data) for a in attached)
        self._bytes += size
        # A full batch goes while there is credit; a partial one only when nothing is in
        # flight (Nagle's rule): chunks made meanwhile join it, so fast producers send
        # big batches and a slow producer's chunk still leaves at once.
        full = len(self._batch) >= STREAM_BATCH_CHUNKS or self._bytes >= self._max
        if self._credits > 0 and (full or self._credits == STREAM_CREDITS):
            self._credits -= 1
            self._flush()

    def _offer(self, payload: pb.Payload, attached: list[Attachment], size: int) -> bool:
        """Add the chunk if there is room, making room with credit left (the condition is
        held); False: the producer must wait for credit.

        Raises:
            Cancelled: the host cancelled the stream.
        """
        while True:
            if self.cancelled:
                raise Cancelled
            if self._fits(size):
                self._add(payload, attached, size)
                return True
            if self._credits <= 0:
                return False
            self._credits -= 1
            self._flush()

    def put(self, payload: pb.Payload, attached: list[Attachment], size: int) -> None:
        """Add a chunk (a producer thread); blocks while the batch is full and no credit is left.

        Raises:
            Cancelled: the host cancelled the stream.
        """
        with self._cond:
            while not self._offer(payload, attached, size):
                self._cond.wait()

    async def aput(self, payload: pb.Payload, attached: list[Attachment], size: int) -> None:
        """:meth:`put` for an async generator: waits without blocking the event loop.

        Raises:
            Cancelled: the host cancelled the stream.
        """
        import asyncio  # lazily: a worker without async tools never loads it

        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self._offer(payload, attached, size):
                    return
                waiter = loop.create_future()
                self._waiters.append((loop, waiter))
            await waiter

    def _wake(self) -> None:
        self._cond.notify_all()
        waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            with closing_ok():
                loop.call_soon_threadsafe(set_result, fut, None)

    def credit(self) -> None:
        """The host consumed one frame (reader thread): send what collected meanwhile."""
        with self._cond:
            self._credits += 1
            if self._batch and not self.cancelled:
                self._credits -= 1
                self._flush()
            self._wake()

    def cancel(self) -> None:
        with self._cond:
            self.cancelled = True
            self._wake()

    def finish(self, error: pb.ErrorInfo | None = None) -> None:
        """Send what is left, and the end (with the error, if the stream failed)."""
        with self._cond:
            if not self.cancelled:
                self._flush(Flag.END, error)
