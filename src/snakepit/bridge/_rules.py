"""The session store's rules, in one place: pure decisions every backend applies.

A backend (:class:`~snakepit.bridge._memory.InMemorySessionStore`,
:class:`~snakepit.bridge._redis_store.RedisSessionStore`) keeps the data and
makes each operation atomic; what an operation *means* is decided here, from
plain values, without I/O:

* which ids, names, TTLs and settings are valid;
* when a session has expired (``now >= last_access + ttl``) and when the store
  is full (``live >= max_sessions``);
* what registering, writing, rolling back and batch-writing a variable produce
  (the next :class:`~snakepit.Variable`) or raise (validation, version
  conflict, not found), and which versions the history keeps;
* the errors themselves, so every backend words them the same way.

A backend that cannot run Python where it commits (Redis runs Lua) re-checks
the two comparisons it must make atomically - the session is live, the version
is the one read - and leaves every other decision to these functions.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from snakepit._variables import Variable
from snakepit.bridge._types import get_type, short_repr
from snakepit.bridge._variables import validate_variable_name
from snakepit.errors import (
    InvalidValueError,
    SessionNotFoundError,
    SessionQuotaError,
    VariableError,
    VariableNotFoundError,
    VariableRedefinedError,
    VariableValidationError,
    VersionConflictError,
    brief,
)
from snakepit.events import VariableUpdated

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "EXPORT_FORMAT",
    "BatchPlan",
    "ImportWrite",
    "append_history",
    "check_settings",
    "check_ttl",
    "check_version",
    "deleted_event",
    "dropped_version",
    "expires_at",
    "export_document",
    "import_names",
    "is_expired",
    "is_session_id",
    "is_variable_name",
    "kept_versions",
    "match_names",
    "merged_metadata",
    "next_version",
    "plan_batch",
    "plan_import",
    "plan_metadata",
    "plan_register",
    "plan_write",
    "quota_error",
    "quota_full",
    "rollback_target",
    "session_exists_error",
    "session_not_found",
    "update_event",
    "validate_session_id",
    "variable_not_found",
]

_SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


# -- sessions -----------------------------------------------------------------------------------


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


# -- variables ----------------------------------------------------------------------------------


def variable_not_found(session_id: str, name: Any) -> VariableNotFoundError:
    """The error for a name that is not a variable of the session."""
    return VariableNotFoundError(
        f"session {session_id!r} has no variable {short_repr(name)}; register it first",
        session_id=session_id,
        variable=name,
    )


def plan_register(
    session_id: str,
    name: str,
    type: str,
    value: Any,
    constraints: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    existing: Variable | None,
    now: float,
) -> tuple[Variable, bool]:
    """What registering a variable does: ``(variable, created)``.

    The name, type, constraints and value are checked first (even when the
    variable exists). The same definition again returns ``existing`` with
    ``created`` False; a new name gets version 1.

    Raises:
        VariableValidationError: bad name, unknown type, bad constraints, or ``value``
            breaks them.
        VariableRedefinedError: the name exists with a different type or constraints
            (also a ``ValueError``).
        InvalidValueError: ``metadata`` is not a mapping.
    """
    validate_variable_name(name)
    vtype = get_type(type, variable=name)
    checked = vtype.check_constraints(constraints, variable=name)
    normalized = vtype.validate(name, value, checked)
    if existing is not None:
        if existing.type == type and existing.constraints == checked:
            return existing, False
        raise VariableRedefinedError(
            f"variable {name!r} of session {session_id!r} is already registered as "
            f"{existing.type} with constraints {short_repr(existing.constraints)}; delete it "
            "first to register it differently",
            variable=name,
            session_id=session_id,
        )
    variable = Variable(
        name=name,
        type=type,
        value=normalized,
        version=1,
        constraints=checked,
        metadata=mapping(metadata, "metadata"),
        created_at=now,
        updated_at=now,
    )
    return variable, True


def check_version(session_id: str, current: Variable, expected: int | None) -> None:
    """Compare-and-set: pass when ``expected`` is None or the current version.

    Raises:
        VersionConflictError: ``expected`` is another version (both are named).
    """
    actual = current.version
    if expected is not None and expected != actual:
        raise VersionConflictError(
            f"variable {current.name!r} of session {session_id!r} is at version "
            f"{actual}, not the expected {short_repr(expected)}; read it again and retry",
            session_id=session_id,
            variable=current.name,
            expected_version=expected,
            actual_version=actual,
        )


def next_version(current: Variable, value: Any, now: float) -> Variable:
    """The version a write of the (already normalized) ``value`` makes at ``now``."""
    return replace(current, value=value, version=current.version + 1, updated_at=now)


def plan_write(
    session_id: str,
    name: str,
    current: Variable | None,
    value: Any,
    expected_version: int | None,
    now: float,
) -> Variable:
    """The new version a write makes, checked in this order: exists, version, value.

    Raises:
        VariableNotFoundError: ``current`` is None (no such variable).
        VersionConflictError: ``expected_version`` is not the current version.
        VariableValidationError: the value breaks the type or a constraint.
    """
    if current is None:
        raise variable_not_found(session_id, name)
    check_version(session_id, current, expected_version)
    normalized = get_type(current.type).validate(name, value, current.constraints)
    return next_version(current, normalized, now)


@dataclass(frozen=True)
class BatchPlan:
    """What a batch write does: the new versions to write, and the names that failed."""

    writes: dict[str, Variable] = field(default_factory=dict)
    errors: dict[str, VariableError] = field(default_factory=dict)


def plan_batch(
    session_id: str,
    current: Mapping[str, Variable | None],
    values: Mapping[str, Any],
    *,
    atomic: bool,
    expected_versions: Mapping[str, int] | None,
    now: float,
) -> BatchPlan:
    """Plan ``set_many``: each value is checked as :func:`plan_write` checks one.

    Atomic: any failure writes nothing; the first (in ``values`` order) is
    raised with a note naming the others. Not atomic: the failures are returned
    beside the writes.

    Raises:
        VariableError: atomic, and a value failed (the first failure).
        InvalidValueError: ``values`` or ``expected_versions`` is not a mapping.
    """
    values = mapping(values, "values")
    expected = mapping(expected_versions, "expected_versions")
    plan = BatchPlan()
    for name, value in values.items():
        try:
            plan.writes[name] = plan_write(
                session_id, name, current.get(name), value, expected.get(name), now
            )
        except VariableError as exc:
            plan.errors[name] = exc
    if atomic and plan.errors:
        first = next(iter(plan.errors.values()))
        others = list(plan.errors)[1:]  # by position: a NaN name is not equal to itself
        first.add_note(
            f"atomic set_many wrote nothing; {len(plan.errors)} of {len(values)} values failed"
            + (
                f" (also: {', '.join(n if isinstance(n, str) else brief(n) for n in others)})"
                if others
                else ""
            )
        )
        raise first
    return plan


def kept_versions(version: int, history_limit: int) -> range:
    """The versions the history keeps once ``version`` is current: the newest ``history_limit``."""
    return range(max(1, version - history_limit + 1), version + 1)


def dropped_version(version: int, history_limit: int) -> int | None:
    """The version that writing ``version`` pushes out of the history, if any."""
    old = version - history_limit
    return old if old >= 1 else None


def append_history(
    history: Sequence[Variable], variable: Variable, history_limit: int
) -> list[Variable]:
    """``history`` with ``variable`` appended and trimmed to the newest ``history_limit``."""
    return [*history, variable][-history_limit:]


def rollback_target(
    session_id: str, name: str, history: Sequence[Variable], version: Any, history_limit: int
) -> Variable:
    """The kept version ``version`` of a variable, whose value a rollback writes again.

    Raises:
        VariableNotFoundError: ``version`` is not in the history (the kept range is named).
    """
    for old in history:
        if old.version == version:
            return old
    kept = [v.version for v in history]
    raise VariableNotFoundError(
        f"variable {name!r} of session {session_id!r} has no version {short_repr(version)} in its "
        f"history (kept: {kept[0]}..{kept[-1]}, history_limit={history_limit})",
        session_id=session_id,
        variable=name,
        version=version,
        available_versions=kept,
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


# -- export, import and metadata ----------------------------------------------------------------

EXPORT_FORMAT = "snakepit.variables/1"
"""The ``format`` of an export document; an import refuses any other."""


def export_document(session_id: str, variables: Iterable[Variable]) -> dict[str, Any]:
    """A session's variables as one JSON-compatible document (see ``SessionStore.export_variables``)."""
    return {
        "format": EXPORT_FORMAT,
        "session_id": session_id,
        "variables": [
            {
                "name": v.name,
                "type": v.type,
                "value": v.value,
                "constraints": dict(v.constraints),
                "metadata": dict(v.metadata),
                "version": v.version,
                "created_at": v.created_at,
                "updated_at": v.updated_at,
            }
            for v in variables
        ],
    }


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


def plan_metadata(
    session_id: str,
    name: str,
    current: Variable | None,
    metadata: Any,
    *,
    replace: bool,
    expected_version: int | None,
    now: float,
) -> Variable:
    """The new version a variable's metadata update makes: same value, new metadata.

    Metadata is versioned with the value, so history shows when it changed and a
    compare-and-set writer holding the old version gets a conflict.

    Raises:
        VariableNotFoundError: ``current`` is None.
        VersionConflictError: ``expected_version`` is not the current version.
        InvalidValueError: ``metadata`` is not a mapping.
    """
    if current is None:
        raise variable_not_found(session_id, name)
    check_version(session_id, current, expected_version)
    new_metadata = merged_metadata(current.metadata, metadata, replace=replace)
    return dataclasses.replace(
        current, metadata=new_metadata, version=current.version + 1, updated_at=now
    )


@dataclass(frozen=True)
class ImportWrite:
    """One variable an import writes.

    Attributes:
        variable: the version written.
        previous: the variable it replaces (None for a new name).
        redefined: True when ``previous`` had another type or constraints; its
            history is dropped, as for a delete followed by a register.
    """

    variable: Variable
    previous: Variable | None = None
    redefined: bool = False


def _import_entries(data: Any) -> list[Mapping[str, Any]]:
    def bad(problem: str) -> InvalidValueError:
        return InvalidValueError(
            f"cannot import variables: {problem}; pass what export_variables() returned "
            "(a JSON-compatible dict) or an edited copy of it",
            argument="data",
        )

    if not isinstance(data, Mapping):
        raise bad(f"data must be a dict, got {type(data).__name__}")
    if data.get("format") != EXPORT_FORMAT:
        raise bad(f"data['format'] must be {EXPORT_FORMAT!r}, got {short_repr(data.get('format'))}")
    entries = data.get("variables")
    if not isinstance(entries, list):
        raise bad(f"data['variables'] must be a list, got {type(entries).__name__}")
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise bad(f"data['variables'][{i}] must be a dict, got {type(entry).__name__}")
        for key in ("name", "type", "value"):
            if key not in entry:
                raise bad(f"data['variables'][{i}] has no {key!r}")
        name, version = entry["name"], entry.get("version", 1)
        if isinstance(name, str):
            if name in seen:
                raise bad(f"variable {name!r} appears twice")
            seen.add(name)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise bad(
                f"data['variables'][{i}]['version'] must be an int >= 1, got {short_repr(version)}"
            )
    return entries


def import_names(data: Any) -> list[str]:
    """The variable names an export document holds (to read their current versions first).

    Raises:
        InvalidValueError: ``data`` is not an export document.
    """
    return [e["name"] for e in _import_entries(data) if isinstance(e["name"], str)]


def plan_import(
    session_id: str,
    data: Any,
    current: Mapping[str, Variable | None],
    *,
    overwrite: bool,
    now: float,
) -> list[ImportWrite]:
    """Plan an import: every entry is checked before anything is written.

    A new name keeps the exported version, so an export imported into a fresh
    session reads back the same versions. With ``overwrite`` an existing name
    gets ``version + 1`` (versions never go back, so a compare-and-set writer
    holding the old one gets a conflict); without it an existing name is an error.

    Args:
        session_id: the session imported into.
        data: an export document.
        current: the current variable of each name in ``data`` (None when missing).
        overwrite: replace variables that exist.
        now: the store's wall-clock time.

    Raises:
        InvalidValueError: ``data`` is not an export document, or ``overwrite`` not a bool.
        VariableValidationError: an entry's name, type, constraints or value is invalid.
        VariableRedefinedError: a name exists and ``overwrite`` is False.
    """
    if not isinstance(overwrite, bool):
        raise InvalidValueError(
            f"overwrite must be True or False, got {short_repr(overwrite)}", argument="overwrite"
        )
    writes: list[ImportWrite] = []
    for entry in _import_entries(data):
        name = entry["name"]
        fresh, _ = plan_register(
            session_id,
            name,
            entry["type"],
            entry["value"],
            entry.get("constraints"),
            entry.get("metadata"),
            None,
            now,
        )
        previous = current.get(name)
        if previous is None:
            writes.append(ImportWrite(dataclasses.replace(fresh, version=entry.get("version", 1))))
            continue
        if not overwrite:
            raise VariableRedefinedError(
                f"cannot import variable {name!r}: session {session_id!r} already has it (at "
                f"version {previous.version}); pass overwrite=True to replace it (nothing was "
                "imported)",
                variable=name,
                session_id=session_id,
            )
        same = previous.type == fresh.type and previous.constraints == fresh.constraints
        writes.append(
            ImportWrite(
                dataclasses.replace(
                    fresh,
                    version=previous.version + 1,
                    created_at=previous.created_at if same else now,
                ),
                previous,
                redefined=not same,
            )
        )
    return writes


# -- updates ------------------------------------------------------------------------------------


def update_event(source: str, session_id: str, variable: Variable) -> VariableUpdated:
    """The update that writing (or registering) ``variable`` publishes."""
    return VariableUpdated(
        session_id=session_id,
        name=variable.name,
        version=variable.version,
        value=variable.value,
        source=source,
        at=variable.updated_at,
    )


def deleted_event(source: str, session_id: str, variable: Variable, now: float) -> VariableUpdated:
    """The update that deleting ``variable`` (its current version) publishes."""
    return VariableUpdated(
        session_id=session_id,
        name=variable.name,
        version=variable.version,
        value=None,
        deleted=True,
        source=source,
        at=now,
    )
