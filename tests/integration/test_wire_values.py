"""The value contract end to end: what a worker returns arrives exactly, or as a typed error."""

from __future__ import annotations

import math

import pytest

import snakepit
from snakepit.codec import MAX_DEPTH
from snakepit.testing import isolated_pool

VALUES = "snakepit.testing.adapters:WireValues"
STREAMS = "snakepit.testing.adapters:Streams"


class TestResults:
    @pytest.mark.parametrize("kind", ["bytearray", "memoryview", "strided"])
    async def test_bytes_like_results_and_args_arrive_as_bytes(self, kind: str) -> None:
        """bytearray and memoryview travel as raw blobs both ways, like bytes."""
        async with isolated_pool(VALUES) as pool:
            data = bytearray(b"\x00\x01snake\xff")
            expected = bytes(data) if kind != "strided" else bytes(data)[::2]
            assert await pool.execute("bytes_like", {"kind": kind, "data": data}) == expected
            view = memoryview(bytes(data))
            assert await pool.execute("bytes_like", {"kind": kind, "data": view}) == expected

    async def test_non_finite_floats_round_trip_from_a_worker(self) -> None:
        """NaN and infinities come back exactly (as contract markers, not bare JSON tokens)."""
        async with isolated_pool(VALUES) as pool:
            nan, inf, neg = await pool.execute("non_finite")
            assert math.isnan(nan) and inf == math.inf and neg == -math.inf

    async def test_a_too_deep_result_is_a_serialization_error_and_the_worker_stays(self) -> None:
        """A result nested past MAX_DEPTH (480 deep was a raw RecursionError on decode) is a
        SerializationError naming the path, and the worker keeps serving."""
        async with isolated_pool(VALUES) as pool:
            assert await pool.execute("nested", {"depth": MAX_DEPTH - 1}) is not None
            with pytest.raises(snakepit.SerializationError, match="result of tool 'nested'"):
                await pool.execute("nested", {"depth": 480})
            assert await pool.execute("non_finite") is not None
            assert len(pool.workers()) == 1

    async def test_error_details_that_would_break_the_class_are_dropped(self) -> None:
        """A worker's error with details named message/__class__/args is still a ToolError."""
        async with isolated_pool(VALUES) as pool:
            forged = {"message": "x", "__class__": 1, "args": 5, "hint": "kept"}
            with pytest.raises(snakepit.ToolError, match="forged details") as info:
                await pool.execute("forged_error", {"details": forged})
            assert info.value.hint == "kept"
            assert info.value.message == "forged details on purpose"


class TestStreamBatching:
    async def test_chunks_that_fit_one_at_a_time_all_arrive(self) -> None:
        """With max_message_mb=1, two 600 kB chunks go in two messages instead of failing."""
        async with isolated_pool(STREAMS, max_message_mb=1) as pool:
            size = 600_000
            chunks = [c async for c in pool.stream("blobs", {"n": 5, "size": size})]
            assert chunks == [bytes([i]) * size for i in range(5)]

    async def test_a_chunk_over_the_limit_is_a_typed_error_naming_it(self) -> None:
        """The chunks before it arrive; the one too big for any message is a RequestError."""
        async with isolated_pool(STREAMS, max_message_mb=1) as pool:
            stream = pool.stream("blobs", {"n": 1, "size": (1 << 20) + 1})
            with pytest.raises(snakepit.RequestError, match="max_message_mb=1") as info:
                await anext(stream)
            assert info.value.max_message_mb == 1
            assert [c async for c in pool.stream("blobs", {"n": 2, "size": 10})] == [
                b"\x00" * 10,
                b"\x01" * 10,
            ]
