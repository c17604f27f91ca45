"""Adapters for tests: ones that fail on purpose in each way a worker can fail to start."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

from snakepit.adapter import Adapter, tool

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

__all__ = [
    "FailingSetup",
    "ForkProbe",
    "HangingSetup",
    "Helpers",
    "Minimal",
    "MockAdapter",
    "Noisy",
    "Probe",
    "RaisesBaseExceptions",
    "Streams",
    "WireValues",
]

#: The process that imported this module: with the fork server, the template.
_IMPORTED_IN = os.getpid()


class Minimal(Adapter):
    """One tool, ``ping``; the cheapest adapter to start."""

    @tool
    def ping(self) -> dict[str, str]:
        return {"status": "pong"}


class ForkProbe(Adapter):
    """Reports where its module was imported and its ``setup()`` ran, and its process."""

    def setup(self) -> None:
        self._setup_in = os.getpid()
        self._random = random.random()

    @tool
    def probe(self, env: str = "") -> dict[str, Any]:
        """Pids (own, parent, import, setup), session and group, cwd, ``env``'s value,
        and a random number drawn in ``setup()``."""
        return {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "imported_in": _IMPORTED_IN,
            "setup_in": self._setup_in,
            "sid": os.getsid(0),
            "pgid": os.getpgid(0),
            "cwd": os.getcwd(),
            "env": os.environ.get(env) if env else None,
            "random": self._random,
        }

    @tool
    def crash(self, code: int = 1) -> None:
        """End the worker at once with exit ``code``."""
        os._exit(code)


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
    def say(self, text: str) -> None:
        """Write ``text`` to stderr as it is, control characters and all."""
        sys.stderr.write(text)
        sys.stderr.flush()

    @tool
    def ping(self) -> dict[str, str]:
        return {"status": "pong"}


class MockAdapter(Adapter):
    """Safe to run in-process (``snakepit.testing._mock``): no tool exits or blocks the process.

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
        import asyncio

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


class WireValues(Adapter):
    """Results at the edges of the value contract: bytes-likes, non-finite floats, deep nesting."""

    @tool
    def bytes_like(self, kind: str, data: bytes) -> object:
        """``data`` returned as a ``bytearray``, a ``memoryview`` or a strided ``memoryview``."""
        if kind == "bytearray":
            return bytearray(data)
        if kind == "memoryview":
            return memoryview(data)
        return memoryview(data)[::2]

    @tool
    def non_finite(self) -> list[float]:
        """NaN, +Infinity and -Infinity, which JSON has no tokens for."""
        return [float("nan"), float("inf"), float("-inf")]

    @tool
    def nested(self, depth: int) -> object:
        """A value ``depth`` lists deep with bytes at the bottom."""
        value: object = b"bottom"
        for _ in range(depth):
            value = [value]
        return value

    @tool
    def forged_error(self, details: dict[str, object]) -> None:
        """Raise a snakepit error whose details use names that would break the class."""
        from snakepit.errors import ToolError

        err = ToolError("forged details on purpose")
        err.details = dict(details)
        raise err


# A helper that starts a helper of its own and waits; neither reads stdin nor watches its
# parent, so only a signal to the worker's process group ends them.
_HELPER = "sleep 86400 & echo $!; wait"


class Helpers(Adapter):
    """Starts helper processes the way real libraries do (a server, a pool of its own), and
    dies in the ways a worker dies on its own, for tests that no helper outlives its worker."""

    def setup(self) -> None:
        self._helpers: list[subprocess.Popen[bytes]] = []

    @tool
    def spawn_helpers(self, hold_pipes: bool = False) -> list[int]:
        """Start a child that starts a grandchild, both in this worker's process group;
        return ``[child, grandchild]``. With ``hold_pipes`` they inherit the worker's
        stderr, so the host's end of that pipe sees no end of file while they live."""
        quiet = None if hold_pipes else subprocess.DEVNULL
        child = subprocess.Popen(
            ["/bin/sh", "-c", _HELPER],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=quiet,
        )
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        self._helpers.append(child)
        return [child.pid, grandchild]

    @tool
    def pid(self) -> int:
        return os.getpid()

    @tool
    def die(self, code: int = 1) -> None:
        """Exit at once, as a crash does (no cleanup, helpers left running)."""
        os._exit(code)

    @tool
    def hang(self) -> None:
        """Block forever (a deadline kills the worker)."""
        threading.Event().wait()

    @tool
    def ping(self) -> dict[str, str]:
        return {"status": "pong"}


def _base_exception(kind: str) -> BaseException:
    import asyncio  # as the pool's workers do: only when needed

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
