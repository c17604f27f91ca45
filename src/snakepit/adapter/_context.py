"""``SessionContext``: what a tool sees of the call that runs it.

A tool asks for it by annotating a parameter with ``SessionContext``; the
worker passes one per call. It names the session (``None`` outside a
session), the request and the worker, and reaches the host: the session's
variables (``ctx.variables``) and the host's tools (``ctx.call_host_tool``).

Synchronous tools use the blocking API; ``async`` tools use the
``a``-prefixed coroutines, which do not block the worker's event loop::

    @tool
    def bump(self, ctx: SessionContext) -> int:
        ctx.variables["counter"] += 1
        return ctx.variables["counter"]

    @tool
    async def abump(self, ctx: SessionContext) -> int:
        var = await ctx.variables.aget("counter")
        return (await ctx.variables.aset("counter", var.value + 1)).value
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    # Loaded on first use: importing an adapter stays cheap (no gRPC until a tool needs the host).
    from snakepit.adapter._host_client import HostClient
    from snakepit.adapter._host_variables import WorkerVariables

__all__ = ["SessionContext"]


@dataclass(frozen=True)
class SessionContext:
    """The context of one tool call inside a worker.

    Attributes:
        session_id: the session the call runs in, or None outside a session.
        request_id: the host's id of this request.
        worker_id: the worker running it.
        tool: the name of the tool being run.
        host: the client of the host bridge (default: this worker process's client).
    """

    session_id: str | None
    request_id: int
    worker_id: str
    tool: str = ""
    host: HostClient | None = field(default=None, repr=False, compare=False)

    @property
    def _client(self) -> HostClient:
        if self.host is not None:
            return self.host
        from snakepit.adapter._host_client import default_client

        return default_client()

    @cached_property
    def variables(self) -> WorkerVariables:
        """The session's variables: ``ctx.variables["x"]``, ``.get``, ``.set``, ``.aget``...

        Every operation raises ``SessionNotFoundError`` when the call runs outside a session.
        """
        from snakepit.adapter._host_variables import WorkerVariables

        return WorkerVariables(
            self._client,
            self.session_id,
            where=f"tool {self.tool!r} (request {self.request_id} on worker {self.worker_id!r})",
        )

    def call_host_tool(
        self, name: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Run the host tool ``name`` with keyword ``args`` and return its result (blocking).

        Args:
            name: the name the host registered it under (``pool.register_host_tool``).
            args: keyword arguments (JSON values and bytes).
            timeout: seconds to wait for the answer (None: no bound).

        Raises:
            ToolNotFoundError: the host has no such tool (the message lists the available ones).
            InvalidArgumentsError: ``args`` does not fit the host tool's signature.
            HostToolError: the host tool raised (its type, message and host traceback attached).
            SerializationError: an argument or the result cannot be carried.
        """
        return self._client.run(self._client.tool_op(name, args, self.session_id), timeout=timeout)

    async def acall_host_tool(
        self, name: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """:meth:`call_host_tool` for async tools. Raises as :meth:`call_host_tool`."""
        op = self._client.tool_op(name, args, self.session_id)
        return await self._client.arun(op, timeout=timeout)

    def list_host_tools(self) -> list[str]:
        """The names of the host's tools, sorted (blocking).

        Raises:
            SnakepitError: the host cannot be reached.
        """
        return self._client.run(self._client.list_tools_op())

    async def alist_host_tools(self) -> list[str]:
        """:meth:`list_host_tools` for async tools."""
        return await self._client.arun(self._client.list_tools_op())

    def update_session_metadata(
        self, metadata: Mapping[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        """Merge ``metadata`` into the session's metadata (or, with ``replace``, make it the
        whole metadata), as the host's ``session.update_metadata()``; the new metadata
        (blocking).

        Raises:
            SessionNotFoundError: outside a session, or the session is gone.
            InvalidValueError: ``metadata`` is not a mapping.
        """
        op = self._client.session_metadata_op(self.variables.session_id, metadata, replace)
        return self._client.run(op)

    async def aupdate_session_metadata(
        self, metadata: Mapping[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        """:meth:`update_session_metadata` for async tools."""
        op = self._client.session_metadata_op(self.variables.session_id, metadata, replace)
        return await self._client.arun(op)

    def heartbeat(self) -> None:
        """Keep the session alive (its TTL restarts); for long-running tools (blocking).

        Raises:
            SessionNotFoundError: outside a session, or the session is gone.
        """
        self._client.run(self._client.heartbeat_op(self.variables.session_id))

    async def aheartbeat(self) -> None:
        """:meth:`heartbeat` for async tools."""
        await self._client.arun(self._client.heartbeat_op(self.variables.session_id))
