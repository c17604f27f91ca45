"""The wire package: frames, shared-memory attachments and ErrorInfo in both directions."""

from __future__ import annotations

import os
import socket

import pytest

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._wire import error_info, exception_from_info, host_error_info
from snakepit._wire._framing import (
    Attachment,
    Flag,
    FrameBuffer,
    Kind,
    ProtocolError,
    pack,
    pack_attached,
    split_blobs,
)
from snakepit.errors import InvalidArgumentsError, ToolError


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class TestFrames:
    def test_frames_fed_a_byte_at_a_time_come_out_whole_and_in_order(self) -> None:
        """However the bytes arrive, each frame comes out once, whole, in order."""
        data = (
            pack(Kind.EXECUTE, 1, b"first")
            + pack(Kind.PING, 2, b"")
            + pack(Kind.STREAM_ITEM, 3, b"x" * 300, Flag.END)
        )
        buf = FrameBuffer(limit=1024)
        out = []
        for i in range(len(data)):
            buf.feed(data[i : i + 1])
            out.extend(buf.frames())
        assert [(f.kind, f.call_id, f.body, f.flags) for f in out] == [
            (Kind.EXECUTE, 1, b"first", 0),
            (Kind.PING, 2, b"", 0),
            (Kind.STREAM_ITEM, 3, b"x" * 300, Flag.END),
        ]
        assert buf.wanted() == 0

    def test_a_frame_over_the_limit_is_a_protocol_error(self) -> None:
        """A header announcing more than the limit is refused before its body is read."""
        buf = FrameBuffer(limit=100)
        buf.feed(pack(Kind.REPLY, 1, b"y" * 101)[:12])
        with pytest.raises(ProtocolError, match="larger than the limit"):
            buf.frames()

    def test_an_attached_frame_without_its_descriptors_is_a_protocol_error(self) -> None:
        """A frame naming attachments that never arrived is refused, not read as empty blobs."""
        frame, fds = pack_attached(Kind.REPLY, 1, b"m", [Attachment(0, 0, b"z" * 10)])
        for fd in fds:
            os.close(fd)
        buf = FrameBuffer(limit=1 << 20)
        buf.feed(frame)
        with pytest.raises(ProtocolError, match="did not arrive"):
            buf.frames()


class TestSharedMemory:
    def test_blobs_travel_in_memfds_and_every_descriptor_is_closed(self) -> None:
        """Large blobs leave the message, cross a real socket pair as memfds, come back
        exact, and no descriptor is left open on either side."""
        before = _open_fds()
        big, small = os.urandom(300_000), b"tiny"
        attached: list[Attachment] = []
        kept = split_blobs([small, big], 0, 1000, attached)
        assert kept == [small, b""] and [(a.payload, a.blob) for a in attached] == [(0, 1)]
        a, b = socket.socketpair()
        try:
            frame, fds = pack_attached(Kind.EXECUTE, 7, b"body", attached)
            socket.send_fds(a, [frame], fds)
            for fd in fds:
                os.close(fd)
            buf = FrameBuffer(limit=1 << 20)
            while not (frames := buf.frames()):
                data, received, _, _ = socket.recv_fds(b, 1 << 16, 4)
                buf.add_fds(received)
                buf.feed(data)
            (got,) = frames
            assert got.body == b"body" and got.flags & Flag.ATTACHED
            assert got.attachments == [Attachment(0, 1, big)]
        finally:
            a.close()
            b.close()
        assert _open_fds() == before


class TestErrorInfo:
    def test_a_tool_exception_round_trips_with_type_traceback_and_worker(self) -> None:
        """A plain exception becomes ToolError carrying the remote type and traceback."""
        try:
            raise KeyError("missing")
        except KeyError as exc:
            info = error_info(exc, tool="lookup")
        err = exception_from_info(info, worker_id="w3")
        assert isinstance(err, ToolError)
        assert err.remote_type == "KeyError" and "raise KeyError" in err.remote_traceback
        assert (err.tool, err.worker_id) == ("lookup", "w3")

    def test_a_snakepit_error_keeps_its_kind_and_details(self) -> None:
        """A snakepit error crosses as its own class with its JSON-able details."""
        info = error_info(InvalidArgumentsError("bad x", tool="t", argument="x"))
        err = exception_from_info(info)
        assert isinstance(err, InvalidArgumentsError) and (err.tool, err.argument) == ("t", "x")

    def test_the_bridge_sends_value_error_as_itself_and_hides_store_frames(self) -> None:
        """The host's ValueError stays a ValueError; a store error carries no host traceback."""
        assert isinstance(exception_from_info(host_error_info(ValueError("no"))), ValueError)
        info = host_error_info(InvalidArgumentsError("bad", tool="t", argument=None))
        assert info.traceback == "" and info.kind == "InvalidArgumentsError"

    def test_malformed_details_do_not_break_the_rebuild(self) -> None:
        """details_json that is not a JSON object still yields the typed error."""
        info = pb.ErrorInfo(kind="ToolError", message="m", details_json="[1, 2")
        assert isinstance(exception_from_info(info), ToolError)
