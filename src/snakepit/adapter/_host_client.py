"""The worker's client of the host bridge: session variables and host tools from worker code.

Tools reach the host through their :class:`~snakepit.adapter.SessionContext`:

* synchronous tools (they run on threads) use the blocking API,
  ``ctx.variables["x"]``, ``ctx.variables.set(...)``, ``ctx.call_host_tool(...)``;
* ``async`` tools use the ``a``-prefixed coroutines, ``await ctx.variables.aget("x")``,
  ``await ctx.acall_host_tool(...)``.

The calls travel over a *link*: on the local transport, frames on the worker's
own connection to the host (:mod:`snakepit.adapter._local`); on gRPC, a channel
to the host bridge whose address the worker learns from ``SNAKEPIT_HOST_ADDRESS``
at start (over TCP, with the token the pool hands over on the worker's stdin, never
in its environment). gRPC is imported only by the gRPC link.

Errors come back typed (``VariableValidationError``, ``VersionConflictError``,
``HostToolError``...), rebuilt from the ``ErrorInfo`` the host sent. This
module is worker side: it never imports the host side.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeAlias, TypeVar

from snakepit._proto.snakepit.v1 import host_pb2 as hpb
from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._variables import BatchResult, Variable
from snakepit._wire._constants import DEFAULT_MAX_MESSAGE, ENV_ADDRESS, ENV_TOKEN, TOKEN_HEADER
from snakepit._wire._errors import exception_from_info as error_from_wire
from snakepit._wire._payload import from_payload, to_payload
from snakepit.codec import Encoding
from snakepit.errors import InvalidValueError, SessionNotFoundError, SnakepitError, VariableError

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Iterable

    from snakepit.events import VariableUpdated

__all__ = [
    "ENV_ADDRESS",
    "ENV_TOKEN",
    "AsyncHostWatch",
    "HostClient",
    "HostLink",
    "HostWatch",
    "WorkerVariables",
    "configure",
    "configure_from_environ",
    "default_client",
    "error_from_wire",
    "from_payload",
    "to_payload",
]

_DEFAULT_MAX_MESSAGE = DEFAULT_MAX_MESSAGE

T = TypeVar("T")
# ``WorkerVariables.list`` shadows the builtin inside that class.
_Variables: TypeAlias = "list[Variable]"
_Names: TypeAlias = "list[str]"


# -- the wire forms --------------------------------------------------------------------------


def _variable(info: hpb.VariableInfo) -> Variable:
    what = f"variable {info.name!r}"
    return Variable(
        name=info.name,
        type=info.type,
        value=from_payload(info.value, what),
        version=info.version,
        constraints=from_payload(info.constraints, what) or {},
        metadata=from_payload(info.metadata, what) or {},
        created_at=info.created_at,
        updated_at=info.updated_at,
    )


def _update(item: hpb.VariableUpdate) -> VariableUpdated:
    # Imported here: the event classes cost a worker's start-up more than watches are used.
    from snakepit.events import VariableUpdated

    return VariableUpdated(
        session_id=item.session_id,
        name=item.name,
        version=item.version,
        value=from_payload(item.value, f"variable {item.name!r}"),
        deleted=item.deleted,
        source="host",
        at=item.at,
    )


# -- links: how the calls travel --------------------------------------------------------------


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


class _GrpcLink:
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

    def call(self, method: str, request: Any, timeout: float | None) -> Any:
        import grpc

        stub = self._sync_stub()
        try:
            return getattr(stub, method)(request, metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as exc:
            raise self.unreachable(method, exc) from exc

    async def acall(self, method: str, request: Any, timeout: float | None) -> Any:
        import grpc

        stub = self._async_stub()
        try:
            return await getattr(stub, method)(request, metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as exc:
            raise self.unreachable(method, exc) from exc

    def watch(self, request: hpb.WatchRequest) -> WatchCall:
        return _GrpcWatch(self, self._sync_stub().WatchVariables(request, metadata=self._metadata))

    def awatch(self, request: hpb.WatchRequest) -> AsyncWatchCall:
        call = self._async_stub().WatchVariables(request, metadata=self._metadata)
        return _GrpcAsyncWatch(self, call)

    def close(self) -> None:
        with self._lock:
            channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            channel.close()


class _GrpcWatch:
    def __init__(self, link: _GrpcLink, call: Any) -> None:
        self._link = link
        self._call = call

    def next_item(self) -> hpb.WatchItem | None:
        import grpc

        try:
            item: hpb.WatchItem | None = next(self._call, None)
        except grpc.RpcError as exc:
            raise self._link.unreachable("WatchVariables", exc) from exc
        return item

    def cancel(self) -> None:
        self._call.cancel()


class _GrpcAsyncWatch:
    def __init__(self, link: _GrpcLink, call: Any) -> None:
        self._link = link
        self._call = call

    async def read(self) -> hpb.WatchItem | None:
        import grpc

        try:
            item = await self._call.read()
        except grpc.RpcError as exc:
            raise self._link.unreachable("WatchVariables", exc) from exc
        return None if item is grpc.aio.EOF else item  # type: ignore[attr-defined]

    def cancel(self) -> None:
        self._call.cancel()


# -- the client --------------------------------------------------------------------------------


class _Op(NamedTuple, Generic[T]):
    """One unary call: the RPC, its request, and how to read a successful response."""

    method: str
    request: Any
    parse: Callable[[Any], T]


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
        max_message_bytes: int = _DEFAULT_MAX_MESSAGE,
        allow_pickle: bool = False,
        link: HostLink | None = None,
    ) -> None:
        self.link: HostLink = link or _GrpcLink(
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

    def run(self, op: _Op[T], *, timeout: float | None = None) -> T:
        """Make a unary call, blocking (sync tools).

        Raises:
            SnakepitError: the host answered with an error (rebuilt with its kind), or
                could not be reached.
            RuntimeError: called on the worker's event loop (use :meth:`arun`).
        """
        self._not_on_loop(op.method)
        return op.parse(self.link.call(op.method, op.request, timeout))

    async def arun(self, op: _Op[T], *, timeout: float | None = None) -> T:
        """Make a unary call from an async tool. Raises as :meth:`run`."""
        return op.parse(await self.link.acall(op.method, op.request, timeout))

    def open_watch(self, request: hpb.WatchRequest) -> HostWatch:
        """Start a watch stream and return once it is live (blocking)."""
        self._not_on_loop("watch")
        watch = HostWatch(self, self.link.watch(request), request.session_id)
        watch._started()
        return watch

    async def aopen_watch(self, request: hpb.WatchRequest) -> AsyncHostWatch:
        """Start a watch stream from an async tool and return once it is live."""
        watch = AsyncHostWatch(self, self.link.awatch(request), request.session_id)
        await watch._started()
        return watch

    # -- host tools --------------------------------------------------------------------------

    def tool_op(self, name: str, args: Any, session_id: str | None) -> _Op[Any]:
        request = hpb.CallHostToolRequest(
            tool=name,
            args=to_payload(
                {} if args is None else args, f"args of host tool {name!r}", self.encoding
            ),
            session_id=session_id or "",
            worker_id=self.worker_id,
        )

        def parse(response: hpb.CallHostToolResponse) -> Any:
            if response.HasField("error"):
                raise error_from_wire(response.error)
            return from_payload(
                response.result, f"result of host tool {name!r}", allow_pickle=self.allow_pickle
            )

        return _Op("CallHostTool", request, parse)

    def list_tools_op(self) -> _Op[list[str]]:
        return _Op(
            "ListHostTools",
            hpb.ListHostToolsRequest(),
            lambda r: sorted(t.name for t in r.tools),
        )

    def session_metadata_op(
        self, session_id: str, metadata: Mapping[str, Any], replace: bool
    ) -> _Op[dict[str, Any]]:
        request = hpb.UpdateSessionMetadataRequest(
            session_id=session_id,
            metadata=to_payload(
                _mapping(metadata, f"session {session_id}"), f"metadata of session {session_id!r}"
            ),
            replace=replace,
        )

        def parse(response: hpb.SessionResponse) -> dict[str, Any]:
            if response.HasField("error"):
                raise error_from_wire(response.error)
            what = f"metadata of session {session_id!r}"
            return dict(from_payload(response.session.metadata, what) or {})

        return _Op("UpdateSessionMetadata", request, parse)

    def heartbeat_op(self, session_id: str) -> _Op[None]:
        def parse(response: hpb.SessionResponse) -> None:
            if response.HasField("error"):
                raise error_from_wire(response.error)

        return _Op("Heartbeat", hpb.SessionRequest(session_id=session_id), parse)

    def close(self) -> None:
        """Close the link's blocking channel (the async one closes with its loop). Idempotent."""
        self.link.close()

    def __repr__(self) -> str:
        return f"<HostClient {self.address or '(no host)'}>"


# -- watches -----------------------------------------------------------------------------------


def _first_item(item: Any, session_id: str) -> None:
    if item is None:
        raise SnakepitError(f"the host ended the watch of session {session_id!r} before it began")
    if item.HasField("error"):
        raise error_from_wire(item.error)


class HostWatch:
    """A live watch of a session's variables, for sync tools: iterate it for updates.

    Yields :class:`~snakepit.events.VariableUpdated` in write order; the iteration
    ends when the session is deleted or expires (:attr:`ended_reason` says which)
    or after :meth:`close`. Use it as a context manager to close it.
    """

    def __init__(self, client: HostClient, call: WatchCall, session_id: str) -> None:
        self.session_id = session_id
        self.ended_reason: str | None = None
        self._client = client
        self._call = call

    def _started(self) -> None:
        _first_item(self._call.next_item(), self.session_id)

    def __iter__(self) -> HostWatch:
        return self

    def __next__(self) -> VariableUpdated:
        if self.ended_reason is not None:
            raise StopIteration
        try:
            item = self._call.next_item()
        except SnakepitError:
            if self.ended_reason is not None:  # closed by us
                raise StopIteration from None
            raise
        if item is None or item.HasField("ended"):
            if self.ended_reason is None:
                self.ended_reason = item.ended.reason if item is not None else "stream ended"
            raise StopIteration
        if item.HasField("error"):
            self.ended_reason = "error"
            raise error_from_wire(item.error)
        return _update(item.update)

    def close(self) -> None:
        """Stop watching. Idempotent."""
        if self.ended_reason is None:
            self.ended_reason = "closed"
        self._call.cancel()

    def __enter__(self) -> HostWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncHostWatch:
    """A live watch of a session's variables, for async tools: ``async for`` it.

    Behaves as :class:`HostWatch`; use ``async with`` or :meth:`close` to stop it.
    """

    def __init__(self, client: HostClient, call: AsyncWatchCall, session_id: str) -> None:
        self.session_id = session_id
        self.ended_reason: str | None = None
        self._client = client
        self._call = call

    async def _read(self) -> Any:
        try:
            return await self._call.read()
        except SnakepitError:
            if self.ended_reason is not None:
                return None
            raise

    async def _started(self) -> None:
        _first_item(await self._read(), self.session_id)

    def __aiter__(self) -> AsyncHostWatch:
        return self

    async def __anext__(self) -> VariableUpdated:
        if self.ended_reason is not None:
            raise StopAsyncIteration
        item = await self._read()
        if item is None or item.HasField("ended"):
            if self.ended_reason is None:
                self.ended_reason = item.ended.reason if item is not None else "stream ended"
            raise StopAsyncIteration
        if item.HasField("error"):
            self.ended_reason = "error"
            raise error_from_wire(item.error)
        return _update(item.update)

    def close(self) -> None:
        """Stop watching. Idempotent."""
        if self.ended_reason is None:
            self.ended_reason = "closed"
        self._call.cancel()

    async def __aenter__(self) -> AsyncHostWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


# -- session variables -------------------------------------------------------------------------


def _check_variable(response: hpb.VariableResponse) -> Variable:
    if response.HasField("error"):
        raise error_from_wire(response.error)
    return _variable(response.variable)


def _check_variables(response: hpb.VariablesResponse) -> list[Variable]:
    if response.HasField("error"):
        raise error_from_wire(response.error)
    return [_variable(v) for v in response.variables]


def _check_deleted(response: hpb.DeleteVariableResponse) -> None:
    if response.HasField("error"):
        raise error_from_wire(response.error)


def _check_many(response: hpb.GetVariablesResponse) -> tuple[dict[str, Variable], list[str]]:
    if response.HasField("error"):
        raise error_from_wire(response.error)
    return {v.name: _variable(v) for v in response.variables}, list(response.missing)


def _check_batch(response: hpb.SetVariablesResponse) -> BatchResult:
    if response.HasField("error"):
        raise error_from_wire(response.error)
    errors: dict[str, VariableError] = {}
    for name, info in response.errors.items():
        exc = error_from_wire(info)
        errors[name] = (
            exc if isinstance(exc, VariableError) else VariableError(str(exc), variable=name)
        )
    return BatchResult(updated={v.name: _variable(v) for v in response.updated}, errors=errors)


def _check_export(response: hpb.ExportVariablesResponse) -> dict[str, Any]:
    if response.HasField("error"):
        raise error_from_wire(response.error)
    data: dict[str, Any] = from_payload(response.data, "export of session variables")
    return data


def _mapping(metadata: Any, of: str) -> dict[str, Any]:
    """``metadata`` as a dict, refused here (with the store's error) when it is not a mapping.

    Raises:
        InvalidValueError: ``metadata`` is not a mapping.
    """
    if not isinstance(metadata, Mapping):
        raise InvalidValueError(
            f"metadata of {of!r} must be a mapping (a dict), got {type(metadata).__name__}",
            argument="metadata",
        )
    return dict(metadata)


class WorkerVariables:
    """The variables of the session a tool runs in (``ctx.variables``).

    ``ctx.variables["x"]`` reads the value, ``ctx.variables["x"] = 3`` writes
    it; the methods mirror the host's ``session.variables``. Blocking methods
    are for synchronous tools; ``async`` tools use the ``a``-prefixed ones.

    Every call names the session; a tool called outside a session raises
    :class:`~snakepit.errors.SessionNotFoundError` without asking the host.
    """

    def __init__(self, client: HostClient, session_id: str | None, *, where: str = "") -> None:
        self._client = client
        self._session_id = session_id
        self._where = where

    @property
    def session_id(self) -> str:
        """The session's id.

        Raises:
            SessionNotFoundError: the tool runs outside a session.
        """
        if self._session_id is None:
            raise SessionNotFoundError(
                f"{self._where or 'this call'} runs outside a session, so it has no session "
                "variables; call the tool within one (pool.session(...).execute(...) or "
                "execute(..., session_id=...))",
                session_id=None,
            )
        return self._session_id

    # -- the operations (each a request and how to read its answer) --------------------------

    def _value(self, value: Any, name: str) -> pb.Payload:
        return to_payload(value, f"value of variable {name!r}")

    def _get(self, name: str) -> _Op[Variable]:
        request = hpb.GetVariableRequest(session_id=self.session_id, name=name)
        return _Op("GetVariable", request, _check_variable)

    def _set(self, name: str, value: Any, expected_version: int | None) -> _Op[Variable]:
        request = hpb.SetVariableRequest(
            session_id=self.session_id,
            name=name,
            value=self._value(value, name),
            expected_version=expected_version,
        )
        return _Op("SetVariable", request, _check_variable)

    def _register(
        self,
        name: str,
        type: str,
        value: Any,
        constraints: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
    ) -> _Op[Variable]:
        request = hpb.RegisterVariableRequest(
            session_id=self.session_id,
            name=name,
            type=type,
            value=self._value(value, name),
            constraints=to_payload(dict(constraints or {}), f"constraints of {name!r}"),
            metadata=to_payload(dict(metadata or {}), f"metadata of {name!r}"),
        )
        return _Op("RegisterVariable", request, _check_variable)

    def _get_many(self, names: Iterable[str]) -> _Op[tuple[dict[str, Variable], _Names]]:
        request = hpb.GetVariablesRequest(session_id=self.session_id, names=list(names))
        return _Op("GetVariables", request, _check_many)

    def _set_many(
        self, values: Mapping[str, Any], atomic: bool, expected: Mapping[str, int] | None
    ) -> _Op[BatchResult]:
        request = hpb.SetVariablesRequest(
            session_id=self.session_id,
            values=to_payload(dict(values), "values of set_many"),
            atomic=atomic,
            expected_versions=dict(expected or {}),
        )
        return _Op("SetVariables", request, _check_batch)

    def _list(self, pattern: str) -> _Op[_Variables]:
        request = hpb.ListVariablesRequest(session_id=self.session_id, pattern=pattern)
        return _Op("ListVariables", request, _check_variables)

    def _delete(self, name: str) -> _Op[None]:
        request = hpb.DeleteVariableRequest(session_id=self.session_id, name=name)
        return _Op("DeleteVariable", request, _check_deleted)

    def _history(self, name: str) -> _Op[_Variables]:
        request = hpb.HistoryRequest(session_id=self.session_id, name=name)
        return _Op("GetHistory", request, _check_variables)

    def _rollback(self, name: str, version: int, expected_version: int | None) -> _Op[Variable]:
        request = hpb.RollbackRequest(
            session_id=self.session_id,
            name=name,
            version=version,
            expected_version=expected_version,
        )
        return _Op("RollbackVariable", request, _check_variable)

    def _update_metadata(
        self,
        name: str,
        metadata: Mapping[str, Any],
        replace: bool,
        expected_version: int | None,
    ) -> _Op[Variable]:
        request = hpb.UpdateVariableMetadataRequest(
            session_id=self.session_id,
            name=name,
            metadata=to_payload(_mapping(metadata, name), f"metadata of variable {name!r}"),
            replace=replace,
            expected_version=expected_version,
        )
        return _Op("UpdateVariableMetadata", request, _check_variable)

    def _export(self, pattern: str) -> _Op[dict[str, Any]]:
        request = hpb.ExportVariablesRequest(session_id=self.session_id, pattern=pattern)
        return _Op("ExportVariables", request, _check_export)

    def _import(self, data: Mapping[str, Any], overwrite: bool) -> _Op[dict[str, Variable]]:
        request = hpb.ImportVariablesRequest(
            session_id=self.session_id,
            data=to_payload(data, "variables to import"),
            overwrite=overwrite,
        )
        return _Op("ImportVariables", request, lambda r: {v.name: v for v in _check_variables(r)})

    def _watch(self, names: Iterable[str] | None, include_current: bool) -> hpb.WatchRequest:
        return hpb.WatchRequest(
            session_id=self.session_id, names=list(names or ()), include_current=include_current
        )

    # -- blocking API (sync tools) -----------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        """The current value of ``name`` (see :meth:`get`)."""
        return self.get(name).value

    def __setitem__(self, name: str, value: Any) -> None:
        """Write ``value`` to ``name`` (see :meth:`set`)."""
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        """Delete ``name`` (see :meth:`delete`)."""
        self.delete(name)

    def get(self, name: str) -> Variable:
        """The current version of a variable.

        Raises:
            SessionNotFoundError: no session (outside one, deleted or expired).
            VariableNotFoundError: the session has no such variable.
        """
        return self._client.run(self._get(name))

    def set(self, name: str, value: Any, *, expected_version: int | None = None) -> Variable:
        """Write a new value; returns the new version.

        Raises:
            SessionNotFoundError: no session.
            VariableNotFoundError: no such variable (register it first).
            VariableValidationError: the value breaks the type or a constraint.
            VersionConflictError: ``expected_version`` is not the current version.
        """
        return self._client.run(self._set(name, value, expected_version))

    def register(
        self,
        name: str,
        type: str,
        value: Any,
        *,
        constraints: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Variable:
        """Define a variable at version 1 (the same definition again returns it unchanged).

        Raises:
            SessionNotFoundError: no session.
            VariableValidationError: bad name, type or constraints, or ``value`` breaks them.
            ValueError: the name exists with a different type or constraints.
        """
        return self._client.run(self._register(name, type, value, constraints, metadata))

    def get_many(self, names: Iterable[str]) -> tuple[dict[str, Variable], _Names]:
        """``(found, missing)`` for several names at once.

        Raises:
            SessionNotFoundError: no session.
        """
        return self._client.run(self._get_many(names))

    def set_many(
        self,
        values: Mapping[str, Any],
        *,
        atomic: bool = False,
        expected_versions: Mapping[str, int] | None = None,
    ) -> BatchResult:
        """Write several variables; all or nothing when ``atomic``.

        Raises:
            SessionNotFoundError: no session.
            VariableError: atomic, and a value failed (the first failure; nothing written).
        """
        return self._client.run(self._set_many(values, atomic, expected_versions))

    def list(self, pattern: str = "*") -> _Variables:
        """The variables whose names match the ``fnmatch`` ``pattern``, sorted by name.

        Raises:
            SessionNotFoundError: no session.
        """
        return self._client.run(self._list(pattern))

    def delete(self, name: str) -> None:
        """Delete a variable and its history.

        Raises:
            SessionNotFoundError: no session.
            VariableNotFoundError: no such variable.
        """
        self._client.run(self._delete(name))

    def history(self, name: str) -> _Variables:
        """The kept versions of a variable, oldest first.

        Raises:
            SessionNotFoundError: no session.
            VariableNotFoundError: no such variable.
        """
        return self._client.run(self._history(name))

    def rollback(self, name: str, version: int, *, expected_version: int | None = None) -> Variable:
        """Write the value of an older ``version`` again, as a new version.

        Raises:
            SessionNotFoundError: no session.
            VariableNotFoundError: no such variable or version.
            VersionConflictError: ``expected_version`` is not the current version.
        """
        return self._client.run(self._rollback(name, version, expected_version))

    def update_metadata(
        self,
        name: str,
        metadata: Mapping[str, Any],
        *,
        replace: bool = False,
        expected_version: int | None = None,
    ) -> Variable:
        """Merge ``metadata`` into a variable's metadata (or, with ``replace``, make it the
        whole metadata); a new version with the same value, seen by watches.

        Raises:
            SessionNotFoundError: no session.
            VariableNotFoundError: no such variable.
            VersionConflictError: ``expected_version`` is not the current version.
            InvalidValueError: ``metadata`` is not a mapping.
        """
        return self._client.run(self._update_metadata(name, metadata, replace, expected_version))

    def export(self, pattern: str = "*") -> dict[str, Any]:
        """The variables matching ``pattern`` as one JSON-compatible document, as the host's
        ``session.variables.export()`` makes it; :meth:`import_` reads it back.

        Raises:
            SessionNotFoundError: no session.
        """
        return self._client.run(self._export(pattern))

    def import_(self, data: Mapping[str, Any], *, overwrite: bool = False) -> dict[str, Variable]:
        """Write the variables of an export into this session, all or nothing; the written
        variables by name. A name that exists is an error unless ``overwrite``.

        Raises:
            SessionNotFoundError: no session.
            InvalidValueError: ``data`` is not an export.
            VariableValidationError: an entry's name, type, constraints or value is invalid.
            VariableRedefinedError: a name exists and ``overwrite`` is False.
        """
        return self._client.run(self._import(data, overwrite))

    def watch(
        self, names: Iterable[str] | None = None, *, include_current: bool = False
    ) -> HostWatch:
        """Follow this session's variable updates; returns once the watch is live.

        Raises:
            SessionNotFoundError: no session.
        """
        return self._client.open_watch(self._watch(names, include_current))

    # -- async API (async tools) -------------------------------------------------------------

    async def aget(self, name: str) -> Variable:
        """:meth:`get` for async tools."""
        return await self._client.arun(self._get(name))

    async def aset(self, name: str, value: Any, *, expected_version: int | None = None) -> Variable:
        """:meth:`set` for async tools."""
        return await self._client.arun(self._set(name, value, expected_version))

    async def aregister(
        self,
        name: str,
        type: str,
        value: Any,
        *,
        constraints: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Variable:
        """:meth:`register` for async tools."""
        return await self._client.arun(self._register(name, type, value, constraints, metadata))

    async def aget_many(self, names: Iterable[str]) -> tuple[dict[str, Variable], _Names]:
        """:meth:`get_many` for async tools."""
        return await self._client.arun(self._get_many(names))

    async def aset_many(
        self,
        values: Mapping[str, Any],
        *,
        atomic: bool = False,
        expected_versions: Mapping[str, int] | None = None,
    ) -> BatchResult:
        """:meth:`set_many` for async tools."""
        return await self._client.arun(self._set_many(values, atomic, expected_versions))

    async def alist(self, pattern: str = "*") -> _Variables:
        """:meth:`list` for async tools."""
        return await self._client.arun(self._list(pattern))

    async def adelete(self, name: str) -> None:
        """:meth:`delete` for async tools."""
        await self._client.arun(self._delete(name))

    async def ahistory(self, name: str) -> _Variables:
        """:meth:`history` for async tools."""
        return await self._client.arun(self._history(name))

    async def arollback(
        self, name: str, version: int, *, expected_version: int | None = None
    ) -> Variable:
        """:meth:`rollback` for async tools."""
        return await self._client.arun(self._rollback(name, version, expected_version))

    async def aupdate_metadata(
        self,
        name: str,
        metadata: Mapping[str, Any],
        *,
        replace: bool = False,
        expected_version: int | None = None,
    ) -> Variable:
        """:meth:`update_metadata` for async tools."""
        op = self._update_metadata(name, metadata, replace, expected_version)
        return await self._client.arun(op)

    async def aexport(self, pattern: str = "*") -> dict[str, Any]:
        """:meth:`export` for async tools."""
        return await self._client.arun(self._export(pattern))

    async def aimport_(
        self, data: Mapping[str, Any], *, overwrite: bool = False
    ) -> dict[str, Variable]:
        """:meth:`import_` for async tools."""
        return await self._client.arun(self._import(data, overwrite))

    async def awatch(
        self, names: Iterable[str] | None = None, *, include_current: bool = False
    ) -> AsyncHostWatch:
        """:meth:`watch` for async tools: ``async for update in await ctx.variables.awatch()``."""
        return await self._client.aopen_watch(self._watch(names, include_current))

    def __repr__(self) -> str:
        return f"<WorkerVariables session={self._session_id!r} via {self._client!r}>"


# -- the process's client ----------------------------------------------------------------------

_default: HostClient | None = None
_default_lock = threading.Lock()


def configure_from_environ(
    *,
    worker_id: str = "",
    max_message_bytes: int = _DEFAULT_MAX_MESSAGE,
    allow_pickle: bool = False,
    token: str = "",
) -> HostClient:
    """Build this process's client from the environment, removing the variables from it.

    The worker main calls this once at start, so a subprocess a tool starts
    does not inherit them. ``token`` is the bridge's token as the host handed it over
    (on a pipe, not in the environment); without it ``SNAKEPIT_HOST_TOKEN`` is used.
    No connection is made until the first call.
    """
    global _default
    env_token = os.environ.pop(ENV_TOKEN, "")
    client = HostClient(
        os.environ.pop(ENV_ADDRESS, ""),
        token=token or env_token,
        worker_id=worker_id,
        max_message_bytes=max_message_bytes,
        allow_pickle=allow_pickle,
    )
    with _default_lock:
        _default = client
    return client


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
