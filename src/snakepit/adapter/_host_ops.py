"""Every call a worker makes to its host, as an ``Op``: the request it sends and how its answer is read.

The builders here are pure: they check the caller's arguments, build the
protobuf request, and pair it with a reader that turns the host's response
into Python values, or raises the typed error (``VariableValidationError``,
``VersionConflictError``, ``HostToolError``...) rebuilt from the ``ErrorInfo``
the host sent. :class:`~snakepit.adapter._host_client.HostClient` sends them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from snakepit._proto.snakepit.v1 import host_pb2 as hpb
from snakepit._variables import BatchResult, Variable
from snakepit._wire._errors import exception_from_info as error_from_wire
from snakepit._wire._payload import from_payload, to_payload
from snakepit.errors import InvalidValueError, SnakepitError, VariableError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from snakepit.codec import Encoding
    from snakepit.events import VariableUpdated

__all__ = [
    "Op",
    "check_watch_start",
    "delete_variable",
    "export_variables",
    "get_many",
    "get_variable",
    "heartbeat",
    "history",
    "host_tool",
    "import_variables",
    "list_host_tools",
    "list_variables",
    "register_variable",
    "rollback",
    "session_metadata",
    "set_many",
    "set_variable",
    "update_from_wire",
    "variable_metadata",
    "watch_request",
]

_T = TypeVar("_T")


class Op(NamedTuple, Generic[_T]):
    """One unary call: the RPC, its request, and how to read a successful response."""

    method: str
    request: Any
    parse: Callable[[Any], _T]


# -- reading answers ---------------------------------------------------------------------------


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


def update_from_wire(item: hpb.VariableUpdate) -> VariableUpdated:
    """A watch stream's update as the event the host's own watches yield."""
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


def check_watch_start(item: hpb.WatchItem | None, session_id: str) -> None:
    """Check a watch stream's first item, which says whether the watch is live.

    Raises:
        SnakepitError: the stream ended before it began, or the host refused the
            watch (the error rebuilt with its kind, e.g. ``SessionNotFoundError``).
    """
    if item is None:
        raise SnakepitError(f"the host ended the watch of session {session_id!r} before it began")
    if item.HasField("error"):
        raise error_from_wire(item.error)


def _checked(response: Any) -> Any:
    """The response, or the host's error raised with its kind."""
    if response.HasField("error"):
        raise error_from_wire(response.error)
    return response


def _one(response: hpb.VariableResponse) -> Variable:
    return _variable(_checked(response).variable)


def _several(response: hpb.VariablesResponse) -> list[Variable]:
    return [_variable(v) for v in _checked(response).variables]


def _none(response: Any) -> None:
    _checked(response)


def _found_and_missing(response: hpb.GetVariablesResponse) -> tuple[dict[str, Variable], list[str]]:
    _checked(response)
    return {v.name: _variable(v) for v in response.variables}, list(response.missing)


def _batch(response: hpb.SetVariablesResponse) -> BatchResult:
    _checked(response)
    errors: dict[str, VariableError] = {}
    for name, info in response.errors.items():
        exc = error_from_wire(info)
        errors[name] = (
            exc if isinstance(exc, VariableError) else VariableError(str(exc), variable=name)
        )
    return BatchResult(updated={v.name: _variable(v) for v in response.updated}, errors=errors)


def _document(response: hpb.ExportVariablesResponse) -> dict[str, Any]:
    data: dict[str, Any] = from_payload(_checked(response).data, "export of session variables")
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


# -- session variables -------------------------------------------------------------------------


def _value(value: Any, name: str) -> Any:
    return to_payload(value, f"value of variable {name!r}")


def get_variable(session_id: str, name: str) -> Op[Variable]:
    request = hpb.GetVariableRequest(session_id=session_id, name=name)
    return Op("GetVariable", request, _one)


def set_variable(
    session_id: str, name: str, value: Any, expected_version: int | None
) -> Op[Variable]:
    request = hpb.SetVariableRequest(
        session_id=session_id,
        name=name,
        value=_value(value, name),
        expected_version=expected_version,
    )
    return Op("SetVariable", request, _one)


def register_variable(
    session_id: str,
    name: str,
    type: str,
    value: Any,
    constraints: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
) -> Op[Variable]:
    request = hpb.RegisterVariableRequest(
        session_id=session_id,
        name=name,
        type=type,
        value=_value(value, name),
        constraints=to_payload(dict(constraints or {}), f"constraints of {name!r}"),
        metadata=to_payload(dict(metadata or {}), f"metadata of {name!r}"),
    )
    return Op("RegisterVariable", request, _one)


def get_many(session_id: str, names: Iterable[str]) -> Op[tuple[dict[str, Variable], list[str]]]:
    request = hpb.GetVariablesRequest(session_id=session_id, names=list(names))
    return Op("GetVariables", request, _found_and_missing)


def set_many(
    session_id: str, values: Mapping[str, Any], atomic: bool, expected: Mapping[str, int] | None
) -> Op[BatchResult]:
    request = hpb.SetVariablesRequest(
        session_id=session_id,
        values=to_payload(dict(values), "values of set_many"),
        atomic=atomic,
        expected_versions=dict(expected or {}),
    )
    return Op("SetVariables", request, _batch)


def list_variables(session_id: str, pattern: str) -> Op[list[Variable]]:
    request = hpb.ListVariablesRequest(session_id=session_id, pattern=pattern)
    return Op("ListVariables", request, _several)


def delete_variable(session_id: str, name: str) -> Op[None]:
    request = hpb.DeleteVariableRequest(session_id=session_id, name=name)
    return Op("DeleteVariable", request, _none)


def history(session_id: str, name: str) -> Op[list[Variable]]:
    request = hpb.HistoryRequest(session_id=session_id, name=name)
    return Op("GetHistory", request, _several)


def rollback(
    session_id: str, name: str, version: int, expected_version: int | None
) -> Op[Variable]:
    request = hpb.RollbackRequest(
        session_id=session_id, name=name, version=version, expected_version=expected_version
    )
    return Op("RollbackVariable", request, _one)


def variable_metadata(
    session_id: str,
    name: str,
    metadata: Mapping[str, Any],
    replace: bool,
    expected_version: int | None,
) -> Op[Variable]:
    request = hpb.UpdateVariableMetadataRequest(
        session_id=session_id,
        name=name,
        metadata=to_payload(_mapping(metadata, name), f"metadata of variable {name!r}"),
        replace=replace,
        expected_version=expected_version,
    )
    return Op("UpdateVariableMetadata", request, _one)


def export_variables(session_id: str, pattern: str) -> Op[dict[str, Any]]:
    request = hpb.ExportVariablesRequest(session_id=session_id, pattern=pattern)
    return Op("ExportVariables", request, _document)


def import_variables(
    session_id: str, data: Mapping[str, Any], overwrite: bool
) -> Op[dict[str, Variable]]:
    request = hpb.ImportVariablesRequest(
        session_id=session_id, data=to_payload(data, "variables to import"), overwrite=overwrite
    )
    return Op("ImportVariables", request, lambda r: {v.name: v for v in _several(r)})


def watch_request(
    session_id: str, names: Iterable[str] | None, include_current: bool
) -> hpb.WatchRequest:
    return hpb.WatchRequest(
        session_id=session_id, names=list(names or ()), include_current=include_current
    )


# -- sessions and host tools -------------------------------------------------------------------


def host_tool(
    name: str,
    args: Any,
    session_id: str | None,
    *,
    worker_id: str,
    encoding: Encoding,
    allow_pickle: bool,
) -> Op[Any]:
    request = hpb.CallHostToolRequest(
        tool=name,
        args=to_payload({} if args is None else args, f"args of host tool {name!r}", encoding),
        session_id=session_id or "",
        worker_id=worker_id,
    )

    def parse(response: hpb.CallHostToolResponse) -> Any:
        return from_payload(
            _checked(response).result, f"result of host tool {name!r}", allow_pickle=allow_pickle
        )

    return Op("CallHostTool", request, parse)


def list_host_tools() -> Op[list[str]]:
    return Op(
        "ListHostTools", hpb.ListHostToolsRequest(), lambda r: sorted(t.name for t in r.tools)
    )


def session_metadata(
    session_id: str, metadata: Mapping[str, Any], replace: bool
) -> Op[dict[str, Any]]:
    what = f"metadata of session {session_id!r}"
    request = hpb.UpdateSessionMetadataRequest(
        session_id=session_id,
        metadata=to_payload(_mapping(metadata, f"session {session_id}"), what),
        replace=replace,
    )

    def parse(response: hpb.SessionResponse) -> dict[str, Any]:
        return dict(from_payload(_checked(response).session.metadata, what) or {})

    return Op("UpdateSessionMetadata", request, parse)


def heartbeat(session_id: str) -> Op[None]:
    return Op("Heartbeat", hpb.SessionRequest(session_id=session_id), _none)
