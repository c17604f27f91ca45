"""``ErrorInfo`` <-> exception, in both directions, for both sides of the wire.

A snakepit error keeps its kind (the class name), message and JSON-able
details; any other exception raised by a tool becomes ``ToolError`` with the
remote type and traceback. The host bridge sends ``ValueError`` as its own
kind (a request the store refuses as malformed) so worker code can catch it.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit.errors import (
    SnakepitError,
    ToolError,
    details_from_json,
    from_wire,
)

__all__ = ["error_info", "exception_from_info", "host_error_info"]

log = logging.getLogger("snakepit.bridge")
_RELAYED = ("ToolError", "HostToolError")


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def error_info(exc: BaseException, *, tool: str | None = None) -> pb.ErrorInfo:
    """The wire form of an exception: snakepit errors keep their kind, others become ToolError."""
    tb = "".join(traceback.format_exception(exc))
    if isinstance(exc, SnakepitError):
        details = {k: v for k, v in exc.details.items() if _jsonable(v)}
        return pb.ErrorInfo(
            kind=type(exc).__name__,
            message=exc.message,
            # A relayed error (HostToolError) keeps the type and traceback of where it began.
            remote_type=str(details.pop("remote_type", "")) or type(exc).__name__,
            traceback=str(details.pop("remote_traceback", "")) or tb,
            details_json=json.dumps(details),
        )
    remote_type = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        remote_type = f"{module}.{remote_type}"
    where = f"tool {tool!r} raised" if tool else "the worker raised"
    message = f"{where} {remote_type}: {exc}" if str(exc) else f"{where} {remote_type}"
    if isinstance(exc, SystemExit):
        message = (
            f"{where} SystemExit({exc.code!r}) (sys.exit() in a tool ends the call with "
            "this error; the worker keeps serving)"
        )
    return pb.ErrorInfo(
        kind=ToolError.__name__,
        message=message,
        remote_type=remote_type,
        traceback=tb,
        details_json=json.dumps({"tool": tool} if tool else {}),
    )


def host_error_info(exc: Exception) -> pb.ErrorInfo:
    """The host bridge's wire form of a failure: snakepit errors keep their kind, ValueError
    stays ValueError, anything else is the bridge's own failure (and is logged)."""
    if isinstance(exc, SnakepitError):
        info = error_info(exc)
        if info.kind not in _RELAYED:
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


def exception_from_info(info: pb.ErrorInfo, *, worker_id: str | None = None) -> Exception:
    """The exception an ``ErrorInfo`` describes (``ValueError`` kinds become
    ``InvalidValueError``, still a ``ValueError``).

    ``worker_id``, when given, is added to the details unless the sender named one.
    """
    details = details_from_json(info.details_json)
    if info.kind == "ValueError":  # a refusal that is still a ValueError, typed on this side
        return from_wire("InvalidValueError", info.message, details)
    if worker_id is not None:
        details.setdefault("worker_id", worker_id)
    if info.kind in _RELAYED:
        details["remote_type"] = info.remote_type
        details["remote_traceback"] = info.traceback
    return from_wire(info.kind, info.message, details)
