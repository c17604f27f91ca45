"""Adapters the suite runs in real workers (importable there: workers see the host's sys.path)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from snakepit import Adapter, tool
from tests.support.executor_tasks import wait_gate


def _crash_until(path: str, crashes: int) -> int:
    """Count this run in ``path``; die while fewer than ``crashes`` runs died before."""
    counter = Path(path)
    runs = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(runs + 1))
    if runs < crashes:
        os._exit(9)
    return runs + 1


class RetryTools(Adapter):
    @tool(idempotent=True)
    def idempotent_crash(self, path: str, crashes: int) -> int:
        """Dies the first ``crashes`` times; then returns how many times it ran."""
        return _crash_until(path, crashes)

    @tool
    def plain_crash(self, path: str, crashes: int) -> int:
        return _crash_until(path, crashes)

    @tool(idempotent=True)
    def idempotent_fail(self, path: str) -> None:
        _crash_until(path, 0)
        raise ValueError("a tool error is never retried")

    @tool
    def gate(self, address: str) -> str:
        return wait_gate(address)

    @tool
    def hang(self) -> None:
        threading.Event().wait()  # until the pool kills this worker

    @tool
    def count(self, n: int):  # type: ignore[no-untyped-def]
        yield from range(n)

    @tool
    def say(self, text: str) -> None:
        print(text)

    @tool
    def exit_with(self, code: int) -> None:
        sys.exit(code)
