"""Which inputs a session store accepts, and the errors that name the others.

The stores' rules are pure decisions every backend applies, without I/O;
a backend (:class:`~snakepit.bridge._memory.InMemorySessionStore`,
:class:`~snakepit.bridge._redis_store.RedisSessionStore`) keeps the data and
makes each operation atomic. This module decides:

* which ids, names, TTLs, settings, mappings and patterns are valid;
* when a session has expired (``now >= last_access + ttl``) and when the store
  is full (``live >= max_sessions``);
* the errors themselves, so every backend words them the same way.

What a variable write produces is decided in :mod:`snakepit.bridge._plans`,
exports and imports in :mod:`snakepit.bridge._transfer`. A backend that cannot
run Python where it commits (Redis runs Lua) re-checks the two comparisons it
must make atomically - the session is live, the version is the one read - and
leaves every other decision to these functions.
"""

from __future__ import annotations

import fnmatch
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from snakepit.bridge._types import short_repr
from snakepit.bridge._variables import validate_variable_name
from snakepit.errors import (
    InvalidValueError,
    SessionNotFoundError,
    SessionQuotaError,
    VariableNotFoundError,
    VariableValidationError,
)

__all__ = [
    "check_settings",
    "check_ttl",
    "expires_at",
    "is_expired",
    "is_session_id",
    "is_variable_name",
    "mapping",
    "match_names",
    "merged_metadata",
    "name_list",
    "new_session_id",
    "quota_error",
    "quota_full",
    "session_exists_error",
    "session_not_found",
    "validate_session_id",
    "variable_not_found",
]

_SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def is_session_id(session_id: Any) -> bool:
    """True when ``session_id`` is a string of the shape ``[A-Za-z0-9_.:-]{1,128}``."""
    return isinstance(session_id, str) and _SESSION_ID.fullmatch(session_id) is not None


def validate_session_id(session_id: Any) -> str:
    """Return ``session_id`` when it is a valid id: ``[A-Za-z0-9_.:-]{1,128}``.

    Raises:
        InvalidValueError: it is not a string of that shape (also a ``ValueError``).
    """
    if not is_session_id(session_id):
        raise InvalidValueError(
            f"invalid session id {short_repr(session_id)}: use 1-128 characters [A-Za-z0-9_.:-]",
            argument="session_id",
        )
    return str(session_id)


def new_session_id(session_id: Any) -> str:
    """The id a new session gets: ``session_id`` checked, or a fresh random one for None.

    Raises:
        InvalidValueError: ``session_id`` is not None nor a valid id.
    """
    return uuid.uuid4().hex if session_id is None else validate_session_id(session_id)


def mapping(value: Any, argument: str) -> dict[str, Any]:
    """A fresh dict of ``value`` (None: empty), which must be a mapping.

    Raises:
        InvalidValueError: it is not a mapping (named by ``argument``).
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidValueError(
            f"{argument} must be a mapping (a dict), got {type(value).__name__}",
            argument=argument,
        )
    return dict(value)


def name_list(names: Any) -> list[Any]:
    """The names of an iterable of variable names; a lone string is a mistake, not a list.

    Raises:
        InvalidValueError: ``names`` is a string or not iterable.
    """
    if isinstance(names, str | bytes) or not isinstance(names, Iterable):
        raise InvalidValueError(
            f"names must be a list of variable names, got {type(names).__name__}",
            argument="names",
        )
    return list(names)


def is_variable_name(name: Any) -> bool:
    """True when ``name`` could name a variable (``[A-Za-z_][A-Za-z0-9_.-]{0,127}``)."""
    try:
        validate_variable_name(name)
    except VariableValidationError:
        return False
    return True


def check_ttl(ttl: Any) -> float:
    """``ttl`` as a float when it is a number of seconds > 0 (``math.inf``: never expires).

    Raises:
        InvalidValueError: it is not a number > 0.
    """
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or (isinstance(ttl, float) and math.isnan(ttl))
        or ttl <= 0
    ):
        raise InvalidValueError(
            f"ttl must be a number of seconds > 0 (math.inf: never), got {short_repr(ttl)}",
            argument="ttl",
        )
    try:
        return float(ttl)
    except OverflowError:  # an int beyond float range is as good as never
        return math.inf


def check_settings(*, ttl: Any, max_sessions: Any, history_limit: Any) -> None:
    """Validate a store's settings.

    Raises:
        InvalidValueError: ``ttl``, ``max_sessions`` or ``history_limit`` is out of range.
    """
    check_ttl(ttl)
    if max_sessions is not None and (
        not isinstance(max_sessions, int) or isinstance(max_sessions, bool) or max_sessions < 1
    ):
        raise InvalidValueError(
            f"max_sessions must be >= 1 or None, got {short_repr(max_sessions)}",
            argument="max_sessions",
        )
    if not isinstance(history_limit, int) or isinstance(history_limit, bool) or history_limit < 1:
        raise InvalidValueError(
            f"history_limit must be >= 1, got {short_repr(history_limit)}",
            argument="history_limit",
        )


def expires_at(last_access: float, ttl: float) -> float:
    """When a session last used at ``last_access`` expires (``inf`` for an infinite TTL)."""
    return last_access + ttl


def is_expired(last_access: float, ttl: float, now: float) -> bool:
    """True when a session last used at ``last_access`` is gone at ``now`` (the TTL slides)."""
    return now >= expires_at(last_access, ttl)


def quota_full(live: int, max_sessions: int | None) -> bool:
    """True when ``live`` sessions leave no room for one more."""
    return max_sessions is not None and live >= max_sessions


def quota_error(store: str, session_id: str, max_sessions: int) -> SessionQuotaError:
    """The error for a session that would exceed ``max_sessions``."""
    return SessionQuotaError(
        f"cannot create session {session_id!r}: store {store!r} already holds "
        f"max_sessions={max_sessions} live sessions; delete some or raise the limit",
        session_id=session_id,
        max_sessions=max_sessions,
    )


def session_exists_error(store: str, session_id: str) -> InvalidValueError:
    """The error for ``create`` with an id that is in use."""
    return InvalidValueError(
        f"session {session_id!r} already exists in store {store!r}; use get_or_create() to reuse it",
        argument="session_id",
    )


def session_not_found(store: str, session_id: Any) -> SessionNotFoundError:
    """The error for an id that names no live session."""
    return SessionNotFoundError(
        f"session {short_repr(session_id)} not found in store {store!r} "
        "(never created, deleted or expired); create it first",
        session_id=session_id,
    )


def variable_not_found(session_id: str, name: Any) -> VariableNotFoundError:
    """The error for a name that is not a variable of the session."""
    return VariableNotFoundError(
        f"session {session_id!r} has no variable {short_repr(name)}; register it first",
        session_id=session_id,
        variable=name,
    )


def match_names(names: Iterable[str], pattern: str) -> list[str]:
    """The names that match the ``fnmatch`` ``pattern`` (case-sensitive), sorted.

    Raises:
        InvalidValueError: ``pattern`` is not a string.
    """
    if not isinstance(pattern, str):
        raise InvalidValueError(
            f"pattern must be an fnmatch pattern string, got {type(pattern).__name__}",
            argument="pattern",
        )
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def merged_metadata(
    current: Mapping[str, Any], metadata: Any, *, replace: bool, argument: str = "metadata"
) -> dict[str, Any]:
    """The metadata an update leaves: ``metadata`` merged over ``current``, or it alone.

    Raises:
        InvalidValueError: ``metadata`` is not a mapping, or ``replace`` not a bool.
    """
    if not isinstance(replace, bool):
        raise InvalidValueError(
            f"replace must be True or False, got {short_repr(replace)}", argument="replace"
        )
    given = mapping(metadata, argument)
    return given if replace else {**current, **given}
