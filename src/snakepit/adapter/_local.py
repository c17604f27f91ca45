"""The worker side of the local transport: frames on the socket the host passed as stdin.

A plain synchronous loop, no event loop and no gRPC on the hot path. The main
thread reads frames and dispatches them:

* ``PING`` and ``DESCRIBE`` are answered at once by the reader, so heartbeats
  are answered while synchronous tools run (or hang);
* a synchronous tool runs on the tool thread pool, where its arguments are
  decoded, it is called, and its result is encoded and sent;
* an ``async`` tool runs on an event loop thread started on first use;
* ``CANCEL`` drops a queued call, cancels an ``async`` one, and stops a stream
  (a running synchronous tool cannot be interrupted: the host replaces the worker);
* a stream is sent in batches, at most ``STREAM_CREDITS`` frames ahead of what the
  host has consumed (``CREDIT``), so a slow consumer bounds the worker's buffer;
* ``HOST_REPLY`` frames answer the worker's own calls to the host (session
  variables, host tools, watches), which travel on the same connection.

The channel is moved off fd 0 (which then reads /dev/null), so a subprocess a
tool starts does not inherit it; the host's death is the channel's EOF.
The framing is specified in ``proto/snakepit/v1/FRAMING.md``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import contextvars
import inspect
import itertools
import logging
import math
import os
import queue
import signal
import socket
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, NamedTuple

from snakepit._proto.snakepit.v1 import host_pb2 as hpb
from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._wire._constants import (
    SHM_THRESHOLD,
    STREAM_BATCH_BYTES,
    STREAM_BATCH_CHUNKS,
    STREAM_CREDITS,
)
from snakepit._wire._errors import error_info
from snakepit._wire._framing import (
    HOST_METHODS,
    Attachment,
    Flag,
    Frame,
    FrameBuffer,
    Kind,
    ProtocolError,
    pack,
    pack_attached,
    split_blobs,
)
from snakepit.adapter import _host_client as host_client
from snakepit.adapter._core import describe_response, lookup, prepare, result_encoding
from snakepit.codec import encode
from snakepit.errors import RequestError, SnakepitError

if TYPE_CHECKING:
    import argparse
    import asyncio
    from collections.abc import Awaitable, Callable, Coroutine, Sequence

    from snakepit.adapter._base import Adapter
    from snakepit.adapter._tools import ToolInfo

__all__ = ["LocalLink", "LocalWorker", "serve"]

log = logging.getLogger("snakepit.adapter")
EXIT_IMPORT, EXIT_SETUP = 3, 4
_RECV = 256 * 1024
_SOCKET_BUFFER = 4 * 1024 * 1024
_ANCILLARY = socket.CMSG_SPACE(250 * 4)
_SERVICE = hpb.DESCRIPTOR.services_by_name["HostService"]
_RESPONSES: dict[str, Any] = {
    name: getattr(hpb, _SERVICE.methods_by_name[name].output_type.name) for name in HOST_METHODS
}


class _Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGINT: stop gracefully."""


class _Cancelled(Exception):
    """Raised in a stream's producer when the host cancelled the stream."""


# -- the connection ------------------------------------------------------------------------------


class _Conn:
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


# -- the host link (worker -> host calls on the same connection) --------------------------------


class _Waiter:
    """Where the answer to one of the worker's host calls lands."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[int, bytes | None], None]) -> None:
        self.callback = callback  # (flags, body or None when the connection is gone)


class LocalLink:
    """``HostLink`` over the worker's own connection."""

    address = "local"

    def __init__(self, conn: _Conn) -> None:
        self._conn = conn
        self._ids = itertools.count(1)
        self._waiters: dict[int, _Waiter] = {}
        self._lock = threading.Lock()
        self._gone = False

    def _start(self, method: str, request: Any, waiter: _Waiter) -> int:
        call_id = next(self._ids)
        with self._lock:
            if self._gone:
                raise self._unreachable(method, "the connection is closed")
            self._waiters[call_id] = waiter
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

    def deliver(self, call_id: int, flags: int, body: bytes) -> None:
        """A HOST_REPLY arrived (reader thread)."""
        with self._lock:
            waiter = self._waiters.get(call_id)
            if waiter is not None and flags & Flag.END:
                del self._waiters[call_id]
        if waiter is not None:
            waiter.callback(flags, body)

    def lost(self) -> None:
        """The connection is gone: every waiting call fails (reader thread)."""
        with self._lock:
            self._gone = True
            waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            waiter.callback(Flag.END, None)

    def _parse(self, method: str, body: bytes | None) -> Any:
        if body is None:
            raise self._unreachable(method, "the connection closed")
        return _RESPONSES[method].FromString(body)

    def call(self, method: str, request: Any, timeout: float | None) -> Any:
        done: concurrent.futures.Future[bytes | None] = concurrent.futures.Future()
        call_id = self._start(method, request, _Waiter(lambda _f, body: done.set_result(body)))
        try:
            body = done.result(timeout)
        except TimeoutError:
            self._forget(call_id)
            raise self._unreachable(method, f"DEADLINE_EXCEEDED after {timeout}s") from None
        return self._parse(method, body)

    async def acall(self, method: str, request: Any, timeout: float | None) -> Any:
        import asyncio  # lazily: a worker without async tools never loads it

        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes | None] = loop.create_future()

        def land(_flags: int, body: bytes | None) -> None:
            loop.call_soon_threadsafe(_set_result, done, body)

        call_id = self._start(method, request, _Waiter(land))
        try:
            async with asyncio.timeout(timeout):
                body = await done
        except TimeoutError:
            self._forget(call_id)
            raise self._unreachable(method, f"DEADLINE_EXCEEDED after {timeout}s") from None
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


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


_END = object()


class _Watch:
    def __init__(self, link: LocalLink, request: hpb.WatchRequest) -> None:
        self._link = link
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._call_id = link._start("WatchVariables", request, _Waiter(self._land))
        self._done = False

    def _land(self, flags: int, body: bytes | None) -> None:
        self._items.put(body if body is not None else _END)
        if flags & Flag.END and body is not None:
            self._items.put(_END)

    def next_item(self) -> hpb.WatchItem | None:
        if self._done:
            return None
        body = self._items.get()
        if body is _END:
            self._done = True
            return None
        return hpb.WatchItem.FromString(body)

    def cancel(self) -> None:
        if not self._done:
            self._link.cancel(self._call_id)
        self._items.put(_END)


class _AsyncWatch:
    def __init__(self, link: LocalLink, request: hpb.WatchRequest) -> None:
        self._link = link
        import asyncio  # lazily: a worker without async tools never loads it

        self._loop = asyncio.get_running_loop()
        self._items: asyncio.Queue[Any] = asyncio.Queue()
        self._call_id = link._start("WatchVariables", request, _Waiter(self._land))
        self._done = False

    def _land(self, flags: int, body: bytes | None) -> None:
        put = self._items.put_nowait
        with _closing_ok():
            self._loop.call_soon_threadsafe(put, body if body is not None else _END)
            if flags & Flag.END and body is not None:
                self._loop.call_soon_threadsafe(put, _END)

    async def read(self) -> hpb.WatchItem | None:
        if self._done:
            return None
        body = await self._items.get()
        if body is _END:
            self._done = True
            return None
        return hpb.WatchItem.FromString(body)

    def cancel(self) -> None:
        if not self._done:
            self._link.cancel(self._call_id)
        self._items.put_nowait(_END)


class _closing_ok:
    """Ignore the RuntimeError of a loop that closed under us (the worker is going away)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, tb: object) -> bool:
        return isinstance(exc, RuntimeError)


# -- streams ---------------------------------------------------------------------------------------


class _Sink:
    """A stream's outgoing side: batches of chunks, sent while the host has credit left.

    Chunks the producer makes while a frame is in flight collect into the next batch;
    a full batch waits for credit. So the worker holds at most one batch beyond the
    ``STREAM_CREDITS`` frames the host has not consumed yet.
    """

    def __init__(self, conn: _Conn, call_id: int, limit: int) -> None:
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

    def put(self, payload: pb.Payload, attached: list[Attachment], size: int) -> None:
        """Add a chunk (a producer thread); blocks while the batch is full and no credit is left.

        Raises:
            _Cancelled: the host cancelled the stream.
        """
        with self._cond:
            while True:
                if self.cancelled:
                    raise _Cancelled
                if self._fits(size):
                    self._add(payload, attached, size)
                    return
                if self._credits > 0:
                    self._credits -= 1
                    self._flush()
                    continue
                self._cond.wait()

    async def aput(self, payload: pb.Payload, attached: list[Attachment], size: int) -> None:
        """:meth:`put` for an async generator: waits without blocking the event loop."""
        import asyncio  # lazily: a worker without async tools never loads it

        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self.cancelled:
                    raise _Cancelled
                if self._fits(size):
                    self._add(payload, attached, size)
                    return
                if self._credits > 0:
                    self._credits -= 1
                    self._flush()
                    continue
                waiter = loop.create_future()
                self._waiters.append((loop, waiter))
            await waiter

    def _wake(self) -> None:
        self._cond.notify_all()
        waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            with _closing_ok():
                loop.call_soon_threadsafe(_set_result, fut, None)

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


# -- calls -----------------------------------------------------------------------------------------


class _Call:
    __slots__ = ("cancelled", "done", "future", "request_id", "sink", "started")

    def __init__(self, request_id: int) -> None:
        self.future: concurrent.futures.Future[Any] | None = None  # an async tool's
        self.sink: _Sink | None = None
        self.cancelled = False  # a queued sync job that is cancelled never starts
        self.started = False  # a sync job's thread has taken it
        self.request_id = request_id  # the pool's id of the call, which Settle names
        self.done = threading.Event()  # its tool code is over (what Settle waits for)

    def cancel(self) -> None:
        self.cancelled = True
        if self.sink is not None:
            self.sink.cancel()
        if self.future is not None:
            self.future.cancel()  # the coroutine's task is cancelled


class _Job(NamedTuple):
    call_id: int
    call: _Call
    run: Callable[[], None]


class _Crew:
    """The threads that read the channel and run synchronous tools: leader/followers.

    One thread at a time (the leader) reads frames. When it gets a synchronous call it
    runs the call itself, with no hop to another thread, keeping the reading duty
    *lazily*: a follower waiting with a short timeout takes the duty over if the call
    is still running at its next tick (``_TICK``), so ``PING`` is still answered while
    a tool runs or hangs, and a short call costs no thread wake-up at all. The ticking
    stops a second after the last call. At most ``limit`` threads run calls at once,
    and the crew has one thread more than that, so a reader is always available.
    """

    _TICK = 0.005
    _KEEP_TICKING = 1.0

    def __init__(self, limit: int, read: Callable[[], list[_Job] | None]) -> None:
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._idle = threading.Condition(lock)
        self._jobs: collections.deque[_Job] = collections.deque()
        self._leading = False  # a thread holds the reading duty (reading, or lazily)
        self._lazy = False  # ... and is running a call instead of reading
        self._lazy_seq = 0
        self._last_lazy = 0.0
        self._timed = 0  # followers in a timed wait
        self._running = 0
        self._limit = limit
        self._read = read
        self._done = False

    def serve(self, threads: int) -> None:
        """Run the crew on this thread and ``threads`` more; return when the channel closes."""
        for i in range(threads):
            threading.Thread(target=self._follow, name=f"tool-{i}", daemon=True).start()
        self._follow()

    def _wait(self) -> bool:
        """Wait as a follower (the condition is held); True when this thread took the
        reading duty over from a leader whose call outlived a tick."""
        now = time.monotonic()
        if not (self._lazy or now - self._last_lazy < self._KEEP_TICKING):
            self._cond.wait()
            return False
        seen = self._lazy_seq
        self._timed += 1
        try:
            self._cond.wait(self._TICK)
        finally:
            self._timed -= 1
        if self._lazy and self._lazy_seq == seen and not self._done:
            self._lazy = False  # the leader's call outlived a tick: read in its place
            return True
        return False

    def _follow(self) -> None:
        cond = self._cond
        lead = False
        while True:
            job: _Job | None = None
            lazy_seq = 0  # the lazy turn this thread's call runs in, if any
            if not lead:
                with cond:
                    while True:
                        if self._done:
                            return
                        if self._jobs and self._running < self._limit:
                            job = self._jobs.popleft()
                            self._running += 1
                            break
                        if not self._leading:
                            self._leading = lead = True
                            break
                        if self._wait():
                            lead = True
                            break
            if job is None:
                try:
                    jobs = self._read()
                except BaseException:
                    jobs = None
                with cond:
                    if jobs is None:
                        self._done = True
                        self._leading = False
                        cond.notify_all()
                        return
                    if not jobs or self._running >= self._limit:
                        self._jobs.extend(jobs)
                        if jobs:
                            cond.notify(len(jobs))
                        continue  # keep reading
                    job = jobs[0]
                    self._running += 1
                    if len(jobs) > 1:
                        self._jobs.extend(jobs[1:])
                        cond.notify(len(jobs))  # takers for the others, and a new reader
                        self._leading = lead = False
                    else:
                        self._lazy = True
                        self._lazy_seq += 1
                        lazy_seq = self._lazy_seq
                        self._last_lazy = time.monotonic()
                        lead = False
                        if not self._timed:
                            cond.notify()  # a follower to tick while this call runs
            try:
                job.run()  # a cancelled job only ends its call
            finally:
                with cond:
                    self._running -= 1
                    if lazy_seq and self._lazy and self._lazy_seq == lazy_seq:
                        self._lazy = False
                        lead = True  # nobody took the reading duty over: resume it
                    if self._jobs and self._running < self._limit:
                        cond.notify()
                    if not self._running:
                        self._idle.notify_all()

    def drain(self, timeout: float) -> None:
        """Wait (bounded) until no call runs; queued ones are dropped."""
        with self._cond:
            self._jobs.clear()
            self._idle.wait_for(lambda: not self._running, timeout)


class _LoopThread:
    """The event loop for ``async`` tools, started on first use."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                import asyncio  # lazily: a worker without async tools never loads it

                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=run, name="snakepit-async", daemon=True).start()
                ready.wait()
                self._loop = loop
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        import asyncio  # lazily: a worker without async tools never loads it

        return asyncio.run_coroutine_threadsafe(coro, self.get())

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None) -> Any:
        return self.submit(coro).result(timeout)


class LocalWorker:
    """Serves one adapter over one connection."""

    def __init__(
        self,
        adapter: Adapter,
        conn: _Conn,
        *,
        adapter_path: str,
        worker_id: str,
        threads: int,
        allow_pickle: bool,
        loop: _LoopThread,
    ) -> None:
        self._adapter = adapter
        self._conn = conn
        self._adapter_path = adapter_path
        self._worker_id = worker_id
        self._allow_pickle = allow_pickle
        self._tools = type(adapter).tools()
        self._crew: _Crew | None = None
        self._loop = loop
        self._calls: dict[int, _Call] = {}
        self._started = time.monotonic()
        self._requests = 0
        self.link = LocalLink(conn)

    def describe(self) -> pb.DescribeResponse:
        return describe_response(
            self._tools, adapter_path=self._adapter_path, worker_id=self._worker_id
        )

    # -- the reader ------------------------------------------------------------------------------

    def run(self, threads: int) -> None:
        """Read and dispatch frames until the host closes the connection (or a signal shut
        the reading side); sync tools run on ``threads`` threads at most."""
        self._frames = FrameBuffer(self._conn.limit + 1024 * 1024)
        # One buffer for every read: recvmsg(n) would allocate (and map) n bytes per call.
        self._recv_buf = bytearray(_RECV)
        self._crew = _Crew(max(1, threads), self._read)
        try:
            self._crew.serve(max(1, threads))
        finally:
            self._frames.close()
            self.link.lost()

    def _read(self) -> list[_Job] | None:
        """Read until at least one frame is whole and dispatch the frames; the sync calls
        among them are returned to be run (None: the channel closed)."""
        frames = self._frames
        sock = self._conn.sock
        jobs: list[_Job] = []
        while True:
            buf = self._recv_buf
            if frames.wanted() > len(buf):  # a large frame: read the rest of it at once
                buf = bytearray(frames.wanted())
            try:
                n, ancdata, _flags, _addr = sock.recvmsg_into([buf], _ANCILLARY)
            except OSError:
                return None
            if ancdata:
                frames.add_fds(_fds_of(ancdata))
            if not n:
                return None
            frames.feed(memoryview(buf)[:n])
            try:
                ready = frames.frames()
            except ProtocolError as exc:
                log.error("the host sent a malformed frame (%s); closing the connection", exc)
                return None
            for frame in ready:
                job = self._dispatch(frame)
                if job is not None:
                    jobs.append(job)
            if ready:
                return jobs

    def _dispatch(self, frame: Frame) -> _Job | None:
        kind = frame.kind
        if kind == Kind.EXECUTE or kind == Kind.STREAM:
            return self._start(frame)
        if kind == Kind.PING:
            self._conn.send_message(
                Kind.REPLY,
                frame.call_id,
                pb.PingResponse(
                    pid=os.getpid(),
                    requests=self._requests,
                    active=len(self._calls),
                    uptime_seconds=time.monotonic() - self._started,
                ),
            )
        elif kind == Kind.CREDIT:
            call = self._calls.get(frame.call_id)
            if call is not None and call.sink is not None:
                call.sink.credit()
        elif kind == Kind.CANCEL:
            call = self._calls.get(frame.call_id)
            if call is not None:
                call.cancel()
                if call.future is None and not call.started:
                    # A queued sync job never runs now: it is over (Settle, Ping's count).
                    self._end(frame.call_id, call)
        elif kind == Kind.SETTLE:
            # Waiting is done off the reader, which must keep answering Ping meanwhile.
            request = pb.SettleRequest.FromString(frame.body)
            threading.Thread(
                target=self._settle, args=(frame.call_id, request), daemon=True
            ).start()
        elif kind == Kind.HOST_REPLY:
            self.link.deliver(frame.call_id, frame.flags, frame.body)
        elif kind == Kind.DESCRIBE:
            self._conn.send_message(Kind.REPLY, frame.call_id, self.describe())
        else:
            log.warning("ignoring a frame of unknown kind %#x from the host", kind)
        return None

    # -- one call --------------------------------------------------------------------------------

    def _start(self, frame: Frame) -> _Job | None:
        call_id = frame.call_id
        streaming = frame.kind == Kind.STREAM
        self._requests += 1
        tool: str | None = None
        try:
            request = pb.ExecuteRequest.FromString(frame.body)
            info = lookup(
                self._tools,
                request.tool,
                adapter_path=self._adapter_path,
                worker_id=self._worker_id,
            )
            tool = info.name
            if info.streaming and not streaming:
                raise RequestError(
                    f"tool {tool!r} is a streaming tool (a generator); call it "
                    f"with stream({tool!r}, ...) instead of execute()",
                    tool=tool,
                )
        except Exception as exc:
            self._fail(call_id, streaming, error_info(exc, tool=tool))
            return None
        blobs = None
        if frame.attachments:
            blobs = list(request.args.blobs)
            for a in frame.attachments:
                if a.payload == 0 and a.blob < len(blobs):
                    blobs[a.blob] = a.data
        call = _Call(request.request_id)
        self._calls[call_id] = call
        if streaming:
            call.sink = _Sink(self._conn, call_id, self._conn.limit)
        if info.kind == "async_generator":
            coro = self._astream(call_id, call, info, request, blobs)
        elif info.kind == "async":
            coro = self._aexecute(call_id, info, request, blobs, streaming)
        else:
            ctx = contextvars.copy_context()
            target = self._stream if streaming else self._execute

            def run() -> None:
                call.started = True
                try:
                    if not call.cancelled:
                        ctx.run(target, call_id, call, info, request, blobs)
                finally:
                    self._end(call_id, call)

            return _Job(call_id, call, run)
        call.future = self._loop.submit(coro)
        call.future.add_done_callback(lambda _f: self._end(call_id, call))
        return None

    def _end(self, call_id: int, call: _Call) -> None:
        self._calls.pop(call_id, None)
        call.done.set()

    def _settle(self, call_id: int, request: pb.SettleRequest) -> None:
        """Answer Settle: of the named calls, those whose tool code still runs after up to
        ``wait_seconds`` (a sync generator stops at its next chunk once cancelled)."""
        ids = set(request.request_ids)
        wait = request.wait_seconds if math.isfinite(request.wait_seconds) else 0.0
        calls = [c for c in list(self._calls.values()) if c.request_id in ids]
        until = time.monotonic() + max(0.0, wait)
        for c in calls:
            c.done.wait(max(0.0, until - time.monotonic()))
        running = sorted({c.request_id for c in calls if not c.done.is_set()})
        with contextlib.suppress(OSError):  # the host is gone: nobody to answer
            self._conn.send_message(Kind.REPLY, call_id, pb.SettleResponse(running=running))

    def _fail(self, call_id: int, streaming: bool, info: pb.ErrorInfo) -> None:
        if streaming:
            item = pb.StreamItem(error=info)
            self._conn.send_message(Kind.STREAM_ITEM, call_id, item, flags=Flag.END)
        else:
            self._conn.send_message(Kind.REPLY, call_id, pb.ExecuteResponse(error=info))

    def _prepare(
        self, info: ToolInfo, request: pb.ExecuteRequest, blobs: list[bytes] | None
    ) -> Callable[[], Any]:
        return prepare(
            self._adapter,
            info,
            request,
            worker_id=self._worker_id,
            allow_pickle=self._allow_pickle,
            blobs=blobs,
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

    def _reply(self, call_id: int, info: ToolInfo, value: Any, requested: int) -> None:
        try:
            payload, attached, _ = self._encode(
                value, f"result of tool {info.name!r}", requested, 0
            )
        except Exception as exc:
            self._fail(call_id, False, error_info(exc, tool=info.name))
            return
        response = pb.ExecuteResponse(result=payload)
        self._conn.send_message(Kind.REPLY, call_id, response, attached or None)

    def _execute(
        self,
        call_id: int,
        call: _Call,
        info: ToolInfo,
        request: pb.ExecuteRequest,
        blobs: list[bytes] | None,
    ) -> None:
        try:
            value = self._prepare(info, request, blobs)()
        except BaseException as exc:  # SystemExit, KeyboardInterrupt...: the tool's errors too
            self._fail(call_id, False, error_info(exc, tool=info.name))
            return
        self._reply(call_id, info, value, request.args.encoding)

    async def _aexecute(
        self,
        call_id: int,
        info: ToolInfo,
        request: pb.ExecuteRequest,
        blobs: list[bytes] | None,
        as_stream: bool,
    ) -> None:
        try:
            value = await self._prepare(info, request, blobs)()
            if as_stream:
                call = self._calls.get(call_id)
                what = f"chunk of tool {info.name!r}"
                payload, attached, size = self._encode(value, what, request.args.encoding, 0)
                if call is not None and call.sink is not None:
                    await call.sink.aput(payload, attached, size)
                    call.sink.finish()
                return
        except BaseException as exc:
            if _cancelled(exc):
                return  # the host cancelled it and forgot the call: nothing to answer
            # SystemExit, KeyboardInterrupt or a CancelledError the tool raised itself are
            # its errors too: the call gets its answer, the worker stays.
            self._fail(call_id, as_stream, error_info(exc, tool=info.name))
            return
        self._reply(call_id, info, value, request.args.encoding)

    def _stream(
        self,
        call_id: int,
        call: _Call,
        info: ToolInfo,
        request: pb.ExecuteRequest,
        blobs: list[bytes] | None,
    ) -> None:
        sink = call.sink
        assert sink is not None
        what = f"chunk of tool {info.name!r}"
        requested = request.args.encoding
        error = None
        try:
            made = self._prepare(info, request, blobs)()
            if not info.streaming:  # a plain tool called as a stream answers with one chunk
                sink.put(*self._encode(made, what, requested, 0))
            else:
                try:
                    for chunk in made:
                        sink.put(*self._encode(chunk, what, requested, 0))
                finally:
                    made.close()
        except _Cancelled:
            return
        except BaseException as exc:  # SystemExit, GeneratorExit...: the tool's errors too
            error = error_info(exc, tool=info.name)
        sink.finish(error)

    async def _astream(
        self,
        call_id: int,
        call: _Call,
        info: ToolInfo,
        request: pb.ExecuteRequest,
        blobs: list[bytes] | None,
    ) -> None:
        sink = call.sink
        assert sink is not None
        what = f"chunk of tool {info.name!r}"
        requested = request.args.encoding
        error = None
        try:
            agen = self._prepare(info, request, blobs)()
            try:
                async for chunk in agen:
                    await sink.aput(*self._encode(chunk, what, requested, 0))
            finally:
                await agen.aclose()
        except _Cancelled:
            return
        except BaseException as exc:
            if _cancelled(exc):
                return
            error = error_info(exc, tool=info.name)
        sink.finish(error)

    # -- stop ------------------------------------------------------------------------------------

    def drain(self, timeout: float) -> None:
        """Wait (bounded) for the calls in flight to end by themselves."""
        pending = [c.future for c in list(self._calls.values()) if c.future is not None]
        if pending:
            concurrent.futures.wait(pending, timeout=timeout)
        crew = self._crew
        if crew is not None:
            crew.drain(timeout)


def _cancelled(exc: BaseException) -> bool:
    """``exc`` is the cancellation of the task running the call (the host cancelled it),
    not a ``CancelledError`` the tool raised itself."""
    import asyncio  # lazily: a worker without async tools never loads it

    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling() > 0


def _fds_of(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    import array

    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(data[: len(data) - (len(data) % arr.itemsize)])
            fds.extend(arr)
    return fds


# -- the process -----------------------------------------------------------------------------------


def _maybe_run(result: Awaitable[None] | None, loop: _LoopThread, timeout: float | None) -> None:
    if inspect.isawaitable(result):

        async def wait() -> None:
            await result

        loop.run(wait(), timeout)


_open_channels: list[socket.socket] = []


class _Signals:
    """SIGTERM/SIGINT: during start-up, interrupt it; once serving, stop reading (the crew
    sees the channel end) and let the main thread stop gracefully."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.serving = False
        self.stopping = False
        signal.signal(signal.SIGTERM, self.handle)
        signal.signal(signal.SIGINT, self.handle)

    def handle(self, signum: int, frame: Any) -> None:
        self.stopping = True
        if not self.serving:
            raise _Stop
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)


def serve(
    args: argparse.Namespace,
    load_adapter: Callable[[str], Any],
    exit_now: Callable[[int], Any],
) -> int:
    """Run the local worker on the channel at fd 0; the exit code.

    ``exit_now`` leaves the process at once (used when the host is gone and a tool hangs).
    """
    os.dup2(2, 1)  # a stray print() lands in the forwarded log, never on the channel
    channel = os.dup(0)  # non-inheritable: a tool's subprocess does not get the channel
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sock = socket.socket(fileno=channel)
    _open_channels.append(sock)  # open until the process ends: its EOF tells the host we exited
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        with contextlib.suppress(OSError):  # refused by a strict kernel limit: keep the default
            sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
    conn = _Conn(sock, args.max_message_bytes)
    loop = _LoopThread()
    signals = _Signals(sock)
    worker: LocalWorker | None = None
    adapter: Any = None
    try:
        try:
            adapter = load_adapter(args.adapter)
        except Exception:
            log.error("cannot load adapter %s:\n%s", args.adapter, traceback.format_exc())
            return EXIT_IMPORT
        try:
            _maybe_run(adapter.setup(), loop, None)
        except Exception:
            log.error("setup() of %s failed:\n%s", args.adapter, traceback.format_exc())
            return EXIT_SETUP
        worker = LocalWorker(
            adapter,
            conn,
            adapter_path=args.adapter,
            worker_id=args.worker_id,
            threads=args.threads,
            allow_pickle=args.allow_pickle,
            loop=loop,
        )
        host_client.configure(
            host_client.HostClient(
                worker_id=args.worker_id, allow_pickle=args.allow_pickle, link=worker.link
            )
        )
        conn.send_message(Kind.READY, 0, worker.describe())
        signals.serving = True
        if not signals.stopping:
            worker.run(args.threads)
        if not signals.stopping:
            log.warning("the host closed the connection: the host is gone; exiting")
            # A tool stuck in native code would block a graceful stop: bound it, then leave.
            threading.Timer(3.0, exit_now, args=(0,)).start()
        else:
            log.info("worker %s stopping", args.worker_id)
            worker.drain(1.0)
    except _Stop:
        log.info("worker %s stopping before it served", args.worker_id)
    if adapter is not None:
        try:
            _maybe_run(adapter.teardown(), loop, 5.0)
        except Exception:
            log.warning("teardown() of %s failed:\n%s", args.adapter, traceback.format_exc())
    return 0
