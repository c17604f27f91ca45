"""Variable types: every constraint of every type, accepted and rejected, with clear errors."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from snakepit.bridge import VARIABLE_TYPES, Variable, get_type, validate_variable_name
from snakepit.bridge._types import short_repr
from snakepit.errors import VariableValidationError

NAN = float("nan")
INF = float("inf")

# (type, value, constraints, normalized value)
ACCEPTED: list[tuple[str, Any, dict[str, Any], Any]] = [
    ("integer", 5, {}, 5),
    ("integer", -3.0, {}, -3),
    ("integer", 0, {"min": 0}, 0),
    ("integer", 10, {"max": 10}, 10),
    ("integer", 5, {"min": 1, "max": 9.5}, 5),
    ("float", 1, {}, 1.0),
    ("float", 0.5, {"min": 0.5}, 0.5),
    ("float", 2, {"max": 2.0}, 2.0),
    ("float", -1e300, {}, -1e300),
    ("string", "", {}, ""),
    ("string", "ab", {"min_length": 2}, "ab"),
    ("string", "abc", {"max_length": 3}, "abc"),
    ("string", "a1", {"pattern": r"[a-z]\d"}, "a1"),
    ("boolean", True, {}, True),
    ("boolean", False, {}, False),
    ("choice", "b", {"choices": ["a", "b"]}, "b"),
    ("choice", 1, {"choices": [True, 1]}, 1),
    ("choice", True, {"choices": (1, True)}, True),
    ("module", "numpy.linalg", {}, "numpy.linalg"),
    ("module", "_private", {}, "_private"),
    ("module", "json", {"allowed_modules": ["json", "numpy.linalg"]}, "json"),
    ("embedding", [1, 2.5], {}, [1.0, 2.5]),
    ("embedding", (0, 0, 1), {"dimensions": 3}, [0.0, 0.0, 1.0]),
    (
        "tensor",
        {"shape": [2, 3], "data": list(range(6))},
        {},
        {"shape": [2, 3], "dtype": "float64", "data": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]},
    ),
    ("tensor", {"shape": [], "data": [7]}, {}, {"shape": [], "dtype": "float64", "data": [7.0]}),
    (
        "tensor",
        {"shape": [0, 4], "data": []},
        {},
        {"shape": [0, 4], "dtype": "float64", "data": []},
    ),
    (
        "tensor",
        {"shape": (2, 1), "data": [1, 2]},
        {"shape": [2, None]},
        {"shape": [2, 1], "dtype": "float64", "data": [1.0, 2.0]},
    ),
    (
        "tensor",
        {"shape": [2], "data": [1, -2]},
        {"dtype": "int8"},
        {"shape": [2], "dtype": "int8", "data": [1, -2]},
    ),
    (
        "tensor",
        {"shape": [2], "data": [True, False], "dtype": "bool"},
        {"dtype": "bool"},
        {"shape": [2], "dtype": "bool", "data": [True, False]},
    ),
    (
        "tensor",
        {"shape": [1], "data": [NAN], "dtype": "float32"},
        {"shape": [1]},
        {"shape": [1], "dtype": "float32", "data": [NAN]},
    ),
]

# (type, value, constraints, the constraint named in the error)
REJECTED: list[tuple[str, Any, dict[str, Any], str]] = [
    ("integer", "5", {}, "type"),
    ("integer", True, {}, "type"),
    ("integer", 2.5, {}, "type"),
    ("integer", NAN, {}, "type"),
    ("integer", None, {}, "type"),
    ("integer", 3, {"min": 4}, "min"),
    ("integer", 11, {"max": 10}, "max"),
    ("float", True, {}, "type"),
    ("float", "1.0", {}, "type"),
    ("float", NAN, {}, "type"),
    ("float", INF, {}, "type"),
    ("float", 0.1, {"min": 0.5}, "min"),
    ("float", 3, {"max": 2}, "max"),
    ("string", 5, {}, "type"),
    ("string", b"bytes", {}, "type"),
    ("string", "a", {"min_length": 2}, "min_length"),
    ("string", "abcd", {"max_length": 3}, "max_length"),
    ("string", "a1x", {"pattern": r"[a-z]\d"}, "pattern"),
    ("boolean", 1, {}, "type"),
    ("boolean", "true", {}, "type"),
    ("boolean", None, {}, "type"),
    ("choice", "c", {"choices": ["a", "b"]}, "choices"),
    ("choice", True, {"choices": [1]}, "choices"),
    ("choice", 1.0, {"choices": [1]}, "choices"),
    ("module", 5, {}, "type"),
    ("module", "1abc", {}, "type"),
    ("module", "numpy..linalg", {}, "type"),
    ("module", "os; rm -rf /", {}, "type"),
    ("module", "os", {"allowed_modules": ["json", "numpy"]}, "allowed_modules"),
    ("module", "numpy.linalg", {"allowed_modules": ["numpy"]}, "allowed_modules"),
    ("embedding", "1,2", {}, "type"),
    ("embedding", [1, "x"], {}, "type"),
    ("embedding", [1, True], {}, "type"),
    ("embedding", [1.0, NAN], {}, "type"),
    ("embedding", [INF], {}, "type"),
    ("embedding", [1.0, 2.0], {"dimensions": 3}, "dimensions"),
    ("tensor", [1, 2], {}, "type"),
    ("tensor", {"shape": [2]}, {}, "type"),
    ("tensor", {"data": [1, 2]}, {}, "type"),
    ("tensor", {"shape": [2], "data": [1, 2], "strides": [1]}, {}, "type"),
    ("tensor", {"shape": [-1], "data": []}, {}, "type"),
    ("tensor", {"shape": [2.0], "data": [1, 2]}, {}, "type"),
    ("tensor", {"shape": "2", "data": [1, 2]}, {}, "type"),
    ("tensor", {"shape": [2], "data": "ab"}, {}, "type"),
    ("tensor", {"shape": [2, 2], "data": [1, 2, 3]}, {}, "type"),
    ("tensor", {"shape": [2], "data": [1, 2], "dtype": "complex64"}, {}, "type"),
    ("tensor", {"shape": [3], "data": [1, 2, 3]}, {"shape": [2]}, "shape"),
    ("tensor", {"shape": [2, 1], "data": [1, 2]}, {"shape": [2]}, "shape"),
    ("tensor", {"shape": [2, 2], "data": [1, 2, 3, 4]}, {"shape": [None, 1]}, "shape"),
    ("tensor", {"shape": [1], "data": [1.5]}, {"dtype": "int32"}, "dtype"),
    ("tensor", {"shape": [1], "data": [1], "dtype": "float32"}, {"dtype": "int32"}, "dtype"),
    ("tensor", {"shape": [1], "data": [200]}, {"dtype": "int8"}, "dtype"),
    ("tensor", {"shape": [1], "data": [-1], "dtype": "uint8"}, {}, "dtype"),
    ("tensor", {"shape": [1], "data": [1], "dtype": "bool"}, {}, "dtype"),
    ("tensor", {"shape": [1], "data": [True]}, {}, "dtype"),
    ("tensor", {"shape": [1], "data": [[1]]}, {}, "dtype"),
]

# (type, constraints, the constraint named in the error)
BAD_CONSTRAINTS: list[tuple[str, Any, str]] = [
    ("integer", ["min"], "constraints"),
    ("integer", {"minimum": 1}, "minimum"),
    ("integer", {"min": "1"}, "min"),
    ("integer", {"min": True}, "min"),
    ("integer", {"max": NAN}, "max"),
    ("integer", {"min": 5, "max": 1}, "max"),
    ("float", {"max": "x"}, "max"),
    ("float", {"min": INF}, "min"),
    ("float", {"min": 1.5, "max": 1.0}, "max"),
    ("float", {"choices": [1.0]}, "choices"),
    ("string", {"min_length": -1}, "min_length"),
    ("string", {"max_length": 1.5}, "max_length"),
    ("string", {"min_length": 3, "max_length": 2}, "max_length"),
    ("string", {"pattern": 5}, "pattern"),
    ("string", {"pattern": "("}, "pattern"),
    ("string", {"regex": "x"}, "regex"),
    ("boolean", {"min": 1}, "min"),
    ("choice", {}, "choices"),
    ("choice", {"choices": []}, "choices"),
    ("choice", {"choices": "ab"}, "choices"),
    ("choice", {"choices": ["a"], "default": "a"}, "default"),
    ("module", {"allowed_modules": "numpy"}, "allowed_modules"),
    ("module", {"allowed_modules": ["numpy", "1bad"]}, "allowed_modules"),
    ("module", {"pattern": "x"}, "pattern"),
    ("embedding", {"dimensions": 0}, "dimensions"),
    ("embedding", {"dimensions": "3"}, "dimensions"),
    ("embedding", {"dimensions": True}, "dimensions"),
    ("embedding", {"shape": [3]}, "shape"),
    ("tensor", {"shape": "2x2"}, "shape"),
    ("tensor", {"shape": [-1]}, "shape"),
    ("tensor", {"shape": [2.0]}, "shape"),
    ("tensor", {"dtype": "complex64"}, "dtype"),
    ("tensor", {"dimensions": 3}, "dimensions"),
]


def _same(a: Any, b: Any) -> bool:
    """Equality that also holds for NaN (``repr`` keeps types and NaN apart from numbers)."""
    return repr(a) == repr(b)


class TestTypeRegistry:
    def test_the_eight_types_are_registered_by_name(self) -> None:
        assert sorted(VARIABLE_TYPES) == sorted(
            ["integer", "float", "string", "boolean", "choice", "module", "embedding", "tensor"]
        )
        for name, vtype in VARIABLE_TYPES.items():
            assert vtype.name == name
            assert get_type(name) is vtype

    @pytest.mark.parametrize("type_name", ["int", "", "Integer", None, 5])
    def test_an_unknown_type_is_a_validation_error_naming_the_type(self, type_name: Any) -> None:
        with pytest.raises(VariableValidationError, match="unknown type") as info:
            get_type(type_name, variable="v")
        assert info.value.constraint == "type"
        assert info.value.variable == "v"
        assert info.value.value == type_name


class TestValidate:
    @pytest.mark.parametrize(("type_name", "value", "constraints", "expected"), ACCEPTED)
    def test_a_value_within_its_constraints_is_accepted_and_normalized(
        self, type_name: str, value: Any, constraints: dict[str, Any], expected: Any
    ) -> None:
        vtype = get_type(type_name)
        checked = vtype.check_constraints(constraints, variable="v")
        result = vtype.validate("v", value, checked)
        assert _same(result, expected)

    @pytest.mark.parametrize(("type_name", "value", "constraints", "constraint"), REJECTED)
    def test_a_value_that_breaks_a_constraint_is_rejected_naming_variable_constraint_and_value(
        self, type_name: str, value: Any, constraints: dict[str, Any], constraint: str
    ) -> None:
        vtype = get_type(type_name)
        checked = vtype.check_constraints(constraints, variable="speed")
        with pytest.raises(VariableValidationError) as info:
            vtype.validate("speed", value, checked)
        error = info.value
        assert (error.variable, error.constraint) == ("speed", constraint)
        assert _same(error.value, value)
        message = str(error)
        assert "'speed'" in message
        assert repr(constraint) in message
        assert short_repr(value) in message

    def test_a_long_value_is_shortened_in_the_message_but_kept_whole_on_the_error(self) -> None:
        vtype = get_type("string")
        value = "x" * 10_000
        with pytest.raises(VariableValidationError) as info:
            vtype.validate("v", value, vtype.check_constraints({"max_length": 3}))
        assert len(str(info.value)) < 300
        assert "..." in str(info.value)
        assert info.value.value == value

    def test_normalized_containers_are_fresh_copies_of_the_input(self) -> None:
        data = [1.0, 2.0]
        embedding = get_type("embedding").validate("v", data, {})
        tensor = get_type("tensor").validate("t", {"shape": [2], "data": data}, {})
        data.append(3.0)
        assert embedding == [1.0, 2.0]
        assert tensor["data"] == [1.0, 2.0]

    def test_a_choice_is_a_copy_of_the_registered_choice(self) -> None:
        vtype = get_type("choice")
        checked = vtype.check_constraints({"choices": [[1, 2], [3]]})
        chosen = vtype.validate("v", [3], checked)
        chosen.append(4)
        assert checked["choices"] == [[1, 2], [3]]


class TestCheckConstraints:
    @pytest.mark.parametrize(("type_name", "constraints", "constraint"), BAD_CONSTRAINTS)
    def test_a_bad_constraint_is_rejected_at_registration_naming_it(
        self, type_name: str, constraints: Any, constraint: str
    ) -> None:
        with pytest.raises(VariableValidationError) as info:
            get_type(type_name).check_constraints(constraints, variable="speed")
        assert (info.value.variable, info.value.constraint) == ("speed", constraint)
        assert "'speed'" in str(info.value)
        assert constraint in str(info.value)

    def test_no_constraints_is_the_same_as_an_empty_mapping(self) -> None:
        for name, vtype in VARIABLE_TYPES.items():
            if name != "choice":
                assert vtype.check_constraints(None) == {}

    def test_an_unknown_constraint_error_lists_the_known_ones(self) -> None:
        with pytest.raises(VariableValidationError, match=r"known: max, min"):
            get_type("integer").check_constraints({"minimum": 1})

    def test_sequences_in_constraints_are_normalized_to_lists(self) -> None:
        assert get_type("choice").check_constraints({"choices": ("a", "b")}) == {
            "choices": ["a", "b"]
        }
        assert get_type("tensor").check_constraints({"shape": (2, None)}) == {"shape": [2, None]}
        assert get_type("module").check_constraints({"allowed_modules": ("json",)}) == {
            "allowed_modules": ["json"]
        }

    def test_checking_constraints_does_not_change_the_callers_mapping(self) -> None:
        given = {"choices": ("a",)}
        get_type("choice").check_constraints(given)
        assert given == {"choices": ("a",)}


class TestVariable:
    def test_a_variable_is_frozen(self) -> None:
        variable = Variable(name="x", type="integer", value=1, version=1)
        with pytest.raises(dataclasses.FrozenInstanceError):
            variable.version = 2  # type: ignore[misc]

    def test_the_repr_shows_the_value_bounded(self) -> None:
        variable = Variable(name="x", type="tensor", value=[12345] * 1000, version=3)
        assert "value=[12345, 12345" in repr(variable)
        assert len(repr(variable)) < 160
        assert "version=3" in repr(variable)

    @pytest.mark.parametrize("name", ["x", "_x", "learning_rate", "model.v2", "a-b", "a" * 128])
    def test_a_valid_name_is_accepted(self, name: str) -> None:
        assert validate_variable_name(name) == name

    @pytest.mark.parametrize("name", ["", "1x", ".x", "-x", "a b", "a/b", "é", "a" * 129, None, 5])
    def test_an_invalid_name_is_rejected_naming_the_name_constraint(self, name: Any) -> None:
        with pytest.raises(VariableValidationError) as info:
            validate_variable_name(name)
        assert info.value.constraint == "name"
        assert info.value.value == name
        assert "'name'" in str(info.value)

    @pytest.mark.parametrize("type_name", ["integer", "float", "string", "choice", "embedding"])
    def test_an_int_too_big_to_print_is_a_validation_error(self, type_name: str) -> None:
        """10**5000 cannot be repr()'d; the error message describes it instead of raising."""
        constraints = {"choices": [1]} if type_name == "choice" else {"max": 1}
        vtype = get_type(type_name)
        checked = vtype.check_constraints(constraints if type_name in ("choice", "integer") else {})
        with pytest.raises(VariableValidationError, match="5001 digits") as info:
            vtype.validate("big", 10**5000 if type_name != "embedding" else [10**5000], checked)
        assert info.value.variable == "big"

    @pytest.mark.parametrize("sign", [1, -1])
    def test_a_bound_too_big_for_a_float_is_an_invalid_constraint(self, sign: int) -> None:
        """min/max beyond float range are refused as constraints, not an OverflowError."""
        bound = sign * 10**5000
        with pytest.raises(VariableValidationError) as info:
            get_type("integer").check_constraints({"min": bound}, variable="n")
        assert info.value.constraint == "min"
        with pytest.raises(VariableValidationError, match="unknown constraint"):
            get_type("integer").check_constraints({10**5000: 1}, variable="n")

    def test_a_huge_int_is_a_float_when_it_fits_and_rejected_when_it_does_not(self) -> None:
        assert math.isfinite(get_type("float").validate("v", 10**300, {}))
        with pytest.raises(VariableValidationError, match="finite"):
            get_type("float").validate("v", 10**400, {})
        with pytest.raises(VariableValidationError, match="finite"):
            get_type("embedding").validate("v", [10**400], {})
