"""``WorkerService`` as served inside a worker process.

Synchronous tools run on a thread pool, so the event loop keeps answering
``Ping`` and health checks while a tool runs (or hangs). Every failure is
returned as a typed ``ErrorInfo`` in the response body; gRPC status codes are
left for transport failures, which the host reads as a broken worker.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._proto.snakepit.v1 import worker_pb2_grpc as pb_grpc
from snakepit._wire._errors import error_info
from snakepit.adapter._core import describe_response, lookup, prepare
from snakepit.codec import Encoding, encode
from snakepit.errors import RequestError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Generator
    from concurrent.futures import Future, ThreadPoolExecutor

    import grpc

    from snakepit.adapter._base import Adapter
    from snakepit.adapter._tools import ToolInfo

__all__ = ["WorkerServicer", "error_info"]

log = logging.getLogger("snakepit.adapter")

# Stream chunks the producer thread may run ahead of the gRPC writer.
_STREAM_WINDOW = 256
# The most chunks, and bytes, one StreamItem carries (and never more than the message limit).
_BATCH_CHUNKS = 256
_BATCH_BYTES = 1 << 20
# Bytes of a message kept free of payload: field tags and lengths, an ErrorInfo's framing.
_HEADROOM = 4096
# What a chunk adds to a StreamItem beyond its own size: a tag and a length prefix.
_CHUNK_FRAMING = 6


def _outcome(job: Callable[[], Any]) -> tuple[bool, Any]:
    """Run ``job`` and return what it raised rather than raise it: an exception carried by a
    future is thrown into the awaiting coroutine, where ``StopIteration`` cannot be set and
    a ``GeneratorExit`` closes the server's coroutine instead of reaching our handler."""
    try:
        return False, job()
    except BaseException as exc:
        return True, exc


def _cancelled(exc: BaseException) -> bool:
    """``exc`` is the cancellation of this handler (its call went away), not the tool's."""
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling() > 0


class WorkerServicer(pb_grpc.WorkerServiceServicer):
    """Serves one adapter instance."""

    def __init__(
        self,
        adapter: Adapter,
        *,
        adapter_path: str,
        worker_id: str,
        executor: ThreadPoolExecutor,
        allow_pickle: bool = False,
        max_message_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self._adapter = adapter
        self._max_message = max_message_bytes
        # The most payload bytes one message may carry: what the host accepts, less framing.
        self._budget = max(1, max_message_bytes - _HEADROOM)
        self._adapter_path = adapter_path
        self._worker_id = worker_id
        self._executor = executor
        self._allow_pickle = allow_pickle
        self._tools = type(adapter).tools()
        self._started = time.monotonic()
        self.requests = 0
        self.active = 0
        # The tool threads of each request until they return, even after the request was
        # cancelled (a thread cannot be interrupted): what Settle reports. Written from
        # tool threads as they finish, hence the lock.
        self._jobs: dict[int, set[Future[Any]]] = {}
        self._jobs_lock = threading.Lock()

    # -- Describe / Ping ---------------------------------------------------------------------

    async def Describe(
        self, request: pb.DescribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.DescribeResponse:
        return describe_response(
            self._tools, adapter_path=self._adapter_path, worker_id=self._worker_id
        )

    async def Ping(
        self, request: pb.PingRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.PingResponse:
        return pb.PingResponse(
            pid=os.getpid(),
            requests=self.requests,
            active=self.active,
            uptime_seconds=time.monotonic() - self._started,
        )

    async def Settle(
        self, request: pb.SettleRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SettleResponse:
        ids = list(request.request_ids)
        wait = request.wait_seconds if math.isfinite(request.wait_seconds) else 0.0
        pending = [job for job in self._jobs_of(ids) if not job.done()]
        if pending and wait > 0:
            waiting = [asyncio.wrap_future(job) for job in pending]
            await asyncio.wait(waiting, timeout=wait)
            for w in waiting:  # stop watching; a job that has not started is dropped with it
                w.cancel()
        running = [i for i in ids if any(not job.done() for job in self._jobs_of([i]))]
        return pb.SettleResponse(running=running)

    def _jobs_of(self, ids: list[int]) -> list[Future[Any]]:
        with self._jobs_lock:
            return [job for i in ids for job in self._jobs.get(i, ())]

    def _start_job(self, request_id: int, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``fn`` on a tool thread (in the caller's context), on record until it returns."""
        job = self._executor.submit(contextvars.copy_context().run, fn)
        with self._jobs_lock:
            self._jobs.setdefault(request_id, set()).add(job)
        job.add_done_callback(functools.partial(self._job_done, request_id))
        return asyncio.wrap_future(job)

    def _job_done(self, request_id: int, job: Future[Any]) -> None:
        with self._jobs_lock:
            jobs = self._jobs.get(request_id)
            if jobs is not None:
                jobs.discard(job)
                if not jobs:
                    del self._jobs[request_id]

    # -- Execute -----------------------------------------------------------------------------

    def _lookup(self, request: pb.ExecuteRequest) -> ToolInfo:
        return lookup(
            self._tools, request.tool, adapter_path=self._adapter_path, worker_id=self._worker_id
        )

    def _prepare(self, info: ToolInfo, request: pb.ExecuteRequest) -> Callable[[], Any]:
        """Decode and bind the arguments: the call, ready to run (big payloads: on a thread)."""
        return prepare(
            self._adapter,
            info,
            request,
            worker_id=self._worker_id,
            allow_pickle=self._allow_pickle,
        )

    def _payload(self, value: Any, what: str, encoding: int) -> pb.Payload:
        enc = (
            Encoding.PICKLE if encoding == Encoding.PICKLE and self._allow_pickle else Encoding.JSON
        )
        document, blobs = encode(value, what=what, encoding=enc)
        size = len(document) + sum(len(b) + _CHUNK_FRAMING for b in blobs)
        if size > self._budget:
            limit_mb = self._max_message / 2**20
            raise RequestError(
                f"{what} is {size / 2**20:.1f} MiB, more than the pool's "
                f"max_message_mb={limit_mb:g} allows in one message; raise max_message_mb "
                "or return (or yield) less at a time",
                size=size,
                max_message_mb=limit_mb,
            )
        return pb.Payload(document=document, blobs=blobs, encoding=enc.value)  # type: ignore[arg-type]

    async def _in_thread(self, job: Callable[[], Any], request_id: int) -> Any:
        raised, value = await self._start_job(request_id, functools.partial(_outcome, job))
        if raised:
            raise value
        return value

    async def _result(self, info: ToolInfo, request: pb.ExecuteRequest) -> pb.Payload:
        """Run a plain tool and encode its result. A sync tool's decoding, call and encoding
        all happen on its thread, so the event loop stays free to answer Ping."""
        what = f"result of tool {info.name!r}"
        encoding = request.args.encoding
        if info.kind == "async":
            value = await self._prepare(info, request)()
            return self._payload(value, what, encoding)

        def job() -> pb.Payload:
            return self._payload(self._prepare(info, request)(), what, encoding)

        payload: pb.Payload = await self._in_thread(job, request.request_id)
        return payload

    async def Execute(
        self, request: pb.ExecuteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ExecuteResponse:
        self.requests += 1
        self.active += 1
        tool_name: str | None = None
        try:
            info = self._lookup(request)
            tool_name = info.name
            if info.streaming:
                raise RequestError(
                    f"tool {tool_name!r} is a streaming tool (a generator); call it "
                    f"with stream({tool_name!r}, ...) instead of execute()",
                    tool=tool_name,
                )
            return pb.ExecuteResponse(result=await self._result(info, request))
        except BaseException as exc:
            if _cancelled(exc):
                raise
            # SystemExit, KeyboardInterrupt, GeneratorExit or a CancelledError raised by
            # the tool itself are its errors too: the call gets its answer, the worker stays.
            return pb.ExecuteResponse(error=error_info(exc, tool=tool_name))
        finally:
            self.active -= 1

    async def ExecuteStream(
        self, request: pb.ExecuteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.StreamItem]:
        self.requests += 1
        self.active += 1
        tool_name: str | None = None
        sent = True  # suspended at a yield: a GeneratorExit there is gRPC closing the stream
        try:
            info = self._lookup(request)
            tool_name = info.name
            what = f"chunk of tool {tool_name!r}"
            encoding = request.args.encoding
            sent = False
            if info.kind == "async_generator":
                async for chunk in self._prepare(info, request)():
                    sent = True
                    yield pb.StreamItem(chunks=[self._payload(chunk, what, encoding)])
                    sent = False
            elif info.kind == "generator":
                async for item in self._pump(
                    lambda: self._prepare(info, request)(), what, encoding, request.request_id
                ):
                    sent = True
                    yield item
                    sent = False
            else:  # a plain tool called as a stream answers with one chunk
                item = pb.StreamItem(chunks=[await self._result(info, request)])
                sent = True
                yield item
        except BaseException as exc:
            if _cancelled(exc) or (isinstance(exc, GeneratorExit) and sent):
                raise
            yield pb.StreamItem(error=error_info(exc, tool=tool_name))
        finally:
            self.active -= 1

    async def _pump(
        self,
        make_gen: Callable[[], Generator[Any, None, None]],
        what: str,
        encoding: int,
        request_id: int = 0,
    ) -> AsyncIterator[pb.StreamItem]:
        """Run a sync generator on a thread, encoding there, with a bounded window; yield
        the chunks ready at each moment as one message."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        space = threading.Semaphore(_STREAM_WINDOW)
        stop = threading.Event()

        def put(kind: int, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the loop closed: the worker is going away
                stop.set()

        def produce() -> None:
            try:
                gen = make_gen()
                try:
                    for chunk in gen:
                        item = self._payload(chunk, what, encoding)
                        space.acquire()
                        if stop.is_set():
                            return
                        put(0, item)
                finally:
                    gen.close()
            except BaseException as exc:
                put(1, exc)
                return
            put(2, None)

        producer = self._start_job(request_id, produce)
        held: tuple[int, Any] | None = None  # a chunk that did not fit the last message
        try:
            while True:
                kind, value = held if held is not None else await queue.get()
                held = None
                batch: list[pb.Payload] = []
                size = 0
                # Send every chunk that is ready in one message, not one RPC message per
                # chunk (small chunks stream many times faster), within the message limit.
                while kind == 0:
                    cost = value.ByteSize() + _CHUNK_FRAMING
                    if batch and size + cost > self._budget:
                        held = (kind, value)
                        break
                    space.release()
                    batch.append(value)
                    size += cost
                    if len(batch) >= _BATCH_CHUNKS or size >= _BATCH_BYTES or queue.empty():
                        kind = -1
                        break
                    kind, value = queue.get_nowait()
                if batch:
                    yield pb.StreamItem(chunks=batch)
                if kind == 1:
                    raise value
                if kind == 2:
                    break
        finally:
            stop.set()
            space.release()
            producer.cancel()  # one still queued behind busy threads never starts
            if producer.done() and not producer.cancelled():
                producer.result()
