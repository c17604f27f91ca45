"""Functions the Executor tests send to worker processes (importable there by reference)."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from typing import Any

INITIALIZER_STATUS = "uninitialized"


def mul(x: int, y: int) -> int:
    return x * y


def capture(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


def raise_runtime_error() -> None:
    raise RuntimeError(123)  # some comment


def wait_gate(address: str) -> str:
    """Tell the test this task started, then block until it opens the gate (never a delay)."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(address)
        conn.sendall(b"s")
        return conn.recv(16).decode()


def wait_if_address(value: int | str) -> int | str:
    return wait_gate(value) if isinstance(value, str) else value


class Gate:
    """The test's side of :func:`wait_gate`: an abstract Unix socket (no path, no cleanup)."""

    def __init__(self) -> None:
        self.address = f"\0snakepit-gate-{uuid.uuid4().hex}"
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(self.address)
        self._server.listen(64)
        self._conns: list[socket.socket] = []

    def wait_started(self, count: int = 1, timeout: float = 15.0) -> None:
        """Return once ``count`` more tasks are inside :func:`wait_gate`."""
        self._server.settimeout(timeout)
        for _ in range(count):
            conn, _ = self._server.accept()
            conn.settimeout(timeout)
            assert conn.recv(1) == b"s"
            self._conns.append(conn)

    def open(self, text: str = "go") -> None:
        """Let every started task finish (a task whose worker died is skipped)."""
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.sendall(text.encode())
            conn.close()
        self._conns.clear()

    def close(self) -> None:
        self.open()
        self._server.close()


def init(x: str) -> None:
    global INITIALIZER_STATUS
    INITIALIZER_STATUS = x


def get_init_status() -> str:
    return INITIALIZER_STATUS


def init_fail() -> None:
    raise ValueError("error in initializer")


def die(code: int) -> None:
    os._exit(code)


class MyObject:
    def my_method(self) -> None:
        pass


def make_dummy_object(_: object) -> MyObject:
    return MyObject()


class TwoArgError(Exception):
    """An exception pickle cannot rebuild (its __init__ needs two arguments)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")


def raise_two_arg_error() -> None:
    raise TwoArgError("x", "y")
