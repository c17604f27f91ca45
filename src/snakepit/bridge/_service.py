"""The host bridge: ``HostService`` for worker code, on whichever transport the workers use.

:class:`HostBridge` owns the pool's :class:`~snakepit.bridge._ops.HostOps` (the
answers, independent of the transport). Local workers reach it over their own
connection (their ``HOST_CALL`` frames are dispatched to :attr:`HostBridge.ops`);
for gRPC workers it runs a gRPC server on the pool's private socket (a Unix
socket in its runtime directory, or loopback TCP guarded by a per-pool token)
and gives every worker its address through the environment (the TCP token
travels on the worker's stdin, see ``WorkerHandle``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from typing import TYPE_CHECKING, Any

from snakepit._wire._constants import ENV_ADDRESS
from snakepit.bridge._ops import HostOps

if TYPE_CHECKING:
    from pathlib import Path

    from snakepit.bridge._host_tools import HostToolRegistry
    from snakepit.bridge._store import SessionStore

__all__ = ["HostBridge", "HostServicer"]

log = logging.getLogger("snakepit.bridge")
_UNIX_PATH_MAX = 107

# The gRPC servicer is the transport-neutral HostOps itself.
HostServicer = HostOps


class HostBridge:
    """The host's gRPC server for worker code; one per pool.

    Args:
        store: the session store it serves.
        tools: the host tools it serves.
        name: the pool's name (for logs and errors).
        transport: ``"local"`` (no server: workers call over their own connection),
            ``"grpc"``/``"unix"`` (a socket in the runtime directory) or ``"tcp"`` (loopback,
            with a fresh token every worker must present).
        tcp_host: the address to bind for TCP.
        max_message_bytes: the largest message either way.
        allow_pickle: host tool values may travel pickled (the pool opted in).
    """

    def __init__(
        self,
        store: SessionStore,
        tools: HostToolRegistry,
        *,
        name: str = "",
        transport: str = "unix",
        tcp_host: str = "127.0.0.1",
        max_message_bytes: int = 256 * 1024 * 1024,
        allow_pickle: bool = False,
    ) -> None:
        self.name = name
        self.transport = transport
        self.tcp_host = tcp_host
        self.address: str | None = None
        self.token: str | None = None
        self._max_message_bytes = max_message_bytes
        self.ops = HostOps(store, tools, allow_pickle=allow_pickle)
        self._server: Any = None

    async def start(self, runtime_dir: Path) -> str:
        """Serve on a fresh socket and return its address once the server runs (for the local
        transport there is nothing to serve: "" is returned).

        Raises:
            OSError: the address cannot be bound (names it and what to change).
        """
        if self.transport == "local":
            return ""
        import grpc

        from snakepit._proto.snakepit.v1 import host_pb2_grpc
        from snakepit._wire._token import token_interceptor

        limit = self._max_message_bytes
        options = [
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            ("grpc.so_reuseport", 0),
        ]
        interceptors = []
        if self.transport == "tcp":
            self.token = secrets.token_hex(16)
            interceptors.append(token_interceptor(self.token))
        server = grpc.aio.server(options=options, interceptors=interceptors)
        host_pb2_grpc.add_HostServiceServicer_to_server(self.ops, server)  # type: ignore[no-untyped-call]
        if self.transport == "tcp":
            port = server.add_insecure_port(f"{self.tcp_host}:0")
            host = f"[{self.tcp_host}]" if ":" in self.tcp_host else self.tcp_host
            address = f"{host}:{port}"
        else:
            path = runtime_dir / "host.sock"
            if len(str(path)) > _UNIX_PATH_MAX:
                raise OSError(
                    f"pool {self.name!r}: host bridge socket path {str(path)!r} is longer than "
                    f"the {_UNIX_PATH_MAX} bytes a Unix socket allows; use a shorter runtime_dir"
                )
            address = f"unix:{path}"
            server.add_insecure_port(address)
        self._server = server  # stop() ends it even if the start below is cancelled
        await server.start()
        if self.transport != "tcp":
            os.chmod(path, 0o600)  # only this user may connect (the directory is 0700 too)
        self.address = address
        return address

    def worker_env(self) -> dict[str, str]:
        """The environment a worker needs to reach this bridge (empty before start).

        The TCP token is not in it (``self.token`` travels to workers on their stdin): any
        process of the same user can read another's environment.
        """
        if self.address is None:
            return {}
        return {ENV_ADDRESS: self.address}

    async def stop(self, grace: float | None = 0.5) -> None:
        """Stop serving; calls in flight get ``grace`` seconds. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(Exception):
                await server.stop(grace)

    def __repr__(self) -> str:
        state = self.address or "not serving"
        return f"<HostBridge {self.name!r} {state}>"
