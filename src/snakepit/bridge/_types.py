"""Variable types: what a session variable may hold and which constraints narrow it.

Each type is a small stateless object with two jobs:

* :meth:`VariableType.check_constraints` validates the constraints themselves
  once, when a variable is registered (an unknown key, a wrong kind of value or
  an impossible range is an error that names the constraint);
* :meth:`VariableType.validate` checks a value against checked constraints on
  every write and returns the normalized value that is stored (``3.0`` for an
  integer becomes ``3``, an embedding becomes a fresh ``list[float]``...).

Every failure is a :class:`~snakepit.errors.VariableValidationError` whose
message names the variable, the constraint and the (shortened) value, and whose
``variable``, ``constraint`` and ``value`` attributes carry the same facts.
Type problems (a string where an integer belongs) name the constraint ``"type"``.
"""

from __future__ import annotations

import copy
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from snakepit.bridge._pattern import PatternTooCostly, UnsupportedPattern, compile_pattern
from snakepit.errors import VariableValidationError, brief

__all__ = [
    "VARIABLE_TYPES",
    "BooleanType",
    "ChoiceType",
    "EmbeddingType",
    "FloatType",
    "IntegerType",
    "ModuleType",
    "StringType",
    "TensorType",
    "VariableType",
    "get_type",
]

_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to a readable length for error messages; never raises."""
    return brief(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _to_float(value: float) -> float:
    """``float(value)``, with an int too large for a float becoming infinity (never raising)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class VariableType(ABC):
    """One variable type: its name, the constraints it knows, and how it validates values."""

    name: ClassVar[str]
    constraint_keys: ClassVar[frozenset[str]] = frozenset()

    def check_constraints(
        self, constraints: Mapping[str, Any] | None, *, variable: str = ""
    ) -> dict[str, Any]:
        """Validate ``constraints`` for this type and return them normalized.

        Args:
            constraints: the constraints given at registration, or None for none.
            variable: the variable's name, for error messages.

        Raises:
            VariableValidationError: a constraint is unknown for this type, has the
                wrong kind of value, or contradicts another one (``min > max``).
        """
        if constraints is None:
            constraints = {}
        if not isinstance(constraints, Mapping):
            raise self._bad_constraint(variable, "constraints", constraints, "must be a mapping")
        for key in constraints:
            if key not in self.constraint_keys:
                known = ", ".join(sorted(self.constraint_keys)) or "none"
                shown = key if isinstance(key, str) and len(key) <= 60 else brief(key)
                raise self._bad_constraint(
                    variable, shown, constraints[key], f"unknown constraint (known: {known})"
                )
        return self._check_constraints(dict(constraints), variable)

    def _check_constraints(self, constraints: dict[str, Any], variable: str) -> dict[str, Any]:
        return constraints

    @abstractmethod
    def validate(self, name: str, value: Any, constraints: Mapping[str, Any]) -> Any:
        """Check ``value`` against already checked ``constraints``; return the value to store.

        Args:
            name: the variable's name, for error messages.
            value: the candidate value.
            constraints: constraints returned by :meth:`check_constraints`.

        Raises:
            VariableValidationError: the value is of the wrong type or breaks a constraint.
        """

    def _fail(self, name: str, constraint: str, value: Any, reason: str) -> VariableValidationError:
        return VariableValidationError(
            f"variable {name!r} ({self.name}): value {short_repr(value)} breaks "
            f"constraint {constraint!r}: {reason}",
            variable=name,
            constraint=constraint,
            value=value,
        )

    def _bad_constraint(
        self, name: str, constraint: str, value: Any, reason: str
    ) -> VariableValidationError:
        return VariableValidationError(
            f"variable {name!r} ({self.name}): invalid constraint {constraint}="
            f"{short_repr(value)}: {reason}",
            variable=name,
            constraint=constraint,
            value=value,
        )

    def __repr__(self) -> str:
        return f"<VariableType {self.name}>"


class _NumberType(VariableType):
    constraint_keys = frozenset({"min", "max"})

    def _check_constraints(self, constraints: dict[str, Any], variable: str) -> dict[str, Any]:
        for key in ("min", "max"):
            if key in constraints:
                bound = constraints[key]
                if not _is_number(bound) or not math.isfinite(_to_float(bound)):
                    raise self._bad_constraint(variable, key, bound, "must be a finite number")
        if (
            "min" in constraints
            and "max" in constraints
            and constraints["min"] > constraints["max"]
        ):
            raise self._bad_constraint(
                variable, "max", constraints["max"], f"is below min={brief(constraints['min'])}"
            )
        return constraints

    def _check_range(
        self, name: str, number: float, value: Any, constraints: Mapping[str, Any]
    ) -> None:
        if "min" in constraints and number < constraints["min"]:
            raise self._fail(name, "min", value, f"must be >= {brief(constraints['min'])}")
        if "max" in constraints and number > constraints["max"]:
            raise self._fail(name, "max", value, f"must be <= {brief(constraints['max'])}")


class IntegerType(_NumberType):
    """Whole numbers. An integral float (``3.0``) is accepted as ``3``; bools are not numbers."""

    name = "integer"

    def validate(self, name: str, value: Any, constraints: Mapping[str, Any]) -> int:
        if isinstance(value, float):
            if not value.is_integer():
                raise self._fail(
                    name, "type", value, "must be an integer, got a non-integral float"
                )
        elif not _is_int(value):
            raise self._fail(name, "type", value, f"must be an integer, got {type(value).__name__}")
        result = int(value)
        self._check_range(name, result, value, constraints)
        return result


class FloatType(_NumberType):
    """Finite real numbers; ints are accepted and stored as floats, bools are not."""

    name = "float"

    def validate(self, name: str, value: Any, constraints: Mapping[str, Any]) -> float:
        if not _is_number(value):
            raise self._fail(name, "type", value, f"must be a number, got {type(value).__name__}")
        result = _to_float(value)
        if not math.isfinite(result):
            raise self._fail(name, "type", value, "must be a finite number")
        self._check_range(name, result, value, constraints)
        return result


class StringType(VariableType):
    """Text, optionally bounded in length and matched in full by a regular expression.

    ``pattern`` uses ``re`` syntax and is matched in linear time (see
    :mod:`snakepit.bridge._pattern`): patterns come from worker code and run on the
    host's event loop, so ones that need backtracking (backreferences, lookaround,
    ``\\b``, case-insensitive flags, anchors in the middle) are refused at
    registration.
    """

    name = "string"
    constraint_keys = frozenset({"min_length", "max_length", "pattern"})

    def _check_constraints(self, constraints: dict[str, Any], variable: str) -> dict[str, Any]:
        for key in ("min_length", "max_length"):
            if key in constraints:
                bound = constraints[key]
                if not _is_int(bound) or bound < 0:
                    raise self._bad_constraint(variable, key, bound, "must be an integer >= 0")
        lo, hi = constraints.get("min_length"), constraints.get("max_length")
        if lo is not None and hi is not None and lo > hi:
            raise self._bad_constraint(
                variable, "max_length", hi, f"is below min_length={brief(lo)}"
            )
        if "pattern" in constraints:
            pattern = constraints["pattern"]
            if not isinstance(pattern, str):
                raise self._bad_constraint(variable, "pattern", pattern, "must be a string")
            try:
                compile_pattern(pattern)
            except UnsupportedPattern as exc:
                raise self._bad_constraint(
                    variable, "pattern", pattern, f"cannot be used: {exc}"
                ) from None
        return constraints

    def validate(self, name: str, value: Any, constraints: Mapping[str, Any]) -> str:
        if not isinstance(value, str):
            raise self._fail(name, "type", value, f"must be a string, got {type(value).__name__}")
        text = str(value)
        if "min_length" in constraints and len(text) < constraints["min_length"]:
            raise self._fail(
                name,
                "min_length",
                value,
                f"length {len(text)} < {brief(constraints['min_length'])}",
            )
        if "max_length" in constraints and len(text) > constraints["max_length"]:
            raise self._fail(
                name,
                "max_length",
                value,
                f"length {len(text)} > {brief(constraints['max_length'])}",
            )
        if "pattern" in constraints:
            pattern = constraints["pattern"]
            try:
                matched = compile_pattern(pattern).fullmatch(text)
            except (UnsupportedPattern, PatternTooCostly) as exc:
                raise self._fail(name, "pattern", value, f"cannot be checked: {exc}") from None
            if not matched:
                raise self._fail(name, "pattern", value, f"does not match {brief(pattern)} in full")
        return text


class BooleanType(VariableType):
    """``True`` or ``False`` (not 0/1, not strings); takes no constraints."""

    name = "boolean"

    def validate(self, name: str, value: Any, constraints: Mapping[str, Any]) -> bool:
        if not isinstance(value, bool):
            raise self._fail(name, "type", value, f"must be a boolean, got {type(value).__name__}")
        return value


def _same_value(a: Any, b: Any) -> bool:
    # 1 == True == 1.0 in Python; a choice of 1 must not accept True.
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # a value whose == does not give a truth value (an array...)
        return False


class ChoiceType(VariableType):
    """One of a fixed, non-empty list of ``choices`` (compared by type and value)."""

    name = "choice"
    constraint_keys = frozenset({"choices"})

    def _check_constraints(self, constraints: dict[str, Any], variable: str) -> dict[str, Any]:
        if "choices" not in constraints:
            raise self._bad_constraint(variable, "choices", None, "is required for a choice")
        choices = constraints["choices"]
        if not isinstance(choices, list | tuple) or not choices:
            raise self._bad_constraint(variable, "choices", choices, "must be a non-empty list")
        try:
            constraints["choices"] = copy.deepcopy(list(choices))
        except Exception as exc:
            raise self._bad_constraint(
                variable, "choices", choices, f"cannot be copied ({type(exc).__name__})"
            ) from None
        return constraints

    def validate(self, name: str, value: Any, constraints: Mapping[str, Any]) -> Any:
        for choice in constraints["choices"]:
            if _same_value(choice, value):
                return copy.deepcopy(choice)
        raise self._fail(
            name, "choices", value, f"must be one of {short_repr(constraints['choices'])}"
        )


class ModuleType(VariableType):
    """A dotted module name such as ``"numpy.linalg"``, optionally from ``allowed_modules``."""

    name = "module"
    constraint_keys = frozenset({"allowed_modules"})

    def _check_constraints(self, constraints: dict[str, Any], variable: str) -> dict[str, Any]:
        if "allowed_modules" in constraints:
            allowed = constraints["allowed_modules"]
            if not isinstance(allowed, list | tuple) or not all(
                isinstance(m, str) and _DOTTED_NAME.fullmatch(m) for m in allowed
            ):
                raise self._bad_constraint(
                    variable, "allowed_modules", allowed, "must be a list of dotted module names"
                )
            constraints["allowed_modules"] = list(allowed)
        return constraints

    def validate(self, name: str, value: Any, constraints: Mapping[str, Any]) -> str:
        if not isinstance(value, str) or not _DOTTED_NAME.fullmatch(value):
            raise self._fail(name, "type", value, "must be a dotted module name like 'pkg.module'")
        if "allowed_modules" in constraints and value not in constraints["allowed_modules"]:
            raise self._fail(
                name,
                "allowed_modules",
                value,
                f"must be one of {short_repr(constraints['allowed_modules'])}",
            )
        return str(value)


class EmbeddingType(VariableType):
    """A vector of finite numbers, stored as ``list[float]``; ``dimensions`` fixes its length."""

    name = "embedding"
    constraint_keys = frozenset({"dimensions"})

    def _check_constraints(self, constraints: dict[str, Any], variable: str) -> dict[str, Any]:
        if "dimensions" in constraints:
            dims = constraints["dimensions"]
            if not _is_int(dims) or dims < 1:
                raise self._bad_constraint(variable, "dimensions", dims, "must be an integer >= 1")
        return constraints

    def validate(self, name: str, value: Any, constraints: Mapping[str, Any]) -> list[float]:
        if not isinstance(value, list | tuple):
            raise self._fail(
                name, "type", value, f"must be a list of numbers, got {type(value).__name__}"
            )
        result: list[float] = []
        for i, item in enumerate(value):
            number = _to_float(item) if _is_number(item) else math.nan
            if not math.isfinite(number):
                raise self._fail(
                    name, "type", value, f"element {i} ({short_repr(item)}) is not a finite number"
                )
            result.append(number)
        if "dimensions" in constraints and len(result) != constraints["dimensions"]:
            raise self._fail(
                name,
                "dimensions",
                value,
                f"has {len(result)} dimensions, expected {brief(constraints['dimensions'])}",
            )
        return result


# dtype -> (kind, inclusive integer range or None)
_DTYPES: dict[str, tuple[str, tuple[int, int] | None]] = {
    "float16": ("float", None),
    "float32": ("float", None),
    "float64": ("float", None),
    "int8": ("int", (-(2**7), 2**7 - 1)),
    "int16": ("int", (-(2**15), 2**15 - 1)),
    "int32": ("int", (-(2**31), 2**31 - 1)),
    "int64": ("int", (-(2**63), 2**63 - 1)),
    "uint8": ("int", (0, 2**8 - 1)),
    "bool": ("bool", None),
}
_DEFAULT_DTYPE = "float64"


def _is_dtype(dtype: Any) -> bool:
    return isinstance(dtype, str) and dtype in _DTYPES


class TensorType(VariableType):
    """An n-dimensional array as ``{"shape": [...], "data": [flat numbers], "dtype": str}``.

    ``len(data)`` must equal the product of ``shape``. The ``shape`` constraint
    fixes the shape (``None`` in it matches any size on that axis); the
    ``dtype`` constraint fixes the element type. A value without a dtype takes
    the constraint's, else ``float64``. Float data may hold NaN or infinities.
    """

    name = "tensor"
    constraint_keys = frozenset({"shape", "dtype"})

    def _check_constraints(self, constraints: dict[str, Any], variable: str) -> dict[str, Any]:
        if "shape" in constraints:
            shape = constraints["shape"]
            if not isinstance(shape, list | tuple) or not all(
                d is None or (_is_int(d) and d >= 0) for d in shape
            ):
                raise self._bad_constraint(
                    variable, "shape", shape, "must be a list of sizes >= 0 (or None for any)"
                )
            constraints["shape"] = list(shape)
        if "dtype" in constraints and not _is_dtype(constraints["dtype"]):
            raise self._bad_constraint(
                variable, "dtype", constraints["dtype"], f"must be one of {sorted(_DTYPES)}"
            )
        return constraints

    def validate(self, name: str, value: Any, constraints: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(value, Mapping) or "shape" not in value or "data" not in value:
            raise self._fail(
                name, "type", value, "must be a mapping with 'shape' and 'data' (and 'dtype')"
            )
        extra = set(value) - {"shape", "data", "dtype"}
        if extra:
            raise self._fail(
                name, "type", value, f"unknown keys {brief(sorted(map(brief, extra)))}"
            )
        shape, data = value["shape"], value["data"]
        if not isinstance(shape, list | tuple) or not all(_is_int(d) and d >= 0 for d in shape):
            raise self._fail(name, "type", value, "'shape' must be a list of integers >= 0")
        if not isinstance(data, list | tuple):
            raise self._fail(name, "type", value, "'data' must be a flat list of numbers")
        size = math.prod(shape)
        if len(data) != size:
            raise self._fail(
                name,
                "type",
                value,
                f"'data' has {len(data)} elements, shape {brief(list(shape))} needs {brief(size)}",
            )
        wanted = constraints.get("shape")
        if wanted is not None and (
            len(wanted) != len(shape)
            or any(w is not None and w != d for w, d in zip(wanted, shape, strict=True))
        ):
            raise self._fail(
                name, "shape", value, f"shape {brief(list(shape))} does not match {brief(wanted)}"
            )
        dtype = value.get("dtype", constraints.get("dtype", _DEFAULT_DTYPE))
        if not _is_dtype(dtype):
            raise self._fail(
                name, "type", value, f"dtype {brief(dtype)} is not one of {sorted(_DTYPES)}"
            )
        if "dtype" in constraints and dtype != constraints["dtype"]:
            raise self._fail(
                name, "dtype", value, f"dtype {brief(dtype)} is not {constraints['dtype']!r}"
            )
        return {
            "shape": list(shape),
            "dtype": dtype,
            "data": self._elements(name, value, data, dtype),
        }

    def _elements(self, name: str, value: Any, data: Any, dtype: str) -> list[Any]:
        kind, bounds = _DTYPES[dtype]
        if kind == "bool":
            ok = all(isinstance(x, bool) for x in data)
            out: list[Any] = list(data)
        elif kind == "int":
            lo, hi = bounds or (0, 0)
            ok = all(_is_int(x) and lo <= x <= hi for x in data)
            out = [int(x) for x in data] if ok else []
        else:
            ok = all(_is_number(x) for x in data)
            out = [_to_float(x) for x in data] if ok else []
        if not ok:
            raise self._fail(name, "dtype", value, f"'data' holds elements that are not {dtype}")
        return out


VARIABLE_TYPES: Mapping[str, VariableType] = MappingProxyType(
    {
        t.name: t
        for t in (
            IntegerType(),
            FloatType(),
            StringType(),
            BooleanType(),
            ChoiceType(),
            ModuleType(),
            EmbeddingType(),
            TensorType(),
        )
    }
)
"""Every variable type by its name: ``integer``, ``float``, ``string``, ``boolean``,
``choice``, ``module``, ``embedding``, ``tensor``."""


def get_type(type_name: str, *, variable: str = "") -> VariableType:
    """The :class:`VariableType` called ``type_name``.

    Args:
        type_name: one of the keys of :data:`VARIABLE_TYPES`.
        variable: the variable's name, for the error message.

    Raises:
        VariableValidationError: no type has that name (``constraint`` is ``"type"``).
    """
    try:
        return VARIABLE_TYPES[type_name]
    except (KeyError, TypeError):
        raise VariableValidationError(
            f"variable {variable!r}: unknown type {short_repr(type_name)} "
            f"(known: {', '.join(VARIABLE_TYPES)})",
            variable=variable,
            constraint="type",
            value=type_name,
        ) from None
