"""What each variable write produces: its next version, the history it keeps, the event it publishes.

Pure decisions, shared by every store: registering, writing, batch-writing,
rolling back and updating the metadata of a variable each either give the
next :class:`~snakepit.Variable` or raise (validation, version conflict, not
found); a store only keeps what these return.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from snakepit._variables import Variable
from snakepit.bridge._rules import mapping, merged_metadata, variable_not_found
from snakepit.bridge._types import get_type, short_repr
from snakepit.bridge._variables import validate_variable_name
from snakepit.errors import (
    VariableError,
    VariableNotFoundError,
    VariableRedefinedError,
    VersionConflictError,
    brief,
)
from snakepit.events import VariableUpdated

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "BatchPlan",
    "append_history",
    "check_version",
    "deleted_event",
    "dropped_version",
    "kept_versions",
    "next_version",
    "plan_batch",
    "plan_metadata",
    "plan_register",
    "plan_write",
    "rollback_target",
    "update_event",
]


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
