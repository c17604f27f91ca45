"""Adapters for tests: ones that fail on purpose in each way a worker can fail to start."""

from __future__ import annotations

import asyncio
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
    "Probe",
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
    def fail_after(self, n: int) -> Iterator[int]:
        """Yield 0..n-1, then raise RuntimeError."""
        yield from range(n)
        raise RuntimeError(f"stream broke after {n} chunks")


class Probe(Adapter):
    """Tools that report on the worker process itself (imports, stdin, stream production)."""

    produced = 0

    @tool
    def modules(self, prefix: str) -> list[str]:
        """The imported modules whose names start with ``prefix``."""
        return sorted(m for m in sys.modules if m == prefix or m.startswith(prefix + "."))

    @tool
    def stdin_kind(self) -> str:
        """What the worker's fd 0 is: "socket", "fifo", "chr" (e.g. /dev/null) or "other"."""
        import os
        import stat

        mode = os.fstat(0).st_mode
        if stat.S_ISSOCK(mode):
            return "socket"
        if stat.S_ISFIFO(mode):
            return "fifo"
        return "chr" if stat.S_ISCHR(mode) else "other"

    @tool
    def endless(self, size: int = 1) -> Iterator[bytes]:
        """Yield chunks of ``size`` bytes for ever, counting them in :meth:`produced_count`."""
        while True:
            Probe.produced += 1
            yield b"x" * size

    @tool
    def hold(self, value: bytes) -> int:
        """Receive ``value`` and never return (a call to kill mid-way)."""
        threading.Event().wait()
        return len(value)  # pragma: no cover - never reached

    @tool
    def echo(self, value: bytes) -> bytes:
        """Return ``value``."""
        return value

    @tool
    def produced_count(self) -> int:
        """How many chunks :meth:`endless` has made so far in this worker."""
        return Probe.produced
