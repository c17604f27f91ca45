"""The functions the executor peers run, importable so that they pickle by reference.

The control objects (a semaphore, an event, a queue) reach each worker through the
pool's ``initializer``, the one channel every peer passes to a new process, fork
or spawn alike. They let the host force distinct workers to answer (``gate_pid``)
and learn which process runs a long task (``hang``) without sleeping or polling.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_arrived: Any = None
_go: Any = None
_report: Any = None


def init_control(arrived: Any, go: Any, report: Any) -> None:
    """Pool initializer: keep the host's control objects in this worker."""
    global _arrived, _go, _report
    _arrived, _go, _report = arrived, go, report


def ping() -> dict[str, str]:
    """The trivial call, the same answer as snakepit's ``ping`` tool."""
    return {"status": "pong"}


def echo(value: bytes) -> bytes:
    """Bytes in, the same bytes out."""
    return value


def getpid() -> int:
    """The worker's process id."""
    return os.getpid()


def gate_pid(timeout: float) -> int:
    """Hold this worker until the host opens the gate, then answer its pid.

    The host submits N of these and waits until N have arrived: N distinct
    workers are then each running one, since none returns before the gate opens.
    """
    _arrived.release()
    if not _go.wait(timeout):
        raise TimeoutError("the host never opened the gate")
    return os.getpid()


def hang(timeout: float) -> int:
    """A long task: report this worker's pid to the host, then block until killed."""
    _report.put(os.getpid())
    _report.close()
    _report.join_thread()  # flushed, and the queue's lock released, before we can be killed
    _arrived.release()
    threading.Event().wait(timeout)
    return os.getpid()
