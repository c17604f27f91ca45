"""``WorkerService`` as served inside a worker process.

Synchronous tools run on a thread pool, so the event loop keeps answering
``Ping`` and health checks while a tool runs (or hangs). Every failure is
returned as a typed ``ErrorInfo`` in the response body; gRPC status codes are
left for transport failures, which the host reads as a broken worker.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._proto.snakepit.v1 import worker_pb2_grpc as pb_grpc
from snakepit._wire.errors import error_info
from snakepit.adapter._core import describe_response, lookup, prepare
from snakepit.codec import Encoding, encode
from snakepit.errors import RequestError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Generator
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    from snakepit.adapter._base import Adapter
    from snakepit.adapter._tools import ToolInfo

__all__ = ["WorkerServicer", "error_info"]

log = logging.getLogger("snakepit.adapter")

# Stream chunks the producer thread may run ahead of the gRPC writer.
_STREAM_WINDOW = 256
# The most chunks, and bytes, one StreamItem carries.
_BATCH_CHUNKS = 256
_BATCH_BYTES = 1 << 20


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
    ) -> None:
        self._adapter = adapter
        self._adapter_path = adapter_path
        self._worker_id = worker_id
        self._executor = executor
        self._allow_pickle = allow_pickle
        self._tools = type(adapter).tools()
        self._started = time.monotonic()
        self.requests = 0
        self.active = 0

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
        return pb.Payload(document=document, blobs=blobs, encoding=enc.value)  # type: ignore[arg-type]

    async def _in_thread(self, job: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, contextvars.copy_context().run, job)

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

        payload: pb.Payload = await self._in_thread(job)
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
        except Exception as exc:
            return pb.ExecuteResponse(error=error_info(exc, tool=tool_name))
        finally:
            self.active -= 1

    async def ExecuteStream(
        self, request: pb.ExecuteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.StreamItem]:
        self.requests += 1
        self.active += 1
        tool_name: str | None = None
        try:
            info = self._lookup(request)
            tool_name = info.name
            what = f"chunk of tool {tool_name!r}"
            encoding = request.args.encoding
            if info.kind == "async_generator":
                async for chunk in self._prepare(info, request)():
                    yield pb.StreamItem(chunks=[self._payload(chunk, what, encoding)])
            elif info.kind == "generator":
                async for item in self._pump(
                    lambda: self._prepare(info, request)(), what, encoding
                ):
                    yield item
            else:  # a plain tool called as a stream answers with one chunk
                yield pb.StreamItem(chunks=[await self._result(info, request)])
        except Exception as exc:
            yield pb.StreamItem(error=error_info(exc, tool=tool_name))
        finally:
            self.active -= 1

    async def _pump(
        self, make_gen: Callable[[], Generator[Any, None, None]], what: str, encoding: int
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

        ctx = contextvars.copy_context()
        producer = loop.run_in_executor(self._executor, ctx.run, produce)
        try:
            while True:
                kind, value = await queue.get()
                batch: list[pb.Payload] = []
                size = 0
                # Send every chunk that is ready in one message (bounded), not one RPC
                # message per chunk: small chunks stream many times faster.
                while kind == 0:
                    space.release()
                    batch.append(value)
                    size += value.ByteSize()
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
            if producer.done() and not producer.cancelled():
                producer.result()
