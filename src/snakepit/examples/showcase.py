"""The showcase adapter: one tool for each thing a pool must handle.

Used by ``snakepit demo``, the documentation, the benchmarks and the tests.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from snakepit.adapter import Adapter, tool

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Showcase"]


class Showcase(Adapter):
    """Trivial tools, a failing one, a crashing one, a hanging one and a streaming one."""

    def setup(self) -> None:
        self._memory: dict[str, Any] = {}

    @tool
    def ping(self) -> dict[str, str]:
        """Answer at once: the cheapest possible call."""
        return {"status": "pong"}

    @tool
    def echo(self, value: Any) -> Any:
        """Return ``value`` unchanged (round trip of any JSON value or bytes)."""
        return value

    @tool
    def add(self, a: float, b: float) -> float:
        """Return ``a + b``."""
        return a + b

    @tool
    def pid(self) -> int:
        """Return the worker's operating-system process id."""
        return os.getpid()

    @tool
    def fail(self, message: str = "failed on purpose") -> None:
        """Raise ``ValueError(message)``: a tool error with a remote traceback."""
        raise ValueError(message)

    @tool
    def crash(self, code: int = 1) -> None:
        """End the worker process at once with exit ``code`` (no cleanup, no reply)."""
        os._exit(code)

    @tool
    def hang(self) -> None:
        """Block forever (until the process is killed), without using the CPU."""
        threading.Event().wait()

    @tool
    def count(self, n: int) -> Iterator[dict[str, int]]:
        """Stream ``{"i": 0}`` .. ``{"i": n-1}``."""
        for i in range(n):
            yield {"i": i}

    @tool
    def remember(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` in this worker's memory."""
        self._memory[key] = value

    @tool
    def recall(self, key: str) -> Any:
        """Return what ``remember`` stored under ``key`` in this worker (None if nothing)."""
        return self._memory.get(key)
