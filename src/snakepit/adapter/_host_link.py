"""How a worker's calls reach the host: the ``HostLink`` protocol and its gRPC channel.

A link carries unary calls (blocking or async) and watch streams. On the local
transport the worker's own connection is the link (:mod:`snakepit.adapter._local`);
on gRPC it is :class:`GrpcLink`, a channel to the host bridge whose address the
worker learns from ``SNAKEPIT_HOST_ADDRESS`` at start. gRPC is imported only when
that channel is first used.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any, Protocol

from snakepit._wire._constants import ENV_ADDRESS, TOKEN_HEADER
from snakepit.errors import SnakepitError

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Iterator

    from snakepit._proto.snakepit.v1 import host_pb2 as hpb

__all__ = ["AsyncWatchCall", "GrpcLink", "HostLink", "WatchCall"]


class WatchCall(Protocol):
    """A running watch on a link (blocking reads)."""

    def next_item(self) -> hpb.WatchItem | None:
        """The next item, None when the stream ended. Raises SnakepitError when it broke."""

    def cancel(self) -> None: ...


class AsyncWatchCall(Protocol):
    """A running watch on a link (async reads)."""

    async def read(self) -> hpb.WatchItem | None:
        """The next item, None when the stream ended. Raises SnakepitError when it broke."""

    def cancel(self) -> None: ...


class HostLink(Protocol):
    """How a worker's calls reach the host: a unary call (blocking or async) and a watch.

    Every method raises ``SnakepitError`` when the host cannot be reached.
    """

    address: str

    def call(self, method: str, request: Any, timeout: float | None) -> Any: ...

    async def acall(self, method: str, request: Any, timeout: float | None) -> Any: ...

    def watch(self, request: hpb.WatchRequest) -> WatchCall: ...

    def awatch(self, request: hpb.WatchRequest) -> AsyncWatchCall: ...

    def close(self) -> None: ...


class GrpcLink:
    """A gRPC channel to the host bridge: one sync channel shared by every tool thread, one
    ``grpc.aio`` channel on the worker's loop, both created on first use."""

    def __init__(self, address: str, *, token: str, max_message_bytes: int) -> None:
        self.address = address
        self._metadata = ((TOKEN_HEADER, token),) if token else None
        self._options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.enable_retries", 0),
        ]
        self._lock = threading.Lock()
        self._channel: Any = None
        self._stub: Any = None
        self._aio_channel: Any = None
        self._aio_stub: Any = None
        self._aio_loop: asyncio.AbstractEventLoop | None = None

    def _check_address(self) -> None:
        if not self.address:
            raise SnakepitError(
                f"this worker has no host bridge ({ENV_ADDRESS} is not set): session variables "
                "and host tools work only in workers started by a snakepit Pool"
            )

    def _sync_stub(self) -> Any:
        self._check_address()
        with self._lock:
            if self._stub is None:
                import grpc

                from snakepit._proto.snakepit.v1 import host_pb2_grpc

                self._channel = grpc.insecure_channel(self.address, options=self._options)
                self._stub = host_pb2_grpc.HostServiceStub(self._channel)  # type: ignore[no-untyped-call]
            return self._stub

    def _async_stub(self) -> Any:
        self._check_address()
        import asyncio  # lazily: a worker without async tools never loads it

        loop = asyncio.get_running_loop()
        if self._aio_stub is None or self._aio_loop is not loop:
            import grpc

            from snakepit._proto.snakepit.v1 import host_pb2_grpc

            self._aio_channel = grpc.aio.insecure_channel(self.address, options=self._options)
            self._aio_stub = host_pb2_grpc.HostServiceStub(self._aio_channel)  # type: ignore[no-untyped-call]
            self._aio_loop = loop
        return self._aio_stub

    def unreachable(self, method: str, exc: Exception) -> SnakepitError:
        code = getattr(exc, "code", None)
        details = getattr(exc, "details", None)
        reason = f"{code().name} {details()}" if callable(code) and callable(details) else exc
        return SnakepitError(
            f"cannot reach the snakepit host at {self.address!r} for {method} ({reason}); "
            "the pool may be closing",
            address=self.address,
        )

    @contextlib.contextmanager
    def _translated(self, method: str) -> Iterator[None]:
        """gRPC's errors, raised inside, leave as the link's :meth:`unreachable` error."""
        import grpc

        try:
            yield
        except grpc.RpcError as exc:
            raise self.unreachable(method, exc) from exc

    def call(self, method: str, request: Any, timeout: float | None) -> Any:
        stub = self._sync_stub()
        with self._translated(method):
            return getattr(stub, method)(request, metadata=self._metadata, timeout=timeout)

    async def acall(self, method: str, request: Any, timeout: float | None) -> Any:
        stub = self._async_stub()
        with self._translated(method):
            return await getattr(stub, method)(request, metadata=self._metadata, timeout=timeout)

    def watch(self, request: hpb.WatchRequest) -> WatchCall:
        return _GrpcWatch(self, self._sync_stub().WatchVariables(request, metadata=self._metadata))

    def awatch(self, request: hpb.WatchRequest) -> AsyncWatchCall:
        call = self._async_stub().WatchVariables(request, metadata=self._metadata)
        return _GrpcWatch(self, call)

    def close(self) -> None:
        with self._lock:
            channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            channel.close()


class _GrpcWatch:
    """A ``WatchVariables`` stream, blocking (``next_item``) or ``grpc.aio`` (``read``)."""

    def __init__(self, link: GrpcLink, call: Any) -> None:
        self._link = link
        self._call = call

    def next_item(self) -> hpb.WatchItem | None:
        with self._link._translated("WatchVariables"):
            item: hpb.WatchItem | None = next(self._call, None)
        return item

    async def read(self) -> hpb.WatchItem | None:
        import grpc

        with self._link._translated("WatchVariables"):
            item = await self._call.read()
        return None if item is grpc.aio.EOF else item  # type: ignore[attr-defined]

    def cancel(self) -> None:
        self._call.cancel()
