"""Whatever a caller (or a worker, through the bridge) passes the session store, the answer is
a typed SnakepitError: never a TypeError, AttributeError, OverflowError or a repr() failure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import snakepit
from snakepit.bridge import get_type

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from snakepit.bridge import InMemorySessionStore

HUGE = 10**5000  # repr() and str() refuse it; float() overflows


class Unequal:
    """A value whose == has no truth value (like a numpy array)."""

    def __eq__(self, other: object) -> bool:
        raise ValueError("truth value is ambiguous")

    __hash__ = object.__hash__


# (label, the call, the error it must raise, or None where the API answers normally)
CALLS: list[tuple[str, Callable[[Any], Awaitable[Any]], type[Exception] | None]] = [
    ("get_many(5)", lambda s: s.get_many("s", 5), snakepit.InvalidValueError),
    ("get_many('v')", lambda s: s.get_many("s", "v"), snakepit.InvalidValueError),
    ("get_many([[1]])", lambda s: s.get_many("s", [[1]]), None),
    ("set_many(list)", lambda s: s.set_many("s", [("v", 1)]), snakepit.InvalidValueError),
    (
        "set_many(expected_versions=list)",
        lambda s: s.set_many("s", {"v": 1}, expected_versions=[1]),
        snakepit.InvalidValueError,
    ),
    ("list_variables(5)", lambda s: s.list_variables("s", 5), snakepit.InvalidValueError),
    ("watch(5)", lambda s: s.watch("s", 5), snakepit.InvalidValueError),
    ("get_variable([])", lambda s: s.get_variable("s", []), snakepit.VariableNotFoundError),
    ("history({})", lambda s: s.history("s", {}), snakepit.VariableNotFoundError),
    ("rollback(HUGE)", lambda s: s.rollback("s", "v", HUGE), snakepit.VariableNotFoundError),
    (
        "set_variable(expected=HUGE)",
        lambda s: s.set_variable("s", "v", 2, expected_version=HUGE),
        snakepit.VersionConflictError,
    ),
    ("get(['s'])", lambda s: s.get(["s"]), snakepit.SessionNotFoundError),
    ("delete(['s'])", lambda s: s.delete(["s"]), None),
    ("create(ttl=HUGE)", lambda s: s.create("t", ttl=HUGE), None),
    ("create(metadata=[1])", lambda s: s.create("t", metadata=[1]), snakepit.InvalidValueError),
    ("create(metadata='m')", lambda s: s.create("t", metadata="m"), snakepit.InvalidValueError),
    ("create(ttl='1')", lambda s: s.create("t", ttl="1"), snakepit.InvalidValueError),
    ("create('a b')", lambda s: s.create("a b"), snakepit.InvalidValueError),
    ("create('s')", lambda s: s.create("s"), snakepit.InvalidValueError),
    (
        "register(metadata=5)",
        lambda s: s.register_variable("s", "w", "integer", 1, metadata=5),
        snakepit.InvalidValueError,
    ),
    (
        "register again as string",
        lambda s: s.register_variable("s", "v", "string", "x"),
        snakepit.VariableRedefinedError,
    ),
    (
        "register tensor with a list dtype",
        lambda s: s.register_variable("s", "t", "tensor", {}, constraints={"dtype": ["x"]}),
        snakepit.VariableValidationError,
    ),
    (
        "register string, min_length=HUGE",
        lambda s: s.register_variable("s", "w", "string", "x", constraints={"min_length": HUGE}),
        snakepit.VariableValidationError,
    ),
    (
        "register choice of an uncomparable value",
        lambda s: s.register_variable(
            "s", "c", "choice", Unequal(), constraints={"choices": [Unequal()]}
        ),
        snakepit.VariableValidationError,
    ),
]


@pytest.mark.parametrize(("label", "call", "expected"), CALLS, ids=[c[0] for c in CALLS])
async def test_bad_store_inputs_are_typed(
    store: InMemorySessionStore,
    label: str,
    call: Callable[[InMemorySessionStore], Awaitable[Any]],
    expected: type[Exception] | None,
) -> None:
    """Each bad input is its typed error (or, where the API allows it, a plain answer)."""
    await store.create("s")
    await store.register_variable("s", "v", "integer", 1)
    if expected is None:
        await call(store)
        return
    with pytest.raises(expected) as info:
        await call(store)
    assert isinstance(info.value, snakepit.SnakepitError), label
    assert len(str(info.value)) < 1000, label


def test_the_errors_that_were_value_errors_still_are() -> None:
    """Code that caught ValueError (the documented type) keeps working."""
    assert issubclass(snakepit.InvalidValueError, ValueError)
    assert issubclass(snakepit.InvalidValueError, snakepit.RequestError)
    assert issubclass(snakepit.VariableRedefinedError, ValueError)
    assert issubclass(snakepit.VariableRedefinedError, snakepit.VariableError)


@pytest.mark.parametrize(
    ("type_name", "value", "constraints"),
    [
        ("tensor", {"shape": [1], "data": [1.0], "dtype": ["float64"]}, {}),
        ("tensor", {"shape": [10**3000, 10**3000], "data": []}, {}),
        ("tensor", {"shape": [1], "data": [1.0], HUGE: 1}, {}),
        ("string", "x", {"min_length": HUGE}),
        ("embedding", [1.0], {"dimensions": HUGE}),
    ],
    ids=["list-dtype", "huge-shape", "huge-key", "huge-min_length", "huge-dimensions"],
)
def test_type_errors_describe_values_they_cannot_print(
    type_name: str, value: Any, constraints: dict[str, Any]
) -> None:
    """A message that echoes an unprintable part of the value describes it instead of raising."""
    vtype = get_type(type_name)
    with pytest.raises(snakepit.VariableValidationError):
        vtype.validate("v", value, vtype.check_constraints(constraints, variable="v"))
