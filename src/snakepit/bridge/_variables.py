"""The check of a variable's name, and the host's ``Variable`` re-exported for the bridge.

``Variable`` itself lives in :mod:`snakepit._variables`, shared with the worker side.
"""

from __future__ import annotations

import re
from typing import Any

from snakepit._variables import Variable
from snakepit.bridge._types import short_repr
from snakepit.errors import VariableValidationError

__all__ = ["Variable", "validate_variable_name"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")


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
