"""The host bridge: ``HostService`` served by the host, called by worker code.

:class:`HostBridge` runs a gRPC server on the pool's private socket (a Unix
socket in its runtime directory, or loopback TCP guarded by a per-pool token)
and gives every worker its address through the environment (the TCP token
travels on a pipe the worker inherits, see ``WorkerHandle``). The servicer is
a thin translation of the session store and the host tool registry: requests
are decoded, the store or tool does the work, and every failure is returned
in the response body as a typed ``ErrorInfo`` (``kind`` names a class of
:mod:`snakepit.errors`, rebuilt with :func:`~snakepit.errors.from_wire` in the
worker), as ``WorkerService`` does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from snakepit._proto.snakepit.v1 import host_pb2 as hpb
from snakepit._proto.snakepit.v1 import host_pb2_grpc
from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit.adapter._service import error_info
from snakepit.adapter.host_client import ENV_ADDRESS, from_payload, to_payload
from snakepit.codec import Encoding
from snakepit.errors import SnakepitError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from snakepit._variables import Variable
    from snakepit.bridge.host_tools import HostToolRegistry
    from snakepit.bridge.store import Session, SessionStore

__all__ = ["HostBridge", "HostServicer"]

log = logging.getLogger("snakepit.bridge")
T = TypeVar("T")
_UNIX_PATH_MAX = 107


def _error(exc: Exception) -> pb.ErrorInfo:
    """The wire form of a failure: snakepit errors keep their kind, ValueError stays ValueError."""
    if isinstance(exc, SnakepitError):
        info = error_info(exc)
        if info.kind not in ("ToolError", "HostToolError"):
            info.traceback = ""  # the store's frames do not help the worker; the message does
        return info
    if isinstance(exc, ValueError):
        return pb.ErrorInfo(kind="ValueError", message=str(exc), remote_type="ValueError")
    log.error("host bridge failed", exc_info=exc)
    return pb.ErrorInfo(
        kind="SnakepitError",
        message=f"the host bridge failed: {type(exc).__name__}: {exc}",
        remote_type=type(exc).__name__,
    )


def _variable_info(variable: Variable) -> hpb.VariableInfo:
    what = f"variable {variable.name!r}"
    return hpb.VariableInfo(
        name=variable.name,
        type=variable.type,
        value=to_payload(variable.value, what),
        version=variable.version,
        constraints=to_payload(variable.constraints, what),
        metadata=to_payload(variable.metadata, what),
        created_at=variable.created_at,
        updated_at=variable.updated_at,
    )


def _session_info(session: Session) -> hpb.SessionInfo:
    return hpb.SessionInfo(
        id=session.id,
        metadata=to_payload(session.metadata, f"metadata of session {session.id!r}"),
        created_at=session.created_at,
        last_access=session.last_access,
        ttl=session.ttl,
        affinity_worker=session.affinity_worker or "",
        variable_count=session.variable_count,
    )


def _optional(request: Any, name: str) -> int | None:
    return getattr(request, name) if request.HasField(name) else None


class HostServicer(host_pb2_grpc.HostServiceServicer):
    """Serves one session store and one host tool registry.

    Args:
        store: the sessions and variables.
        tools: the host tools.
        allow_pickle: the pool opted into pickle: host tool values may travel pickled.
    """

    def __init__(
        self, store: SessionStore, tools: HostToolRegistry, *, allow_pickle: bool = False
    ) -> None:
        self._store = store
        self._tools = tools
        self._allow_pickle = allow_pickle

    def _value(self, payload: pb.Payload, what: str) -> Any:
        # Variables are JSON values; only host tool calls may use pickle.
        return from_payload(payload, what)

    # -- sessions ----------------------------------------------------------------------------

    async def _session(self, op: Callable[[], Awaitable[Session]]) -> hpb.SessionResponse:
        try:
            return hpb.SessionResponse(session=_session_info(await op()))
        except Exception as exc:
            return hpb.SessionResponse(error=_error(exc))

    async def GetSession(self, request: hpb.SessionRequest, context: Any) -> hpb.SessionResponse:
        return await self._session(lambda: self._store.get(request.session_id))

    async def Heartbeat(self, request: hpb.SessionRequest, context: Any) -> hpb.SessionResponse:
        return await self._session(lambda: self._store.touch(request.session_id))

    # -- variables ---------------------------------------------------------------------------

    async def _variable(self, op: Callable[[], Awaitable[Variable]]) -> hpb.VariableResponse:
        try:
            return hpb.VariableResponse(variable=_variable_info(await op()))
        except Exception as exc:
            return hpb.VariableResponse(error=_error(exc))

    async def _variables(
        self, op: Callable[[], Awaitable[list[Variable]]]
    ) -> hpb.VariablesResponse:
        try:
            return hpb.VariablesResponse(variables=[_variable_info(v) for v in await op()])
        except Exception as exc:
            return hpb.VariablesResponse(error=_error(exc))

    async def RegisterVariable(
        self, request: hpb.RegisterVariableRequest, context: Any
    ) -> hpb.VariableResponse:
        def op() -> Awaitable[Variable]:
            what = f"variable {request.name!r}"
            return self._store.register_variable(
                request.session_id,
                request.name,
                request.type,
                self._value(request.value, what),
                constraints=self._value(request.constraints, what) or None,
                metadata=self._value(request.metadata, what) or None,
            )

        return await self._variable(op)

    async def GetVariable(
        self, request: hpb.GetVariableRequest, context: Any
    ) -> hpb.VariableResponse:
        return await self._variable(
            lambda: self._store.get_variable(request.session_id, request.name)
        )

    async def SetVariable(
        self, request: hpb.SetVariableRequest, context: Any
    ) -> hpb.VariableResponse:
        return await self._variable(
            lambda: self._store.set_variable(
                request.session_id,
                request.name,
                self._value(request.value, f"value of variable {request.name!r}"),
                expected_version=_optional(request, "expected_version"),
            )
        )

    async def GetVariables(
        self, request: hpb.GetVariablesRequest, context: Any
    ) -> hpb.GetVariablesResponse:
        try:
            found, missing = await self._store.get_many(request.session_id, list(request.names))
        except Exception as exc:
            return hpb.GetVariablesResponse(error=_error(exc))
        return hpb.GetVariablesResponse(
            variables=[_variable_info(v) for v in found.values()], missing=missing
        )

    async def SetVariables(
        self, request: hpb.SetVariablesRequest, context: Any
    ) -> hpb.SetVariablesResponse:
        try:
            values = self._value(request.values, "values of set_many")
            if not isinstance(values, dict):
                raise ValueError(f"set_many needs a dict of name -> value, got {type(values)}")
            result = await self._store.set_many(
                request.session_id,
                values,
                atomic=request.atomic,
                expected_versions=dict(request.expected_versions) or None,
            )
        except Exception as exc:
            return hpb.SetVariablesResponse(error=_error(exc))
        return hpb.SetVariablesResponse(
            updated=[_variable_info(v) for v in result.updated.values()],
            errors={name: _error(exc) for name, exc in result.errors.items()},
        )

    async def ListVariables(
        self, request: hpb.ListVariablesRequest, context: Any
    ) -> hpb.VariablesResponse:
        return await self._variables(
            lambda: self._store.list_variables(request.session_id, request.pattern or "*")
        )

    async def DeleteVariable(
        self, request: hpb.DeleteVariableRequest, context: Any
    ) -> hpb.DeleteVariableResponse:
        try:
            await self._store.delete_variable(request.session_id, request.name)
        except Exception as exc:
            return hpb.DeleteVariableResponse(error=_error(exc))
        return hpb.DeleteVariableResponse()

    async def GetHistory(self, request: hpb.HistoryRequest, context: Any) -> hpb.VariablesResponse:
        return await self._variables(lambda: self._store.history(request.session_id, request.name))

    async def RollbackVariable(
        self, request: hpb.RollbackRequest, context: Any
    ) -> hpb.VariableResponse:
        return await self._variable(
            lambda: self._store.rollback(
                request.session_id,
                request.name,
                request.version,
                expected_version=_optional(request, "expected_version"),
            )
        )

    async def WatchVariables(
        self, request: hpb.WatchRequest, context: Any
    ) -> AsyncIterator[hpb.WatchItem]:
        try:
            watch = await self._store.watch(
                request.session_id,
                list(request.names) or None,
                include_current=request.include_current,
            )
        except Exception as exc:
            yield hpb.WatchItem(error=_error(exc))
            return
        try:
            yield hpb.WatchItem(started=hpb.WatchStarted())
            try:
                async for event in watch:
                    yield hpb.WatchItem(
                        update=hpb.VariableUpdate(
                            session_id=event.session_id,
                            name=event.name,
                            version=event.version,
                            value=to_payload(event.value, f"variable {event.name!r}"),
                            deleted=event.deleted,
                            at=event.at,
                        )
                    )
            except SnakepitError as exc:  # the store failed under the watch (Redis went away)
                yield hpb.WatchItem(error=_error(exc))
                return
            yield hpb.WatchItem(ended=hpb.WatchEnded(reason=watch.ended_reason or ""))
        finally:
            watch.close()

    # -- host tools --------------------------------------------------------------------------

    async def CallHostTool(
        self, request: hpb.CallHostToolRequest, context: Any
    ) -> hpb.CallHostToolResponse:
        name = request.tool
        try:
            args = from_payload(
                request.args, f"args of host tool {name!r}", allow_pickle=self._allow_pickle
            )
            result = await self._tools.call(name, args)
            pickled = self._allow_pickle and int(request.args.encoding) == Encoding.PICKLE
            encoding = Encoding.PICKLE if pickled else Encoding.JSON
            payload = to_payload(result, f"result of host tool {name!r}", encoding)
        except Exception as exc:
            return hpb.CallHostToolResponse(error=_error(exc))
        return hpb.CallHostToolResponse(result=payload)

    async def ListHostTools(
        self, request: hpb.ListHostToolsRequest, context: Any
    ) -> hpb.ListHostToolsResponse:
        return hpb.ListHostToolsResponse(
            tools=[
                pb.ToolSpec(
                    name=t.name,
                    description=t.description,
                    is_async=t.is_async,
                    params=[
                        pb.ParamSpec(
                            name=p.name,
                            type="" if p.annotation is p.empty else str(p.annotation),
                            required=p.default is p.empty,
                            kind=p.kind.name.lower(),
                        )
                        for p in t.signature.parameters.values()
                    ],
                )
                for t in self._tools.tools()
            ]
        )


class HostBridge:
    """The host's gRPC server for worker code; one per pool.

    Args:
        store: the session store it serves.
        tools: the host tools it serves.
        name: the pool's name (for logs and errors).
        transport: ``"unix"`` (a socket in the runtime directory) or ``"tcp"`` (loopback,
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
        self._servicer = HostServicer(store, tools, allow_pickle=allow_pickle)
        self._server: Any = None

    async def start(self, runtime_dir: Path) -> str:
        """Serve on a fresh socket and return its address once the server runs.

        Raises:
            OSError: the address cannot be bound (names it and what to change).
        """
        limit = self._max_message_bytes
        options = [
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            ("grpc.so_reuseport", 0),
        ]
        interceptors = []
        if self.transport == "tcp":
            from snakepit.adapter._main import _token_check

            self.token = secrets.token_hex(16)
            interceptors.append(_token_check(self.token))
        server = grpc.aio.server(options=options, interceptors=interceptors)
        host_pb2_grpc.add_HostServiceServicer_to_server(self._servicer, server)  # type: ignore[no-untyped-call]
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
        await server.start()
        if self.transport != "tcp":
            os.chmod(path, 0o600)  # only this user may connect (the directory is 0700 too)
        self._server = server
        self.address = address
        return address

    def worker_env(self) -> dict[str, str]:
        """The environment a worker needs to reach this bridge (empty before start).

        The TCP token is not in it (``self.token`` travels to workers on a pipe): any
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
