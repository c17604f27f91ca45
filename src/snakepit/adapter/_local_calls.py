"""How a local worker runs one call: decode the arguments, call the tool, send its answer.

A call's answer is a ``REPLY`` frame (a result or an error) or, for a stream, the
batches of a :class:`~snakepit.adapter._local_sink.Sink` and its end. A synchronous
tool runs on a crew thread, an ``async`` one on the worker's event loop thread; the
same steps serve both, and whatever a tool raises is its error, sent to the host.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._wire._constants import SHM_THRESHOLD
from snakepit._wire._errors import error_info
from snakepit._wire._framing import Attachment, Flag, Kind, split_blobs
from snakepit.adapter._core import prepare, result_encoding
from snakepit.adapter._local_sink import Cancelled, Sink
from snakepit.codec import encode
from snakepit.errors import RequestError

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable

    from snakepit.adapter._base import Adapter
    from snakepit.adapter._host_client import HostClient
    from snakepit.adapter._local_link import Conn
    from snakepit.adapter._tools import ToolInfo

__all__ = ["Call", "CallRunner"]


class Call:
    """One call the host made: what it runs, and how far it got."""

    __slots__ = (
        "blobs",
        "call_id",
        "cancelled",
        "done",
        "future",
        "info",
        "request",
        "request_id",
        "sink",
        "started",
    )

    def __init__(
        self, call_id: int, info: ToolInfo, request: pb.ExecuteRequest, blobs: list[bytes] | None
    ) -> None:
        self.call_id = call_id  # the frames' id of the call
        self.info = info
        self.request = request
        self.blobs = blobs  # the arguments' blobs, those that came in shared memory included
        self.future: concurrent.futures.Future[Any] | None = None  # an async tool's
        self.sink: Sink | None = None
        self.cancelled = False  # a queued sync job that is cancelled never starts
        self.started = False  # a sync job's thread has taken it
        self.request_id = request.request_id  # the pool's id of the call, which Settle names
        self.done = threading.Event()  # its tool code is over (what Settle waits for)

    def cancel(self) -> None:
        self.cancelled = True
        if self.sink is not None:
            self.sink.cancel()
        if self.future is not None:
            self.future.cancel()  # the coroutine's task is cancelled


class CallRunner:
    """The steps of one call; :class:`~snakepit.adapter._local_worker.LocalWorker` runs them."""

    _adapter: Adapter
    _conn: Conn
    _worker_id: str
    _allow_pickle: bool
    host: HostClient

    def _fail(self, call_id: int, streaming: bool, info: pb.ErrorInfo) -> None:
        if streaming:
            item = pb.StreamItem(error=info)
            self._conn.send_message(Kind.STREAM_ITEM, call_id, item, flags=Flag.END)
        else:
            self._conn.send_message(Kind.REPLY, call_id, pb.ExecuteResponse(error=info))

    def _prepare(self, call: Call) -> Callable[[], Any]:
        """The tool's call with its arguments decoded and bound, ready to run.

        Raises:
            SerializationError: the arguments cannot be decoded.
            InvalidArgumentsError: they do not fit the tool's signature.
        """
        return prepare(
            self._adapter,
            call.info,
            call.request,
            worker_id=self._worker_id,
            allow_pickle=self._allow_pickle,
            blobs=call.blobs,
            host=self.host,
        )

    def _encode(
        self, value: Any, what: str, requested: int, payload_index: int
    ) -> tuple[pb.Payload, list[Attachment], int]:
        """A value as a Payload whose large blobs travel in shared memory; its size.

        Raises:
            SerializationError: the value cannot be carried.
            RequestError: it is larger than the message limit.
        """
        encoding = result_encoding(requested, self._allow_pickle)
        document, blobs = encode(value, what=what, encoding=encoding)
        size = len(document) + sum(len(b) for b in blobs) if blobs else len(document)
        if size > self._conn.limit - 4096:
            limit_mb = self._conn.limit / 2**20
            raise RequestError(
                f"the {what} on worker {self._worker_id!r} is {size / 2**20:.1f} MiB, more than "
                f"the pool's max_message_mb={limit_mb:g} allows in one message; raise "
                "max_message_mb or return (or yield) less at a time",
                worker_id=self._worker_id,
                size=size,
                max_message_mb=limit_mb,
            )
        attached: list[Attachment] = []
        kept = split_blobs(blobs, payload_index, SHM_THRESHOLD, attached) if blobs else blobs
        payload = pb.Payload(document=document, blobs=kept, encoding=encoding.value)  # type: ignore[arg-type]
        return payload, attached, size

    def _reply(self, call: Call, value: Any) -> None:
        tool = call.info.name
        try:
            what = f"result of tool {tool!r}"
            payload, attached, _ = self._encode(value, what, call.request.args.encoding, 0)
        except Exception as exc:
            self._fail(call.call_id, False, error_info(exc, tool=tool))
            return
        response = pb.ExecuteResponse(result=payload)
        self._conn.send_message(Kind.REPLY, call.call_id, response, attached or None)

    def _chunks(self, call: Call) -> Callable[[Any], tuple[pb.Payload, list[Attachment], int]]:
        what = f"chunk of tool {call.info.name!r}"
        requested = call.request.args.encoding
        return lambda value: self._encode(value, what, requested, 0)

    def _execute(self, call: Call) -> None:
        try:
            value = self._prepare(call)()
        except BaseException as exc:  # SystemExit, KeyboardInterrupt...: the tool's errors too
            self._fail(call.call_id, False, error_info(exc, tool=call.info.name))
            return
        self._reply(call, value)

    async def _aexecute(self, call: Call) -> None:
        try:
            value = await self._prepare(call)()
        except BaseException as exc:
            if _cancelled(exc):
                return  # the host cancelled it and forgot the call: nothing to answer
            # SystemExit, KeyboardInterrupt or a CancelledError the tool raised itself are
            # its errors too: the call gets its answer, the worker stays.
            self._fail(call.call_id, False, error_info(exc, tool=call.info.name))
            return
        self._reply(call, value)

    def _stream(self, call: Call) -> None:
        sink = call.sink
        assert sink is not None
        chunk_of = self._chunks(call)
        with _StreamEnd(sink, call.info.name, on_loop=False):
            made = self._prepare(call)()
            if not call.info.streaming:  # a plain tool called as a stream answers with one chunk
                sink.put(*chunk_of(made))
                return
            try:
                for chunk in made:
                    sink.put(*chunk_of(chunk))
            finally:
                made.close()

    async def _astream(self, call: Call) -> None:
        sink = call.sink
        assert sink is not None
        chunk_of = self._chunks(call)
        with _StreamEnd(sink, call.info.name, on_loop=True):
            made = self._prepare(call)()
            if not call.info.streaming:
                await sink.aput(*chunk_of(await made))
                return
            try:
                async for chunk in made:
                    await sink.aput(*chunk_of(chunk))
            finally:
                await made.aclose()


class _StreamEnd:
    """The end of a stream's producer: the end frame goes out, with the error that stopped
    the producer, unless the host cancelled the stream (it expects nothing more then)."""

    __slots__ = ("on_loop", "sink", "tool")

    def __init__(self, sink: Sink, tool: str, *, on_loop: bool) -> None:
        self.sink = sink
        self.tool = tool
        self.on_loop = on_loop

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if exc is None:
            self.sink.finish()
            return False
        if isinstance(exc, Cancelled) or (self.on_loop and _cancelled(exc)):
            return True
        # SystemExit, GeneratorExit...: the tool's errors too
        self.sink.finish(error_info(exc, tool=self.tool))
        return True


def _cancelled(exc: BaseException) -> bool:
    """``exc`` is the cancellation of the task running the call (the host cancelled it),
    not a ``CancelledError`` the tool raised itself (on the worker's event loop only)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:  # never loaded: nothing was cancelled by a loop
        return False
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling() > 0
