"""The local worker's process: its channel on fd 0, its signals, its adapter's set-up and end.

The worker side of the local transport is a plain synchronous loop, no event
loop and no gRPC on the hot path. Its pieces: :mod:`~snakepit.adapter._local_worker`
(reading and dispatching frames), :mod:`~snakepit.adapter._local_calls` (running
one call), :mod:`~snakepit.adapter._local_sink` (a stream going out,
flow-controlled by credits), :mod:`~snakepit.adapter._local_crew` (the threads)
and :mod:`~snakepit.adapter._local_link` (the channel, and the worker's own calls
to the host on it). This module is the process around them; the in-process test
worker (:mod:`snakepit.testing._inprocess`) uses the same pieces without it.

The channel is moved off fd 0 (which then reads /dev/null), so a subprocess a
tool starts does not inherit it; the host's death is the channel's EOF.
The framing is specified in ``proto/snakepit/v1/FRAMING.md``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import signal
import socket
import threading
import traceback
from typing import TYPE_CHECKING, Any

from snakepit.adapter import _host_client as host_client
from snakepit.adapter._local_crew import LoopThread
from snakepit.adapter._local_link import Conn
from snakepit.adapter._local_worker import LocalWorker

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable

    from snakepit.adapter._base import Adapter

__all__ = ["EXIT_IMPORT", "EXIT_SETUP", "StartFailed", "serve", "set_up", "tear_down"]

log = logging.getLogger("snakepit.adapter")
EXIT_IMPORT, EXIT_SETUP = 3, 4
_SOCKET_BUFFER = 4 * 1024 * 1024


class _Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGINT: stop gracefully."""


class StartFailed(Exception):
    """Raised when the adapter cannot be loaded or set up; carries the exit code and why."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# -- the process -----------------------------------------------------------------------------------


def _maybe_run(result: Awaitable[None] | None, loop: LoopThread, timeout: float | None) -> None:
    if inspect.isawaitable(result):

        async def wait() -> None:
            await result

        loop.run(wait(), timeout)


def set_up(path: str, load_adapter: Callable[[str], Any], loop: LoopThread) -> Adapter:
    """Load the adapter ``path`` names and run its ``setup()`` (an async one on ``loop``).

    Raises:
        StartFailed: it could not be imported (``EXIT_IMPORT``) or its setup raised
            (``EXIT_SETUP``); the reason carries the traceback.
    """
    try:
        adapter = load_adapter(path)
    except Exception:
        raise StartFailed(
            EXIT_IMPORT, f"cannot load adapter {path}:\n{traceback.format_exc()}"
        ) from None
    try:
        _maybe_run(adapter.setup(), loop, None)
    except Exception:
        raise StartFailed(
            EXIT_SETUP, f"setup() of {path} failed:\n{traceback.format_exc()}"
        ) from None
    return adapter  # type: ignore[no-any-return]


def tear_down(adapter: Adapter, path: str, loop: LoopThread) -> None:
    """Run the adapter's ``teardown()``, bounded; its failure is logged, never raised."""
    try:
        _maybe_run(adapter.teardown(), loop, 5.0)
    except Exception:
        log.warning("teardown() of %s failed:\n%s", path, traceback.format_exc())


_open_channels: list[socket.socket] = []


class _Signals:
    """SIGTERM/SIGINT: during start-up, interrupt it; once serving, stop reading (the crew
    sees the channel end) and let the main thread stop gracefully."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.serving = False
        self.stopping = False
        signal.signal(signal.SIGTERM, self.handle)
        signal.signal(signal.SIGINT, self.handle)

    def handle(self, signum: int, frame: Any) -> None:
        self.stopping = True
        if not self.serving:
            raise _Stop
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)


def serve(
    args: argparse.Namespace,
    load_adapter: Callable[[str], Any],
    exit_now: Callable[[int], Any],
) -> int:
    """Run the local worker on the channel at fd 0; the exit code.

    ``exit_now`` leaves the process at once (used when the host is gone and a tool hangs).
    """
    os.dup2(2, 1)  # a stray print() lands in the forwarded log, never on the channel
    channel = os.dup(0)  # non-inheritable: a tool's subprocess does not get the channel
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sock = socket.socket(fileno=channel)
    _open_channels.append(sock)  # open until the process ends: its EOF tells the host we exited
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        with contextlib.suppress(OSError):  # refused by a strict kernel limit: keep the default
            sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
    conn = Conn(sock, args.max_message_bytes)
    loop = LoopThread()
    signals = _Signals(sock)
    adapter: Adapter | None = None
    try:
        try:
            adapter = set_up(args.adapter, load_adapter, loop)
        except StartFailed as failed:
            log.error("%s", failed.reason)
            return failed.code
        worker = LocalWorker(
            adapter,
            conn,
            adapter_path=args.adapter,
            worker_id=args.worker_id,
            threads=args.threads,
            allow_pickle=args.allow_pickle,
            loop=loop,
        )
        host_client.configure(worker.host)
        worker.announce()
        signals.serving = True
        if not signals.stopping:
            worker.run(args.threads)
        if not signals.stopping:
            log.warning("the host closed the connection: the host is gone; exiting")
            # A tool stuck in native code would block a graceful stop: bound it, then leave.
            threading.Timer(3.0, exit_now, args=(0,)).start()
        else:
            log.info("worker %s stopping", args.worker_id)
            worker.drain(1.0)
    except _Stop:
        log.info("worker %s stopping before it served", args.worker_id)
    if adapter is not None:
        tear_down(adapter, args.adapter, loop)
    return 0
