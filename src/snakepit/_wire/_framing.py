"""Frames of the local transport: a 12-byte header, then one protobuf message.

The format is documented for other languages in ``proto/snakepit/v1/FRAMING.md``;
this module is its Python implementation, shared by the host and the worker.

Header (little-endian): ``kind u8, flags u8, reserved u16 (0), call_id u32, length u32``;
``length`` bytes of body follow. With ``Flag.ATTACHED`` the body starts with an
attachment table and the frame's first byte carried one memfd per entry
(``SCM_RIGHTS``); a blob that travels in a memfd is empty in the message.
"""

from __future__ import annotations

import array
import collections
import enum
import os
import socket
import struct
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "HEADER",
    "HOST_METHODS",
    "Attachment",
    "Flag",
    "Frame",
    "FrameBuffer",
    "Kind",
    "ProtocolError",
    "pack",
    "pack_attached",
    "received_fds",
    "split_blobs",
]

HEADER = struct.Struct("<BBHII")
_COUNT = struct.Struct("<I")
_ENTRY = struct.Struct("<IIQ")
MAX_FDS_PER_FRAME = 250  # SCM_MAX_FD is 253 on Linux
#: ``recvmsg``'s room for ancillary data: the descriptors of one frame
ANCILLARY_SIZE = socket.CMSG_SPACE(MAX_FDS_PER_FRAME * 4)


class Kind(enum.IntEnum):
    """What a frame carries; the numbers are the wire values."""

    # host -> worker
    DESCRIBE = 0x01  # DescribeRequest; answered by REPLY(DescribeResponse)
    EXECUTE = 0x02  # ExecuteRequest; answered by REPLY(ExecuteResponse)
    STREAM = 0x03  # ExecuteRequest; answered by STREAM_ITEM frames, the last one flagged END
    PING = 0x04  # PingRequest; answered by REPLY(PingResponse)
    CANCEL = 0x05  # empty: stop call `call_id` (no answer is needed after it)
    CREDIT = 0x06  # empty: the host consumed one STREAM_ITEM of `call_id`; send one more
    SETTLE = 0x07  # SettleRequest; answered by REPLY(SettleResponse)
    HOST_REPLY = 0x10  # the answer to the worker's HOST_CALL `call_id` (a watch: many, last END)
    # worker -> host
    READY = 0x40  # DescribeResponse, unsolicited, the worker's first frame (call_id 0)
    REPLY = 0x41  # the answer to DESCRIBE, EXECUTE or PING `call_id`
    STREAM_ITEM = 0x42  # StreamItem of STREAM `call_id`
    HOST_CANCEL = 0x4F  # empty: stop the worker's HOST_CALL `call_id` (a watch)
    HOST_CALL = 0x50  # 0x50 + the index of the HostService method in HOST_METHODS


class Flag(enum.IntFlag):
    END = 0x01
    ATTACHED = 0x02


# HostService methods by wire index: HOST_CALL + index. Append only.
HOST_METHODS: tuple[str, ...] = (
    "GetSession",
    "Heartbeat",
    "RegisterVariable",
    "GetVariable",
    "SetVariable",
    "GetVariables",
    "SetVariables",
    "ListVariables",
    "DeleteVariable",
    "GetHistory",
    "RollbackVariable",
    "WatchVariables",
    "CallHostTool",
    "ListHostTools",
    "UpdateVariableMetadata",
    "ExportVariables",
    "ImportVariables",
    "UpdateSessionMetadata",
)


class ProtocolError(Exception):
    """Raised when the peer sent something that is not a valid frame; the connection is dropped."""


class Attachment(NamedTuple):
    """A blob that travels in shared memory: ``payload`` indexes the message's payloads
    (0 for ``args``/``result``, ``k`` for ``StreamItem.chunks[k]``), ``blob`` its blobs."""

    payload: int
    blob: int
    data: bytes


class Frame(NamedTuple):
    kind: int
    flags: int
    call_id: int
    body: bytes
    attachments: list[Attachment] | None


def pack(kind: int, call_id: int, body: bytes, flags: int = 0) -> bytes:
    """One frame as bytes."""
    return HEADER.pack(kind, flags, 0, call_id, len(body)) + body


def split_blobs(
    blobs: Sequence[bytes], payload: int, threshold: int, out: list[Attachment]
) -> list[bytes]:
    """The blobs to keep in the message: each one of at least ``threshold`` bytes is moved to
    ``out`` (and left empty in the message)."""
    kept = list(blobs)
    for i, blob in enumerate(kept):
        if len(blob) >= threshold:
            out.append(Attachment(payload, i, blob))
            kept[i] = b""
    return kept


def _memfd(data: bytes) -> int:
    fd = os.memfd_create("snakepit", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        raise
    return fd


def pack_attached(
    kind: int, call_id: int, body: bytes, attachments: Sequence[Attachment], flags: int = 0
) -> tuple[bytes, list[int]]:
    """A frame whose attachments travel in fresh memfds: ``(frame, fds)``. The caller sends
    the fds with the frame's first byte and closes them once sent (the kernel keeps each
    segment alive while a descriptor is in flight, and frees it with the last one)."""
    table = [_COUNT.pack(len(attachments))]
    fds: list[int] = []
    try:
        for a in attachments:
            table.append(_ENTRY.pack(a.payload, a.blob, len(a.data)))
            fds.append(_memfd(a.data))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    full = b"".join(table) + body
    return pack(kind, call_id, full, flags | Flag.ATTACHED), fds


def received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors that ``recvmsg``'s ancillary data carried (``SCM_RIGHTS``)."""
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(data[: len(data) - (len(data) % arr.itemsize)])
            fds.extend(arr)
    return fds


def _read_memfd(fd: int, length: int) -> bytes:
    data = os.pread(fd, length, 0)
    if len(data) != length:  # pread of shared memory returns all of it; anything else is wrong
        raise ProtocolError(f"a shared-memory blob holds {len(data)} bytes, not {length}")
    return data


class FrameBuffer:
    """Bytes (and received descriptors) in, whole frames out."""

    __slots__ = ("_buf", "_fds", "_limit")

    def __init__(self, limit: int) -> None:
        self._buf = bytearray()
        self._fds: collections.deque[int] = collections.deque()
        self._limit = limit

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def add_fds(self, fds: Sequence[int]) -> None:
        self._fds.extend(fds)

    def wanted(self) -> int:
        """Bytes still missing from the frame at the head of the buffer (0: none started)."""
        buf = self._buf
        if len(buf) < HEADER.size:
            return 0
        length: int = HEADER.unpack_from(buf)[4]
        return max(0, HEADER.size + length - len(buf))

    def frames(self) -> list[Frame]:
        """Every whole frame in the buffer, in order.

        Raises:
            ProtocolError: a frame is larger than the limit, or its attachments are malformed.
        """
        buf = self._buf
        out: list[Frame] = []
        pos = 0
        size = len(buf)
        hs = HEADER.size
        while size - pos >= hs:
            kind, flags, _, call_id, length = HEADER.unpack_from(buf, pos)
            if length > self._limit:
                raise ProtocolError(
                    f"a frame of {length} bytes is larger than the limit of {self._limit}"
                )
            end = pos + hs + length
            if end > size:
                break
            body = bytes(buf[pos + hs : end])
            pos = end
            attachments = None
            if flags & Flag.ATTACHED:
                body, attachments = self._attachments(body)
            out.append(Frame(kind, flags, call_id, body, attachments))
        if pos:
            del buf[:pos]
        return out

    def _attachments(self, body: bytes) -> tuple[bytes, list[Attachment]]:
        if len(body) < _COUNT.size:
            raise ProtocolError("an attached frame without its attachment table")
        (count,) = _COUNT.unpack_from(body)
        table_end = _COUNT.size + count * _ENTRY.size
        if count > MAX_FDS_PER_FRAME or len(body) < table_end or len(self._fds) < count:
            raise ProtocolError(f"a frame names {count} attachments that did not arrive")
        out = []
        fds = [self._fds.popleft() for _ in range(count)]
        try:
            for i, fd in enumerate(fds):
                payload, blob, length = _ENTRY.unpack_from(body, _COUNT.size + i * _ENTRY.size)
                if length > self._limit:
                    raise ProtocolError(f"an attachment of {length} bytes is over the limit")
                out.append(Attachment(payload, blob, _read_memfd(fd, length)))
        finally:
            for fd in fds:
                os.close(fd)
        return body[table_end:], out

    def close(self) -> None:
        """Close any descriptor received but not claimed by a frame."""
        while self._fds:
            os.close(self._fds.popleft())
