"""One local worker: reads the host's frames, answers them, and runs the calls they carry.

The reader dispatches every frame as it arrives:

* ``PING`` and ``DESCRIBE`` are answered at once by the reader, so heartbeats
  are answered while synchronous tools run (or hang);
* a synchronous tool runs on a crew thread (:mod:`snakepit.adapter._local_crew`),
  where its arguments are decoded, it is called, and its result is encoded and sent;
* an ``async`` tool runs on the event loop thread, started on first use;
* ``CANCEL`` drops a queued call, cancels an ``async`` one, and stops a stream
  (a running synchronous tool cannot be interrupted: the host replaces the worker);
* a stream goes out through a :class:`~snakepit.adapter._local_sink.Sink`;
* ``HOST_REPLY`` frames answer the worker's own calls to the host
  (:class:`~snakepit.adapter._local_link.LocalLink`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import logging
import math
import os
import threading
import time
from typing import TYPE_CHECKING

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._wire._errors import error_info
from snakepit._wire._framing import (
    ANCILLARY_SIZE,
    Frame,
    FrameBuffer,
    Kind,
    ProtocolError,
    received_fds,
)
from snakepit.adapter._core import describe_response, lookup
from snakepit.adapter._host_client import HostClient
from snakepit.adapter._local_calls import Call, CallRunner
from snakepit.adapter._local_crew import Crew, Job
from snakepit.adapter._local_link import LocalLink
from snakepit.adapter._local_sink import Sink
from snakepit.errors import RequestError

if TYPE_CHECKING:
    from snakepit.adapter._base import Adapter
    from snakepit.adapter._local_crew import LoopThread
    from snakepit.adapter._local_link import Conn

__all__ = ["LocalWorker"]

log = logging.getLogger("snakepit.adapter")
_RECV = 256 * 1024


class LocalWorker(CallRunner):
    """Serves one adapter over one connection.

    Its tools reach the host through :attr:`host`, a client on this same connection
    (a tool's ``SessionContext`` carries it).
    """

    def __init__(
        self,
        adapter: Adapter,
        conn: Conn,
        *,
        adapter_path: str,
        worker_id: str,
        threads: int,
        allow_pickle: bool,
        loop: LoopThread,
    ) -> None:
        self.adapter = self._adapter = adapter
        self._conn = conn
        self._adapter_path = adapter_path
        self._worker_id = worker_id
        self._allow_pickle = allow_pickle
        self._tools = type(adapter).tools()
        self._crew: Crew | None = None
        self._loop = loop
        self._calls: dict[int, Call] = {}
        self._started = time.monotonic()
        self._requests = 0
        self.link = LocalLink(conn)
        self.host = HostClient(worker_id=worker_id, allow_pickle=allow_pickle, link=self.link)

    def announce(self) -> None:
        """Tell the host the worker is ready: a READY frame with its identity and tools."""
        self._conn.send_message(Kind.READY, 0, self.describe())

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
        self._crew = Crew(max(1, threads), self._read)
        try:
            self._crew.serve(max(1, threads))
        finally:
            self._frames.close()
            self.link.lost()

    def _read(self) -> list[Job] | None:
        """Read until at least one frame is whole and dispatch the frames; the sync calls
        among them are returned to be run (None: the channel closed)."""
        frames = self._frames
        sock = self._conn.sock
        jobs: list[Job] = []
        while True:
            buf = self._recv_buf
            if frames.wanted() > len(buf):  # a large frame: read the rest of it at once
                buf = bytearray(frames.wanted())
            try:
                n, ancdata, _flags, _addr = sock.recvmsg_into([buf], ANCILLARY_SIZE)
            except OSError:
                return None
            if ancdata:
                frames.add_fds(received_fds(ancdata))
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

    def _dispatch(self, frame: Frame) -> Job | None:
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

    def _start(self, frame: Frame) -> Job | None:
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
        call = Call(call_id, info, request, blobs)
        self._calls[call_id] = call
        if streaming:
            call.sink = Sink(self._conn, call_id, self._conn.limit)
        if info.is_async:
            coro = self._astream(call) if streaming else self._aexecute(call)
        else:
            ctx = contextvars.copy_context()
            target = self._stream if streaming else self._execute

            def run() -> None:
                call.started = True
                try:
                    if not call.cancelled:
                        ctx.run(target, call)
                finally:
                    self._end(call_id, call)

            return Job(call_id, call, run)
        call.future = self._loop.submit(coro)
        call.future.add_done_callback(lambda _f: self._end(call_id, call))
        return None

    def _end(self, call_id: int, call: Call) -> None:
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

    # -- stop ------------------------------------------------------------------------------------

    def drain(self, timeout: float) -> None:
        """Wait (bounded) for the calls in flight to end by themselves."""
        pending = [c.future for c in list(self._calls.values()) if c.future is not None]
        if pending:
            concurrent.futures.wait(pending, timeout=timeout)
        crew = self._crew
        if crew is not None:
            crew.drain(timeout)

    def join(self, timeout: float) -> None:
        """Wait (bounded) for the crew's threads to end, once :meth:`run` returned.

        A worker process never needs this (its end ends every thread); a worker that
        runs inside another process (the in-process test worker) must leave none behind.
        """
        crew = self._crew
        if crew is not None:
            crew.join(timeout)
