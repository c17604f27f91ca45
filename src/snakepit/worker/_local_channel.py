"""The host's end of a local worker's socket: frames in as they arrive, frames out per loop turn.

Driven by the event loop (``add_reader``/``add_writer`` on the raw socket, because
shared-memory blobs arrive as descriptors that asyncio's stream transports cannot
carry). Frames written in one turn of the loop go out in one ``send``; a frame with
descriptors goes on a ``sendmsg`` of its own, the descriptors on its first byte.
:class:`~snakepit.worker._local.LocalTransport` builds its calls on it.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import os
import socket

from snakepit._wire._framing import ANCILLARY_SIZE, Frame, FrameBuffer, ProtocolError, received_fds
from snakepit.worker._transport import TransportError

__all__ = ["FrameChannel"]

_RECV = 256 * 1024
_SOCKET_BUFFER = 4 * 1024 * 1024


class FrameChannel:
    """The socket of one local worker, seen from the host.

    A subclass handles each frame (:meth:`_on_frame`), fails what waits on the
    channel when it breaks (:meth:`_fail_all`), and says whether other calls are in
    flight to share a ``send`` with (:meth:`_shares_sends`).

    Args:
        sock: the host's end of the socket pair (the worker has the other as stdin).
        worker_id: for errors.
        max_message_bytes: the largest message either way.
    """

    def __init__(self, sock: socket.socket, *, worker_id: str, max_message_bytes: int) -> None:
        self.worker_id = worker_id
        self._sock = sock
        self._fd = sock.fileno()
        self._limit = max_message_bytes
        self._loop = asyncio.get_running_loop()
        self._frames = FrameBuffer(max_message_bytes + 1024 * 1024)
        # One buffer for every read: recvmsg(n) would allocate (and map) n bytes per call.
        self._recv_buf = bytearray(_RECV)
        self._out: list[bytes] = []
        self._out_fds: list[tuple[int, list[int]]] = []  # (index in _out, fds sent with it)
        self._flush_scheduled = False
        self._writing = False
        self._closed = False
        self._lost: TransportError | None = None
        self._closed_event = asyncio.Event()
        sock.setblocking(False)
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
        self._loop.add_reader(self._fd, self._on_readable)

    def _on_frame(self, frame: Frame) -> None:
        raise NotImplementedError

    def _fail_all(self, error: TransportError) -> None:
        raise NotImplementedError

    def _shares_sends(self) -> bool:
        raise NotImplementedError

    def _on_readable(self) -> None:
        buf = self._recv_buf
        wanted = self._frames.wanted()
        if wanted > len(buf):  # a large frame: read the rest of it at once
            buf = bytearray(wanted)
        try:
            n, ancdata, _flags, _addr = self._sock.recvmsg_into([buf], ANCILLARY_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._connection_lost(f"the channel failed: {exc}")
            return
        if ancdata:
            self._frames.add_fds(received_fds(ancdata))
        if not n:
            self._connection_lost("the worker closed the channel")
            return
        self._frames.feed(memoryview(buf)[:n])
        try:
            frames = self._frames.frames()
        except ProtocolError as exc:
            self._connection_lost(f"the worker sent a malformed frame: {exc}")
            return
        for frame in frames:
            self._on_frame(frame)

    def _write(self, frame: bytes, fds: list[int] | None = None) -> None:
        """Send a frame: at once when it is alone, else queued with the others of this turn
        of the loop, which go out in one send."""
        if self._lost is not None or self._closed:
            if fds:
                for fd in fds:
                    os.close(fd)
            return
        if not fds and not self._out and not self._writing and not self._shares_sends():
            # Nothing else is in flight to share a send with: save the loop a turn.
            try:
                sent = self._sock.send(frame)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._connection_lost(f"cannot write to the worker: {exc}")
                return
            if sent == len(frame):
                return
            frame = frame[sent:]
        if fds:
            self._out_fds.append((len(self._out), fds))
        self._out.append(frame)
        if not self._flush_scheduled and not self._writing:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._writing or self._lost is not None:
            return
        out, self._out = self._out, []
        marks, self._out_fds = self._out_fds, []
        # Frames with descriptors go out on their own sendmsg (the fds ride on its first byte).
        start = 0
        chunks: list[tuple[bytes, list[int]]] = []
        for index, fds in marks:
            if index > start:
                chunks.append((b"".join(out[start:index]), []))
            chunks.append((out[index], fds))
            start = index + 1
        if start < len(out):
            chunks.append((b"".join(out[start:]) if len(out) - start > 1 else out[start], []))
        self._send_chunks(collections.deque(chunks))

    def _send_chunks(self, chunks: collections.deque[tuple[bytes, list[int]]]) -> None:
        while chunks:
            data, fds = chunks[0]
            try:
                if fds:
                    sent = self._sock.sendmsg(
                        [data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
                    )
                    for fd in fds:
                        os.close(fd)
                    fds.clear()
                else:
                    sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                for _, left in chunks:
                    for fd in left:
                        os.close(fd)
                self._connection_lost(f"cannot write to the worker: {exc}")
                return
            if sent < len(data):
                chunks[0] = (data[sent:], fds)
                self._writing = True
                self._loop.add_writer(self._fd, self._on_writable, chunks)
                return
            chunks.popleft()
        self._writing = False

    def _on_writable(self, chunks: collections.deque[tuple[bytes, list[int]]]) -> None:
        self._loop.remove_writer(self._fd)
        self._writing = False
        self._send_chunks(chunks)
        if not self._writing and self._out:
            self._flush()

    def _connection_lost(self, reason: str) -> None:
        if self._lost is not None:
            return
        self._lost = TransportError(
            f"channel to worker {self.worker_id!r} broke: {reason}", code="EOF"
        )
        self._shutdown(self._lost)

    def _shutdown(self, error: TransportError) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._fd)
        with contextlib.suppress(Exception):
            self._loop.remove_writer(self._fd)
        self._fail_all(error)
        self._frames.close()
        for _, fds in self._out_fds:
            for fd in fds:
                os.close(fd)
        self._out_fds = []
        self._out = []
        self._sock.close()
        self._closed_event.set()
