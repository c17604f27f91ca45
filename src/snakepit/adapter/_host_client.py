"""A worker's client of its host: it sends the calls over a link; one per worker process.

Tools reach the host through their :class:`~snakepit.adapter.SessionContext`:

* synchronous tools (they run on threads) use the blocking API,
  ``ctx.variables["x"]``, ``ctx.variables.set(...)``, ``ctx.call_host_tool(...)``;
* ``async`` tools use the ``a``-prefixed coroutines, ``await ctx.variables.aget("x")``,
  ``await ctx.acall_host_tool(...)``.

The calls (:mod:`snakepit.adapter._host_ops`) travel over a link
(:mod:`snakepit.adapter._host_link`): the worker's own connection on the local
transport, a gRPC channel to the host bridge on gRPC, reached over TCP with the
token the pool hands over on the worker's stdin, never in its environment.
Errors come back typed (``VariableValidationError``, ``VersionConflictError``,
``HostToolError``...). This module is worker side: it never imports the host side.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from snakepit._wire._constants import DEFAULT_MAX_MESSAGE, ENV_ADDRESS, ENV_TOKEN
from snakepit.adapter import _host_ops as ops
from snakepit.adapter._host_link import GrpcLink, HostLink
from snakepit.adapter._host_watch import AsyncHostWatch, HostWatch
from snakepit.codec import Encoding

if TYPE_CHECKING:
    from snakepit._proto.snakepit.v1 import host_pb2 as hpb

__all__ = [
    "ENV_ADDRESS",
    "ENV_TOKEN",
    "HostClient",
    "configure",
    "configure_from_environ",
    "default_client",
]

_T = TypeVar("_T")


class HostClient:
    """A worker process's client of its host.

    One per worker process (see :func:`default_client`).

    Args:
        address: the host bridge's gRPC address (``unix:/...`` or ``host:port``); "" for none.
        token: the pool's token (TCP only), sent as ``snakepit-token`` metadata.
        worker_id: this worker's id, sent with host tool calls.
        max_message_bytes: the largest message either way.
        allow_pickle: the pool opted into pickle; host tool values travel pickled.
        link: how calls travel (default: a gRPC channel to ``address``).
    """

    def __init__(
        self,
        address: str = "",
        *,
        token: str = "",
        worker_id: str = "",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE,
        allow_pickle: bool = False,
        link: HostLink | None = None,
    ) -> None:
        self.link: HostLink = link or GrpcLink(
            address, token=token, max_message_bytes=max_message_bytes
        )
        self.address = self.link.address
        self.worker_id = worker_id
        self.allow_pickle = allow_pickle
        self.encoding = Encoding.PICKLE if allow_pickle else Encoding.JSON

    def _not_on_loop(self, what: str) -> None:
        try:
            import asyncio  # lazily: a worker without async tools never loads it

            asyncio.get_running_loop()
        except RuntimeError:
            return
        raise RuntimeError(
            f"{what} would block the worker's event loop: this is an async tool, so use the "
            "async variant (await ctx.variables.aget(...), aset(...), "
            "await ctx.acall_host_tool(...))"
        )

    # -- calls -------------------------------------------------------------------------------

    def run(self, op: ops.Op[_T], *, timeout: float | None = None) -> _T:
        """Make a unary call, blocking (sync tools).

        Raises:
            SnakepitError: the host answered with an error (rebuilt with its kind), or
                could not be reached.
            RuntimeError: called on the worker's event loop (use :meth:`arun`).
        """
        self._not_on_loop(op.method)
        return op.parse(self.link.call(op.method, op.request, timeout))

    async def arun(self, op: ops.Op[_T], *, timeout: float | None = None) -> _T:
        """Make a unary call from an async tool. Raises as :meth:`run`."""
        return op.parse(await self.link.acall(op.method, op.request, timeout))

    def open_watch(self, request: hpb.WatchRequest) -> HostWatch:
        """Start a watch stream and return once it is live (blocking)."""
        self._not_on_loop("watch")
        watch = HostWatch(self.link.watch(request), request.session_id)
        watch._started()
        return watch

    async def aopen_watch(self, request: hpb.WatchRequest) -> AsyncHostWatch:
        """Start a watch stream from an async tool and return once it is live."""
        watch = AsyncHostWatch(self.link.awatch(request), request.session_id)
        await watch._started()
        return watch

    def tool_op(self, name: str, args: Any, session_id: str | None) -> ops.Op[Any]:
        """The call of host tool ``name``, its arguments carried as this client's pool allows."""
        return ops.host_tool(
            name,
            args,
            session_id,
            worker_id=self.worker_id,
            encoding=self.encoding,
            allow_pickle=self.allow_pickle,
        )

    def list_tools_op(self) -> ops.Op[list[str]]:
        """The call listing the host's tools."""
        return ops.list_host_tools()

    def session_metadata_op(
        self, session_id: str, metadata: Any, replace: bool
    ) -> ops.Op[dict[str, Any]]:
        """The call updating a session's metadata."""
        return ops.session_metadata(session_id, metadata, replace)

    def heartbeat_op(self, session_id: str) -> ops.Op[None]:
        """The call keeping a session alive."""
        return ops.heartbeat(session_id)

    def close(self) -> None:
        """Close the link's blocking channel (the async one closes with its loop). Idempotent."""
        self.link.close()

    def __repr__(self) -> str:
        return f"<HostClient {self.address or '(no host)'}>"


# -- the process's client ----------------------------------------------------------------------

_default: HostClient | None = None
_default_lock = threading.Lock()


def configure_from_environ(
    *,
    worker_id: str = "",
    max_message_bytes: int = DEFAULT_MAX_MESSAGE,
    allow_pickle: bool = False,
    token: str = "",
) -> HostClient:
    """Build this process's client from the environment, removing the variables from it.

    The worker main calls this once at start, so a subprocess a tool starts
    does not inherit them. ``token`` is the bridge's token as the host handed it over
    (on a pipe, not in the environment); without it ``SNAKEPIT_HOST_TOKEN`` is used.
    No connection is made until the first call.
    """
    env_token = os.environ.pop(ENV_TOKEN, "")
    return configure(
        HostClient(
            os.environ.pop(ENV_ADDRESS, ""),
            token=token or env_token,
            worker_id=worker_id,
            max_message_bytes=max_message_bytes,
            allow_pickle=allow_pickle,
        )
    )


def configure(client: HostClient) -> HostClient:
    """Make ``client`` this process's client (the local worker main passes its own link)."""
    global _default
    with _default_lock:
        _default = client
    return client


def default_client() -> HostClient:
    """This process's client (from the environment if the worker main did not configure one)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = HostClient(
                os.environ.get(ENV_ADDRESS, ""), token=os.environ.get(ENV_TOKEN, "")
            )
        return _default
