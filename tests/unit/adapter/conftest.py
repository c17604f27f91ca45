"""A worker's end of a channel whose host end the test reads frame by frame."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from snakepit._wire._framing import Frame, FrameBuffer
from snakepit.adapter._local_link import Conn

if TYPE_CHECKING:
    from collections.abc import Iterator


class HostEnd:
    """The host's end of the socket pair: the frames the worker sent, as they are sent."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._frames = FrameBuffer(1 << 24)
        self._ready: list[Frame] = []

    def _pull(self, *, block: bool) -> None:
        self.sock.setblocking(block)
        self.sock.settimeout(5.0 if block else 0.0)
        try:
            data = self.sock.recv(1 << 20)
        except (BlockingIOError, TimeoutError):
            return
        self._frames.feed(data)
        self._ready.extend(self._frames.frames())

    def next(self) -> Frame:
        """The next frame the worker sent (waits up to 5 s for it)."""
        while not self._ready:
            self._pull(block=True)
        return self._ready.pop(0)

    def nothing_sent(self) -> bool:
        self._pull(block=False)
        return not self._ready


@pytest.fixture
def channel() -> Iterator[tuple[Conn, HostEnd]]:
    worker, host = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        yield Conn(worker, 1 << 20), HostEnd(host)
    finally:
        worker.close()
        host.close()
