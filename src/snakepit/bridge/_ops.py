"""The host's answers to worker code, independent of the transport that carried the question.

:class:`HostOps` is a thin translation of the session store and the host tool
registry: requests are decoded, the store or tool does the work, and every
failure is returned in the response body as a typed ``ErrorInfo`` (``kind``
names a class of :mod:`snakepit.errors`, rebuilt in the worker). The gRPC
bridge (:mod:`snakepit.bridge._service`) serves it as ``HostService``; the local
transport dispatches its ``HOST_CALL`` frames to it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, TypeVar

from snakepit._proto.snakepit.v1 import host_pb2 as hpb
from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._wire._errors import host_error_info
from snakepit._wire._framing import HOST_METHODS
from snakepit._wire._payload import from_payload, to_payload
from snakepit.codec import Encoding
from snakepit.errors import SnakepitError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from snakepit._variables import Variable
    from snakepit.bridge._host_tools import HostToolRegistry
    from snakepit.bridge._store import SessionInfo, SessionStore

__all__ = ["STREAMING_METHODS", "HostOps"]

log = logging.getLogger("snakepit.bridge")
T = TypeVar("T")
STREAMING_METHODS = frozenset({"WatchVariables"})
_SERVICE = hpb.DESCRIPTOR.services_by_name["HostService"]
_REQUESTS: dict[str, Any] = {
    name: getattr(hpb, _SERVICE.methods_by_name[name].input_type.name) for name in HOST_METHODS
}


_error = host_error_info


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


def _session_info(session: SessionInfo) -> hpb.SessionInfo:
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


class HostOps:
    """Serves one session store and one host tool registry, whatever the transport.

    Each method takes a request message (and an unused transport context) and returns
    the response message; ``WatchVariables`` is an async iterator of ``WatchItem``.
    The gRPC bridge registers it as the ``HostService`` servicer; the local transport
    calls it through :meth:`call` and :meth:`watch` with the serialized request.

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

    async def _session(self, op: Callable[[], Awaitable[SessionInfo]]) -> hpb.SessionResponse:
        try:
            return hpb.SessionResponse(session=_session_info(await op()))
        except Exception as exc:
            return hpb.SessionResponse(error=_error(exc))

    async def GetSession(
        self, request: hpb.SessionRequest, context: Any = None
    ) -> hpb.SessionResponse:
        return await self._session(lambda: self._store.get(request.session_id))

    async def Heartbeat(
        self, request: hpb.SessionRequest, context: Any = None
    ) -> hpb.SessionResponse:
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

    async def GetHistory(
        self, request: hpb.HistoryRequest, context: Any = None
    ) -> hpb.VariablesResponse:
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

    async def UpdateVariableMetadata(
        self, request: hpb.UpdateVariableMetadataRequest, context: Any
    ) -> hpb.VariableResponse:
        return await self._variable(
            lambda: self._store.update_variable_metadata(
                request.session_id,
                request.name,
                self._value(request.metadata, f"metadata of variable {request.name!r}"),
                replace=request.replace,
                expected_version=_optional(request, "expected_version"),
            )
        )

    async def ExportVariables(
        self, request: hpb.ExportVariablesRequest, context: Any
    ) -> hpb.ExportVariablesResponse:
        try:
            data = await self._store.export_variables(request.session_id, request.pattern or "*")
            what = f"export of the variables of session {request.session_id!r}"
            return hpb.ExportVariablesResponse(data=to_payload(data, what))
        except Exception as exc:
            return hpb.ExportVariablesResponse(error=_error(exc))

    async def ImportVariables(
        self, request: hpb.ImportVariablesRequest, context: Any
    ) -> hpb.VariablesResponse:
        async def op() -> list[Variable]:
            data = self._value(request.data, "variables to import")
            written = await self._store.import_variables(
                request.session_id, data, overwrite=request.overwrite
            )
            return list(written.values())

        return await self._variables(op)

    async def UpdateSessionMetadata(
        self, request: hpb.UpdateSessionMetadataRequest, context: Any
    ) -> hpb.SessionResponse:
        return await self._session(
            lambda: self._store.update_metadata(
                request.session_id,
                self._value(request.metadata, f"metadata of session {request.session_id!r}"),
                replace=request.replace,
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

    # -- the transport-neutral entry points ---------------------------------------------------

    async def call(self, method: str, body: bytes) -> bytes:
        """Run the unary ``method`` on a serialized request; the serialized response.

        Raises:
            KeyError: no such unary method.
            google.protobuf.message.DecodeError: the request is malformed.
        """
        if method in STREAMING_METHODS:
            raise KeyError(method)
        request = _REQUESTS[method].FromString(body)
        response = await getattr(self, method)(request, None)
        data: bytes = response.SerializeToString()
        return data

    def watch(self, body: bytes) -> AsyncIterator[hpb.WatchItem]:
        """Run ``WatchVariables`` on a serialized request.

        Raises:
            google.protobuf.message.DecodeError: the request is malformed.
        """
        return self.WatchVariables(hpb.WatchRequest.FromString(body), None)
