"""A unit test starts no process: one that does fails, naming what it started. And the host
bridge, in process (``host``), for the tests of the bridge service and the worker's client."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.bridge_host import host

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["host"]

_SPAWNING = {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.exec"}
_ROOT = Path(__file__).resolve().parents[2]
_started: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _started is not None and event in _SPAWNING:
        _started.append(f"{event} {str(args[1] if event == 'subprocess.Popen' else '')[:80]}")


sys.addaudithook(_audit)  # process-wide and permanent, so it does nothing outside a unit test


@pytest.fixture(autouse=True)
def _no_process() -> Iterator[None]:
    global _started
    _started = []
    try:
        yield
        started = _started
    finally:
        _started = None
    assert not started, (
        f"a unit test started a process ({'; '.join(started)}): move it to tests/integration"
    )
