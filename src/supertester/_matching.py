"""Match specifications shared by the mailbox, the recorder and the supervision helpers.

A match is a type, a tuple of types, a predicate, or ``None`` (anything).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = ["Match", "compile_match", "describe_match"]

Match: TypeAlias = type[Any] | tuple[type[Any], ...] | Callable[[Any], bool] | None


def compile_match(match: Match) -> Callable[[Any], bool]:
    """Turn a match specification into a predicate.

    Raises:
        TypeError: ``match`` is neither a type, a tuple of types, a callable nor None.
    """
    if match is None:
        return _anything
    if isinstance(match, type):
        cls = match
        return lambda item: isinstance(item, cls)
    if isinstance(match, tuple):
        if not all(isinstance(cls, type) for cls in match):
            raise TypeError(
                f"a tuple match must hold only types, got {match!r}; "
                "to match a value, pass a predicate such as `lambda item: item == value`"
            )
        classes = match
        return lambda item: isinstance(item, classes)
    if callable(match):
        return match
    raise TypeError(
        f"expected a type, a tuple of types, a predicate or None as match, got {match!r}; "
        "to match a value, pass a predicate such as `lambda item: item == value`"
    )


def describe_match(match: Match) -> str:
    """A short human description of a match specification, for failure messages."""
    if match is None:
        return "any item"
    if isinstance(match, type):
        return f"an instance of {match.__qualname__}"
    if isinstance(match, tuple):
        names = " | ".join(cls.__qualname__ for cls in match)
        return f"an instance of {names}"
    code = getattr(match, "__code__", None)
    name = getattr(match, "__qualname__", None)
    if code is not None and name is not None:
        where = f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
        if name.endswith("<lambda>"):
            return f"an item matching the lambda at {where}"
        return f"an item for which {name}() is true ({where})"
    return f"an item matching {match!r}"


def _anything(item: object) -> bool:
    return True
