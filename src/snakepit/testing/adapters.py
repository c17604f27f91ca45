"""Adapters for tests: ones that fail on purpose in each way a worker can fail to start."""

from __future__ import annotations

import threading

from snakepit.adapter import Adapter, tool

__all__ = ["FailingSetup", "HangingSetup", "Minimal"]


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
