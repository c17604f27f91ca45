"""The error hierarchy, grouped by what the caller should do.

``SnakepitError`` is the root. Below it the groups say the remedy:

* :class:`RequestError` - the request itself is wrong: fix the call
  (unknown tool, bad arguments, a value the codec cannot carry).
* :class:`ToolError` - the tool ran and raised: look at its remote traceback.
* :class:`SnakepitTimeoutError` - something took too long: raise the bound or
  look at what is slow.
* :class:`CapacityError` - the pool is full or a worker is busy: back off and
  retry, or grow the pool.
* :class:`WorkerError` - a worker broke under you: the call may succeed again
  on a fresh worker.
* :class:`PoolClosedError` - you closed the pool.
* :class:`ConfigError` - a pool option is invalid (also a ``ValueError``).
* :class:`SessionError` / :class:`VariableError` - sessions and session
  variables.

This module is shared by the host and the worker side and imports nothing of
either. Errors cross the wire as ``(kind, message, details)`` and are rebuilt
on the other side by :func:`from_wire`.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Mapping
from concurrent.futures import BrokenExecutor
from typing import TYPE_CHECKING, Any

__all__ = [
    "BrokenExecutorError",
    "CapacityError",
    "ConfigError",
    "ExecutionTimeoutError",
    "HostToolError",
    "InvalidArgumentsError",
    "InvalidValueError",
    "PoolClosedError",
    "PoolDegradedError",
    "PoolSaturatedError",
    "QueueTimeoutError",
    "RequestError",
    "SerializationError",
    "SessionError",
    "SessionNotFoundError",
    "SessionQuotaError",
    "SessionStoreUnavailableError",
    "SessionWorkerUnavailableError",
    "SnakepitError",
    "SnakepitTimeoutError",
    "ToolError",
    "ToolNotFoundError",
    "VariableError",
    "VariableNotFoundError",
    "VariableRedefinedError",
    "VariableValidationError",
    "VersionConflictError",
    "WorkerAuthenticationError",
    "WorkerBusyError",
    "WorkerCrashedError",
    "WorkerError",
    "WorkerStartupError",
    "brief",
    "details_from_json",
    "from_wire",
]


class _BriefRepr(reprlib.Repr):
    """``reprlib.Repr`` that never raises and never builds a huge intermediate string."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = 60
        self.maxother = 60
        self.maxlong = 40
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 8
        self.maxdict = 6
        self.maxlevel = 3

    def repr_int(self, x: int, level: int) -> str:
        # repr() of an int beyond sys.get_int_max_str_digits() raises ValueError, and a merely
        # long one costs quadratic time: describe it by its size instead.
        if x.bit_length() > 4096:
            digits = int(x.bit_length() * 0.30103) + 1
            return f"<{'-' if x < 0 else ''}int of about {digits} digits>"
        return super().repr_int(x, level)

    def repr_bytes(self, x: bytes, level: int) -> str:
        return self.repr_str(x, level)  # type: ignore[arg-type]  # slices before repr, like str

    repr_bytearray = repr_bytes

    def repr_instance(self, x: Any, level: int) -> str:
        try:
            return super().repr_instance(x, level)
        except Exception:
            return f"<{type(x).__name__} object>"


_BRIEF = _BriefRepr()
_BRIEF_LIMIT = 120


def brief(value: Any, limit: int = _BRIEF_LIMIT) -> str:
    """A short ``repr`` of ``value`` for an error message: at most ``limit`` characters.

    Use it wherever a message echoes a caller's or a worker's value. It never
    raises (a 10**5000 int, an object whose ``__repr__`` fails) and never
    renders more of a big value than it shows.
    """
    try:
        text = _BRIEF.repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


class SnakepitError(Exception):
    """Raised for every failure snakepit reports; the root of the hierarchy.

    Every subclass carries keyword ``details`` (worker id, tool, session...)
    that are also attributes, so callers can branch on them without parsing
    the message.
    """

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details
        for key, value in details.items():
            setattr(self, key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self).__name__, self.message, self.details))

    if TYPE_CHECKING:
        # The details are attributes (``err.worker_id``, ``err.exit_code``...); tell the checker.
        def __getattr__(self, name: str) -> Any: ...


def _rebuild(kind: str, message: str, details: dict[str, Any]) -> SnakepitError:
    return from_wire(kind, message, details)


# -- the request is wrong: fix the call ---------------------------------------------------------


class RequestError(SnakepitError):
    """Raised when a request cannot be carried out as written; change the call."""


class ToolNotFoundError(RequestError):
    """Raised when the named tool does not exist on the worker (or host).

    ``details``: ``tool``, ``available`` (the names that do exist).
    """


class InvalidArgumentsError(RequestError):
    """Raised when a tool's arguments do not fit its signature (missing, unknown, wrong kind).

    ``details``: ``tool``, ``argument``.
    """


class InvalidValueError(RequestError, ValueError):
    """Raised when an argument or option has a value snakepit does not accept.

    A ``Pool`` option, a timeout, a session id, a TTL, a list of names that is
    not a list... The message names the argument and what is allowed. It is also
    a ``ValueError``, which these were documented as before it existed.

    ``details``: ``argument`` (or ``option`` for a ``Pool`` option).
    """


class SerializationError(RequestError):
    """Raised when a value cannot be encoded for the wire (or decoded from it).

    ``details``: ``path`` (where in the value, e.g. ``args['x'][2]``) and ``type_name``.
    """


# -- the tool raised ---------------------------------------------------------------------------


class ToolError(SnakepitError):
    """Raised when a tool ran and raised an exception in the worker.

    ``details``: ``tool``, ``remote_type`` (the exception's class name in the
    worker), ``remote_traceback`` (its formatted traceback), ``worker_id``.
    """

    def __str__(self) -> str:
        remote_tb = self.details.get("remote_traceback")
        if remote_tb:
            return f"{self.message}\n\nRemote traceback (from the worker):\n{remote_tb}"
        return self.message


class HostToolError(ToolError):
    """Raised when a host tool called from worker code raised on the host.

    ``details``: ``tool`` (the host tool), ``remote_type``, ``remote_traceback``
    (the host's traceback). Worker code may catch it; if it does not, the
    caller of the worker's tool receives it unchanged.
    """

    def __str__(self) -> str:
        remote_tb = self.details.get("remote_traceback")
        if remote_tb:
            return f"{self.message}\n\nRemote traceback (from the host tool):\n{remote_tb}"
        return self.message


# -- too slow ----------------------------------------------------------------------------------


class SnakepitTimeoutError(SnakepitError, TimeoutError):
    """Raised when an operation ran out of time; raise the bound or find what is slow."""


class ExecutionTimeoutError(SnakepitTimeoutError):
    """Raised when a call ran past its deadline in a worker.

    The worker that ran it is killed and replaced: it may be stuck in native code.
    """


class QueueTimeoutError(SnakepitTimeoutError):
    """Raised when a request waited in the queue longer than ``queue_timeout``."""


# -- no capacity: back off ---------------------------------------------------------------------


class CapacityError(SnakepitError):
    """Raised when there is no room for the request now; back off and retry, or grow the pool."""


class PoolSaturatedError(CapacityError):
    """Raised at once when the pool's queue is full (``max_queue`` requests already wait)."""


class WorkerBusyError(CapacityError):
    """Raised in ``strict_fail_fast`` affinity when the session's worker is busy."""


# -- a worker broke under you ------------------------------------------------------------------


class WorkerError(SnakepitError):
    """Raised when a worker process failed; the same call may succeed on a fresh worker."""


class WorkerCrashedError(WorkerError):
    """Raised when the worker running a call exited or its channel broke mid-call.

    ``details``: ``worker_id``, ``exit_code`` (negative: killed by that signal), ``pid``.
    """


class WorkerStartupError(WorkerError):
    """Raised when a worker did not become ready: it exited, timed out or printed garbage.

    ``details``: ``worker_id``, ``exit_code``, ``stderr_tail``.
    """


class WorkerAuthenticationError(WorkerStartupError):
    """Raised when a remote worker refused the pool's token: the pool's ``token`` or
    ``token_file`` does not hold what the worker's ``--token-file`` holds.

    ``details``: ``worker_id``, ``address``.
    """


class BrokenExecutorError(WorkerStartupError, BrokenExecutor):
    """Raised when a ``snakepit.Executor`` cannot run tasks because its workers could not
    start (its ``initializer`` raised, or an option is wrong); create a new Executor.

    It is a ``concurrent.futures.BrokenExecutor`` too, so code written for
    ``ProcessPoolExecutor`` catches it. ``__cause__``: the startup failure.
    """


class PoolDegradedError(WorkerError):
    """Raised when no worker can take a call because the pool stopped restarting (degraded).

    Fix what makes the workers crash, then call ``pool.recover()``; the pool also
    retries by itself once ``restart_window`` has passed.
    """


class SessionWorkerUnavailableError(WorkerError):
    """Raised in strict affinity when the worker a session is pinned to is gone."""


# -- you closed it -----------------------------------------------------------------------------


class PoolClosedError(SnakepitError):
    """Raised when a pool is used after ``close()`` (or while it is closing)."""


# -- the pool is configured wrongly ------------------------------------------------------------


class ConfigError(InvalidValueError):
    """Raised when a pool option is invalid; the message names the option, the value and
    what is allowed. Also an ``InvalidValueError`` and a ``ValueError``.

    ``details``: ``option``.
    """


# -- sessions and variables --------------------------------------------------------------------


class SessionError(SnakepitError):
    """Raised for session problems; see the subclasses."""


class SessionNotFoundError(SessionError):
    """Raised when a session id names no live session (never created, deleted or expired)."""


class SessionQuotaError(SessionError):
    """Raised when creating a session would exceed ``max_sessions``."""


class SessionStoreUnavailableError(SessionError):
    """Raised when the session store cannot be reached (a Redis that went away, or timed out).

    Only calls that need the store fail; the pool keeps serving the others.
    ``details``: ``url`` (the store's address, password hidden), ``operation``.
    """


class VariableError(SnakepitError):
    """Raised for session variable problems; see the subclasses."""


class VariableNotFoundError(VariableError):
    """Raised when a session has no variable of that name."""


class VariableValidationError(VariableError):
    """Raised when a value breaks its variable's type or constraint.

    ``details``: ``variable``, ``constraint``, ``value``.
    """


class VariableRedefinedError(VariableError, ValueError):
    """Raised when a variable is registered again with another type or other constraints.

    Delete it first to register it differently. It is also a ``ValueError``, which
    it was documented as before it existed. ``details``: ``variable``, ``session_id``.
    """


class VersionConflictError(VariableError):
    """Raised when ``expected_version`` does not match the variable's current version.

    ``details``: ``variable``, ``expected_version``, ``actual_version``.
    """


_KINDS: dict[str, type[SnakepitError]] = {
    cls.__name__: cls
    for cls in (
        SnakepitError,
        RequestError,
        ToolNotFoundError,
        InvalidArgumentsError,
        InvalidValueError,
        SerializationError,
        ToolError,
        HostToolError,
        SnakepitTimeoutError,
        ExecutionTimeoutError,
        QueueTimeoutError,
        CapacityError,
        PoolSaturatedError,
        WorkerBusyError,
        WorkerError,
        WorkerCrashedError,
        WorkerStartupError,
        WorkerAuthenticationError,
        BrokenExecutorError,
        SessionWorkerUnavailableError,
        PoolClosedError,
        PoolDegradedError,
        ConfigError,
        SessionError,
        SessionNotFoundError,
        SessionQuotaError,
        SessionStoreUnavailableError,
        VariableError,
        VariableNotFoundError,
        VariableRedefinedError,
        VariableValidationError,
        VersionConflictError,
    )
}


def details_from_json(text: str) -> dict[str, Any]:
    """The details of an error from their wire form (a JSON object); ``{}`` when malformed.

    The other side may be any program, so a document that is not a JSON object loses its
    details rather than the error.
    """
    if not text:
        return {}
    try:
        details = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return details if isinstance(details, dict) else {}


def _wire_details(cls: type[SnakepitError], details: object) -> dict[str, Any]:
    """The details that can become attributes of ``cls`` without breaking it."""
    if not isinstance(details, Mapping):
        return {}
    return {
        key: value
        for key, value in details.items()
        if isinstance(key, str)
        and key.isidentifier()
        and not key.startswith("_")
        and key not in ("message", "details")
        and not hasattr(cls, key)  # args, with_traceback, add_note...: keep the class working
    }


def from_wire(kind: str, message: str, details: Mapping[str, Any] | None = None) -> SnakepitError:
    """Rebuild an error that crossed the wire; an unknown kind becomes a plain ``SnakepitError``.

    Whatever the other side sent, the result is a ``SnakepitError``: details whose
    names are not plain identifiers, start with ``_``, or would shadow an attribute
    of the class (``message``, ``details``, ``args``...) are dropped.
    """
    cls = _KINDS.get(kind, SnakepitError) if isinstance(kind, str) else SnakepitError
    if not isinstance(message, str):
        message = brief(message)
    return cls(message, **_wire_details(cls, details))
