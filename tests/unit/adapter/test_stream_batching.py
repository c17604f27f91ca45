"""A gRPC worker's stream batching, without a process: the chunks ready at one moment go in
one message, no message outgrows the limit, and a chunk too big for any is a typed error."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._wire import decode, to_payload
from snakepit.adapter import Adapter, tool
from snakepit.adapter._service import WorkerServicer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

BOUND = 10.0


class Chunks(Adapter):
    def setup(self) -> None:
        self.go = threading.Event()
        self.produced = threading.Event()
        self.finish = threading.Event()

    @tool
    def paced(self, n: int) -> Iterator[int]:
        """One chunk, then (on ``go``) ``n`` more at once, then (on ``finish``) the end."""
        yield 0
        assert self.go.wait(BOUND)
        yield from range(1, n + 1)
        self.produced.set()  # every chunk above is in the servicer's queue by now
        assert self.finish.wait(BOUND)

    @tool
    def sized(self, n: int, size: int) -> Iterator[str]:
        for i in range(n):
            yield str(i % 10) * size

    @tool
    def failing(self) -> Iterator[int]:
        yield 1
        raise ValueError("no more")


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as pool:
        yield pool


def _servicer(adapter: Adapter, executor: ThreadPoolExecutor, limit: int) -> WorkerServicer:
    return WorkerServicer(
        adapter,
        adapter_path="tests:Chunks",
        worker_id="w1",
        executor=executor,
        max_message_bytes=limit,
    )


def _items(servicer: WorkerServicer, tool_name: str, **args: Any) -> AsyncIterator[pb.StreamItem]:
    request = pb.ExecuteRequest(tool=tool_name, args=to_payload(args, "args"))
    return servicer.ExecuteStream(request, None)  # type: ignore[arg-type]


def _values(item: pb.StreamItem) -> list[Any]:
    return [decode(c.document, list(c.blobs)) for c in item.chunks]


class TestBatches:
    async def test_the_chunks_ready_at_one_moment_go_in_one_message(
        self, executor: ThreadPoolExecutor
    ) -> None:
        adapter = Chunks()
        adapter.setup()
        items = _items(_servicer(adapter, executor, 2**20), "paced", n=9)
        try:
            assert _values(await anext(items)) == [0]
            adapter.go.set()
            assert await asyncio.to_thread(adapter.produced.wait, BOUND)
            assert _values(await anext(items)) == list(range(1, 10))
            adapter.finish.set()
            assert [i async for i in items] == []
        finally:  # a failed assertion must not leave the tool's thread waiting
            adapter.go.set()
            adapter.finish.set()
            await items.aclose()  # type: ignore[attr-defined]

    async def test_no_message_outgrows_the_limit_and_nothing_is_lost(
        self, executor: ThreadPoolExecutor
    ) -> None:
        limit = 4096 + 1000  # 1000 bytes of chunks per message
        items = [
            i async for i in _items(_servicer(Chunks(), executor, limit), "sized", n=40, size=300)
        ]
        assert all(i.ByteSize() <= 1000 + 64 for i in items)
        assert max(len(i.chunks) for i in items) <= 3
        assert [v for i in items for v in _values(i)] == [str(k % 10) * 300 for k in range(40)]

    async def test_a_chunk_too_big_for_any_message_is_a_request_error(
        self, executor: ThreadPoolExecutor
    ) -> None:
        items = [
            i
            async for i in _items(_servicer(Chunks(), executor, 4096 + 100), "sized", n=1, size=500)
        ]
        assert items[-1].error.kind == "RequestError"
        assert "max_message_mb" in items[-1].error.message

    async def test_a_failing_generator_ends_the_stream_with_its_error_after_its_chunks(
        self, executor: ThreadPoolExecutor
    ) -> None:
        items = [i async for i in _items(_servicer(Chunks(), executor, 2**20), "failing")]
        assert [v for i in items for v in _values(i)] == [1]
        assert items[-1].error.kind == "ToolError"
        assert "ValueError: no more" in items[-1].error.message
