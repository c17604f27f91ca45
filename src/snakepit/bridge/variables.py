"""A session variable: one immutable, versioned snapshot of a typed value."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from snakepit.bridge.types import short_repr
from snakepit.errors import VariableValidationError

__all__ = ["Variable", "validate_variable_name"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True, kw_only=True)
class Variable:
    """One version of a session variable, as the store returned it.

    Every write makes a new ``Variable`` with ``version`` one higher; older
    ones stay in the history. Treat ``value`` as read-only: the store hands
    out the object it keeps (copying every tensor on every read would cost
    more than it protects).

    Attributes:
        name: the variable's name, unique within its session.
        type: the type name (``"integer"``, ``"tensor"``...; see ``VARIABLE_TYPES``).
        value: the normalized value.
        version: 1 at registration, +1 on each write (``set``, ``rollback``).
        constraints: the checked constraints of the type.
        metadata: free-form data given at registration (description, owner...).
        created_at: wall-clock time of the registration (the store's clock).
        updated_at: wall-clock time of this version.
    """

    name: str
    type: str
    value: Any = field(repr=False)
    version: int
    constraints: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


def validate_variable_name(name: Any) -> str:
    """Return ``name`` when it is a valid variable name: ``[A-Za-z_][A-Za-z0-9_.-]{0,127}``.

    Raises:
        VariableValidationError: the name is not a string of that shape
            (``constraint`` is ``"name"``).
    """
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise VariableValidationError(
            f"invalid variable name {short_repr(name)} breaks constraint 'name': "
            "use 1-128 characters [A-Za-z0-9_.-] starting with a letter or '_'",
            variable=name,
            constraint="name",
            value=name,
        )
    return name
