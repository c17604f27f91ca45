"""Adapters for tests: ones that fail on purpose in each way a worker can fail to start."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import TYPE_CHECKING

from snakepit.adapter import Adapter, tool

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

__all__ = [
    "FailingSetup",
    "HangingSetup",
    "Minimal",
    "MockAdapter",
    "Noisy",
    "RaisesBaseExceptions",
    "Streams",
]


class Minimal(Adapter):
    """One tool, ``ping``; the cheapest adapter to start."""

    @tool
    def ping(self) -> dict[str, str]:
        return {"status": "pong"}


class FailingSetup(Adapter):
    """``setup()`` raises, so the worker exits with code 4 before it is ready."""

    def setup(self) -> None:
        raise RuntimeError("FailingSetup.setup refuses to start (on purpose)")

    @tool
    def ping(self) -> dict[str, str]:  # pragma: no cover - never reached
        return {"status": "pong"}


class HangingSetup(Adapter):
    """``setup()`` never returns, so the worker never prints its ready line."""

    def setup(self) -> None:
        threading.Event().wait()


class Noisy(Adapter):
    """Writes to stderr the way real libraries do: a lot, and without newlines."""

    @tool
    def shout(self, size: int) -> int:
        """Write ``size`` bytes to stderr as one line with no newline; return ``size``."""
        sys.stderr.write("x" * size)
        sys.stderr.flush()
        return size

    @tool
    def ping(self) -> dict[str, str]:
        return {"status": "pong"}


class MockAdapter(Adapter):
    """Safe to run in-process (``snakepit.testing.mock``): no tool exits or blocks the process.

    Crashes and hangs are injected from the test through ``MockWorker.crash()``/``hang_next()``.
    """

    @tool
    def ping(self) -> dict[str, str]:
        return {"status": "pong"}

    @tool
    def echo(self, value: object) -> object:
        return value

    @tool
    def add(self, a: float, b: float) -> float:
        return a + b

    @tool
    def fail(self, message: str = "failed on purpose") -> None:
        raise ValueError(message)

    @tool
    def count(self, n: int) -> Iterator[dict[str, int]]:
        for i in range(n):
            yield {"i": i}


class Streams(Adapter):
    """Streaming tools for tests: big chunks, async generators, failures mid-stream."""

    @tool
    def blobs(self, n: int, size: int) -> Iterator[bytes]:
        """Yield ``n`` chunks of ``size`` bytes each (chunk i is filled with byte i % 256)."""
        for i in range(n):
            yield bytes([i % 256]) * size

    @tool
    async def ticks(self, n: int) -> AsyncIterator[int]:
        """An async generator: yield 0..n-1."""
        for i in range(n):
            yield i

    @tool
    async def wait_forever(self) -> None:
        """An async tool that never finishes by itself (cancelling the call cancels it)."""
        await asyncio.Event().wait()

    @tool
    async def ticks_total(self, n: int) -> int:
        """An async tool: the sum of 0..n-1."""
        return sum(range(n))

    @tool
    def stall_after(self, n: int) -> Iterator[int]:
        """Yield 0..n-1, then block forever between chunks, without using the CPU (closing
        the stream cannot stop it: its thread stays blocked until the process ends)."""
        yield from range(n)
        threading.Event().wait()

    @tool
    def fail_after(self, n: int) -> Iterator[int]:
        """Yield 0..n-1, then raise RuntimeError."""
        yield from range(n)
        raise RuntimeError(f"stream broke after {n} chunks")


def _base_exception(kind: str) -> BaseException:
    return {
        "SystemExit": SystemExit(3),
        "KeyboardInterrupt": KeyboardInterrupt(),
        "GeneratorExit": GeneratorExit(),
        "StopIteration": StopIteration(),
        "CancelledError": asyncio.CancelledError(),
    }[kind]


class RaisesBaseExceptions(Adapter):
    """Tools that raise what is not an ``Exception`` (``SystemExit``, ``KeyboardInterrupt``,
    ``GeneratorExit``, ``CancelledError``) or ``StopIteration``, from each kind of tool."""

    @tool
    def sync(self, kind: str) -> None:
        raise _base_exception(kind)

    @tool
    async def coroutine(self, kind: str) -> None:
        raise _base_exception(kind)

    @tool
    def generator(self, kind: str) -> Iterator[int]:
        yield 0
        raise _base_exception(kind)

    @tool
    async def async_generator(self, kind: str) -> AsyncIterator[int]:
        yield 0
        raise _base_exception(kind)

    @tool
    def pid(self) -> int:
        return os.getpid()
