"""Adapters for tests: ones that fail on purpose in each way a worker can fail to start."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from snakepit.adapter import Adapter, tool

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["FailingSetup", "HangingSetup", "Minimal", "MockAdapter"]


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
