"""``Transport`` over the local channel: frames on a Unix socket pair, no gRPC.

The worker holds the other end as its stdin. The socket is a
:class:`~snakepit.worker._local_channel.FrameChannel`; call ids multiplex
concurrent calls on it, and the worker's own calls to the host (``HOST_CALL``)
are answered by :class:`~snakepit.worker._local_host.HostCalls`. The framing is
specified in ``proto/snakepit/v1/FRAMING.md``.

Deadlines are kept here: past one, the call fails with
``ExecutionTimeoutError`` (the pool replaces the worker) and the worker is
told to cancel it. The worker's death is the socket's EOF: every call in
flight fails with ``TransportError``, which the handle reports as a crash.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import socket
from typing import TYPE_CHECKING, Any

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._trace_context import trace_context_for
from snakepit._wire._constants import SHM_THRESHOLD
from snakepit._wire._errors import exception_from_info
from snakepit._wire._framing import (
    Attachment,
    Flag,
    Frame,
    Kind,
    pack,
    pack_attached,
    split_blobs,
)
from snakepit._wire._payload import from_payload
from snakepit.codec import Encoding, encode
from snakepit.errors import ExecutionTimeoutError, RequestError
from snakepit.worker._local_channel import FrameChannel
from snakepit.worker._local_host import HostCalls
from snakepit.worker._transport import (
    DescribeResult,
    PingResult,
    TransportError,
    describe_result,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from snakepit.bridge._ops import HostOps

__all__ = ["LocalTransport", "socketpair"]

log = logging.getLogger("snakepit.worker")
_DEADLINE_SLACK = 0.005


class _StreamState:
    """Frames of one stream not consumed yet, and the consumer waiting for them."""

    __slots__ = ("items", "waiter")

    def __init__(self) -> None:
        self.items: collections.deque[Frame | BaseException] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None

    def push(self, item: Frame | BaseException) -> None:
        self.items.append(item)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class LocalTransport(FrameChannel):
    """``Transport`` for one local worker.

    Args:
        sock: the host's end of the socket pair (the worker has the other as stdin).
        worker_id: for errors.
        max_message_bytes: the largest message either way.
        encoding: how arguments are encoded (JSON, or pickle when the pool opted in).
        host: answers the worker's calls to the host (None: they fail).
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        worker_id: str,
        max_message_bytes: int,
        encoding: Encoding = Encoding.JSON,
        host: HostOps | None = None,
    ) -> None:
        self._encoding = encoding
        self._allow_pickle = encoding is Encoding.PICKLE
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[Frame]] = {}
        self._streams: dict[int, _StreamState] = {}
        self._host_calls = HostCalls(host, self._write, worker_id=worker_id)
        self._deadlines: dict[int, tuple[float, asyncio.Future[Frame]]] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at = 0.0
        # Set up before the channel reads: a READY may be waiting on the socket already.
        self._ready: asyncio.Future[DescribeResult] = asyncio.get_running_loop().create_future()
        super().__init__(sock, worker_id=worker_id, max_message_bytes=max_message_bytes)

    # -- the channel ---------------------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        kind = frame.kind
        if kind == Kind.REPLY:
            fut = self._replies.pop(frame.call_id, None)
            if fut is not None and not fut.done():
                fut.set_result(frame)
        elif kind == Kind.STREAM_ITEM:
            state = self._streams.get(frame.call_id)
            if state is not None:
                state.push(frame)
        elif kind >= Kind.HOST_CALL:
            self._host_calls.start(frame)
        elif kind == Kind.HOST_CANCEL:
            self._host_calls.cancel(frame.call_id)
        elif kind == Kind.READY:
            if not self._ready.done():
                try:
                    self._ready.set_result(
                        describe_result(pb.DescribeResponse.FromString(frame.body))
                    )
                except Exception as exc:
                    self._ready.set_exception(
                        TransportError(f"worker {self.worker_id!r} sent a malformed READY: {exc}")
                    )
        else:
            log.warning("worker %s sent a frame of unknown kind %#x; ignored", self.worker_id, kind)

    def _shares_sends(self) -> bool:
        return len(self._replies) + len(self._streams) > 1

    def _fail_all(self, error: TransportError) -> None:
        if not self._ready.done():
            self._ready.set_exception(error)
            self._ready.exception()  # retrieved: a worker that never got ready is reported apart
        replies, self._replies = self._replies, {}
        for fut in replies.values():
            if not fut.done():
                fut.set_exception(error)
        streams, self._streams = self._streams, {}
        for state in streams.values():
            state.push(error)
        self._host_calls.cancel_all()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._deadlines.clear()

    # -- calls ---------------------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise TransportError(
                f"channel to worker {self.worker_id!r} is closed ({what})", code="CLOSED"
            )
        if self._lost is not None:
            raise self._lost

    async def ready(self) -> DescribeResult:
        """Wait for the worker's READY frame: its identity and tool specs.

        Raises:
            TransportError: the worker closed the channel first, or sent a malformed frame.
        """
        return await asyncio.shield(self._ready)

    def _request(
        self,
        kind: int,
        call_id: int,
        tool: str,
        args: dict[str, Any],
        session_id: str | None,
        request_id: int,
    ) -> None:
        document, blobs = encode(args, what=f"args of tool {tool!r}", encoding=self._encoding)
        size = len(document) + sum(len(b) for b in blobs)
        if size > self._limit - 4096:
            raise RequestError(
                f"arguments of tool {tool!r} are {size / 2**20:.1f} MiB, more than the pool's "
                f"max_message_mb={self._limit // 2**20}; raise max_message_mb or send less",
                tool=tool,
                size=size,
            )
        attached: list[Attachment] = []
        kept = split_blobs(blobs, 0, SHM_THRESHOLD, attached) if blobs else blobs
        request = pb.ExecuteRequest(
            tool=tool,
            args=pb.Payload(document=document, blobs=kept, encoding=self._encoding.value),  # type: ignore[arg-type]
            session_id=session_id or "",
            request_id=request_id,
        )
        carrier = trace_context_for(self.worker_id, request_id)  # None: not traced
        if carrier is not None:
            request.trace_context.update(carrier)
        body = request.SerializeToString()
        if attached:
            frame, fds = pack_attached(kind, call_id, body, attached)
            self._write(frame, fds)
        else:
            self._write(pack(kind, call_id, body))

    def _value(self, payload: pb.Payload, what: str, blobs: list[bytes] | None = None) -> Any:
        return from_payload(payload, what, allow_pickle=self._allow_pickle, blobs=blobs)

    def _timeout_error(self, tool: str, timeout: float | None) -> ExecutionTimeoutError:
        return ExecutionTimeoutError(
            f"tool {tool!r} on worker {self.worker_id!r} ran past its deadline of "
            f"{timeout}s; the worker will be replaced",
            tool=tool,
            worker_id=self.worker_id,
            timeout=timeout,
        )

    async def _unary(self, kind: int, body: bytes, timeout: float | None, what: str) -> Frame:
        self._check_open(what)
        call_id = next(self._ids)
        fut: asyncio.Future[Frame] = self._loop.create_future()
        self._replies[call_id] = fut
        self._write(pack(kind, call_id, body))
        return await self._wait(call_id, fut, timeout, what)

    async def _wait(
        self, call_id: int, fut: asyncio.Future[Frame], timeout: float | None, what: str
    ) -> Frame:
        if timeout is not None:
            self._arm(call_id, fut, timeout)
        try:
            return await fut
        except BaseException:
            if self._replies.pop(call_id, None) is not None:
                self._write(pack(Kind.CANCEL, call_id, b""))
            raise
        finally:
            if timeout is not None:
                self._deadlines.pop(call_id, None)

    def _arm(self, call_id: int, fut: asyncio.Future[Frame], timeout: float) -> None:
        """Fail ``fut`` with TimeoutError once ``timeout`` has passed. One timer serves every
        call (most end long before their deadline: a timer each would cost more than the
        call); it fires at most ``_DEADLINE_SLACK`` late."""
        when = self._loop.time() + timeout
        self._deadlines[call_id] = (when, fut)
        if self._sweep is None or when < self._sweep_at:
            self._schedule_sweep(when)

    def _schedule_sweep(self, when: float) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        self._sweep_at = when + _DEADLINE_SLACK
        self._sweep = self._loop.call_at(self._sweep_at, self._expire_due)

    def _expire_due(self) -> None:
        self._sweep = None
        now = self._loop.time()
        earliest = None
        for call_id, (when, fut) in list(self._deadlines.items()):
            if when <= now:
                del self._deadlines[call_id]
                if not fut.done():
                    fut.set_exception(TimeoutError())
            elif earliest is None or when < earliest:
                earliest = when
        if earliest is not None:
            self._schedule_sweep(earliest)

    async def describe(self, *, timeout: float | None) -> DescribeResult:
        frame = await self._unary(Kind.DESCRIBE, b"", timeout, "Describe")
        return describe_result(pb.DescribeResponse.FromString(frame.body))

    async def execute(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> Any:
        self._check_open(tool)
        call_id = next(self._ids)
        # Registered before the frame is written: a write that finds the worker gone fails
        # every registered call at once, and this one must be among them.
        fut: asyncio.Future[Frame] = self._loop.create_future()
        self._replies[call_id] = fut
        try:
            self._request(Kind.EXECUTE, call_id, tool, args, session_id, request_id)
        except BaseException:
            self._replies.pop(call_id, None)
            raise
        try:
            frame = await self._wait(call_id, fut, timeout, tool)
        except TimeoutError:
            raise self._timeout_error(tool, timeout) from None
        response = pb.ExecuteResponse.FromString(frame.body)
        if response.HasField("error"):
            raise exception_from_info(response.error, worker_id=self.worker_id)
        blobs = None
        if frame.attachments:
            blobs = _merge(response.result, frame.attachments, 0)
        return self._value(response.result, f"result of tool {tool!r}", blobs)

    async def stream(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> AsyncIterator[Any]:
        self._check_open(tool)
        call_id = next(self._ids)
        state = _StreamState()
        self._streams[call_id] = state
        deadline = None if timeout is None else self._loop.time() + timeout
        what = f"chunk of tool {tool!r}"
        finished = False
        try:
            self._request(Kind.STREAM, call_id, tool, args, session_id, request_id)
            while True:
                while not state.items:
                    state.waiter = self._loop.create_future()
                    try:
                        async with asyncio.timeout_at(deadline):
                            await state.waiter
                    except TimeoutError:
                        raise self._timeout_error(tool, timeout) from None
                    finally:
                        state.waiter = None
                item = state.items.popleft()
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                message = pb.StreamItem.FromString(item.body)
                attachments = item.attachments
                for index, chunk in enumerate(message.chunks):
                    blobs = _merge(chunk, attachments, index) if attachments else None
                    yield self._value(chunk, what, blobs)
                if item.flags & Flag.END:
                    finished = True
                    if message.HasField("error"):
                        raise exception_from_info(message.error, worker_id=self.worker_id)
                    return
                self._write(pack(Kind.CREDIT, call_id, b""))
        finally:
            self._streams.pop(call_id, None)
            if not finished:
                self._write(pack(Kind.CANCEL, call_id, b""))

    async def settle(
        self, request_ids: Sequence[int], *, wait: float, timeout: float | None
    ) -> list[int]:
        """Of ``request_ids``, those whose tool code still runs in the worker after up to
        ``wait`` seconds (see ``Settle`` in worker.proto).

        Raises:
            ExecutionTimeoutError: no answer within ``timeout``.
            TransportError: the channel broke.
        """
        body = pb.SettleRequest(request_ids=list(request_ids), wait_seconds=wait)
        try:
            frame = await self._unary(Kind.SETTLE, body.SerializeToString(), timeout, "Settle")
        except TimeoutError:
            raise self._timeout_error("Settle", timeout) from None
        return list(pb.SettleResponse.FromString(frame.body).running)

    async def ping(self, *, timeout: float | None) -> PingResult:
        try:
            frame = await self._unary(Kind.PING, b"", timeout, "Ping")
        except TimeoutError:
            raise self._timeout_error("Ping", timeout) from None
        r = pb.PingResponse.FromString(frame.body)
        return PingResult(r.pid, r.requests, r.active, r.uptime_seconds)

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; with ``grace``, calls in flight get that long to end by themselves
        (when the worker has died they end at once, with the channel's EOF)."""
        if self._closed:
            return
        if grace and self._lost is None and (self._replies or self._streams):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed_event.wait(), grace)
        if self._closed:
            return
        self._closed = True
        if self._lost is None:
            self._shutdown(
                TransportError(f"channel to worker {self.worker_id!r} was closed", code="CLOSED")
            )
        await self._host_calls.aclose()


def _merge(payload: pb.Payload, attachments: list[Attachment], index: int) -> list[bytes]:
    blobs = list(payload.blobs)
    for a in attachments:
        if a.payload == index and a.blob < len(blobs):
            blobs[a.blob] = a.data
    return blobs


def socketpair() -> tuple[socket.socket, socket.socket]:
    """The host's end and the worker's end of a new channel (the worker's is inheritable)."""
    host, worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    worker.set_inheritable(True)
    return host, worker
