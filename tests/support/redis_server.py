"""A real ``redis-server`` for tests: a free loopback port, a temporary directory, no persistence.

redis-server cannot bind port 0, so a free port is found by binding a socket
to port 0 and closing it; if another process takes it first, redis-server
says so and the start is retried on a new port. Readiness is its own
"Ready to accept connections" line, read with a bounded wait (no sleep).
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

READY = "Ready to accept connections"
START_BOUND = 10.0  # seconds a start may take; a bound, never a delay
_ATTEMPTS = 5


def redis_server_binary() -> str | None:
    """The path of ``redis-server``, or None when it is not installed."""
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# redis-server must die with this process (PR_SET_PDEATHSIG, kept across exec). Set in a
# preexec_fn, it made the fork run the at-fork hooks of gRPC, whose threads earlier tests of
# this xdist worker left running: now and then the child failed before exec ("epoll_wait
# error: Bad file descriptor") and every Redis test of the worker errored. Without a
# preexec_fn there are no hooks; a small interpreter sets the signal and execs the server.
_DIE_WITH_PARENT = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
except Exception:
    pass
os.execv(sys.argv[1], sys.argv[1:])
"""


@dataclass
class RedisServer:
    """One running redis-server; ``stop()`` ends it (idempotent), ``kill()`` SIGKILLs it."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path
    output: list[str] = field(default_factory=list)
    _drain: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(START_BOUND)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(START_BOUND)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(START_BOUND)
        if self._drain is not None:
            self._drain.join(START_BOUND)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _wait_ready(process: subprocess.Popen[bytes], output: list[str]) -> bool:
    """Read the server's output until it is ready (True) or exits or runs out of time (False).

    Reads the raw pipe (no buffered reader that could hold the line select cannot see).
    """
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + START_BOUND
    text = ""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            text += chunk.decode(errors="replace")
            if READY in text:
                output.extend(text.splitlines(keepends=True))
                return True
    output.extend(text.splitlines(keepends=True))
    return False


def _drain(process: subprocess.Popen[bytes], output: list[str]) -> None:
    assert process.stdout is not None
    while chunk := os.read(process.stdout.fileno(), 65536):
        output.append(chunk.decode(errors="replace"))


def start_redis_server(directory: Path) -> RedisServer:
    """Start redis-server on a free loopback port in ``directory``; return once it is ready.

    Raises:
        RuntimeError: it did not become ready (its output is in the message).
    """
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    output: list[str] = []
    for _ in range(_ATTEMPTS):
        port = _free_port()
        command = [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, binary]
        command += ["--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(directory), "--loglevel", "notice"]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,
        )
        output = []
        if _wait_ready(process, output):
            server = RedisServer(process, port, directory, output)
            # Keep reading its log so that a full pipe never blocks it.
            server._drain = threading.Thread(
                target=_drain,
                args=(process, output),
                name=f"redis-server-{port}-log",
                daemon=True,
            )
            server._drain.start()
            return server
        if process.poll() is None:
            process.kill()
        process.wait(START_BOUND)
        if process.stdout is not None:
            process.stdout.close()
        if not any("Address already in use" in line for line in output):
            break  # not a port race: retrying will not help
    raise RuntimeError("redis-server did not start:\n" + "".join(output[-20:]))
