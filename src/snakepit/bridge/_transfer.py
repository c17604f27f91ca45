"""Exports and imports: a session's variables as one JSON-compatible document, and the plan that writes one back.

An import checks every entry (with the same rules as a register) before a
store writes any of them; see ``SessionStore.export_variables`` and
``SessionStore.import_variables`` for the document and what an import does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snakepit.bridge._plans import plan_register
from snakepit.bridge._types import short_repr
from snakepit.errors import InvalidValueError, VariableRedefinedError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from snakepit._variables import Variable

__all__ = [
    "EXPORT_FORMAT",
    "ImportWrite",
    "export_document",
    "import_names",
    "plan_import",
]


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
