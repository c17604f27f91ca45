"""The worker side of ``snakepit.Executor`` and ``Pool.for_functions``: run plain functions.

The host pickles ``(fn, args, kwargs)`` (with cloudpickle, so lambdas, closures and
functions of a ``__main__`` script travel by value) and sends the blob as the bytes
argument of the ``snakepit.call`` tool. The tool unpickles it, calls the function and
answers with a pickled outcome: ``("ok", value)`` or ``("err", pickled exception or None,
type, message, traceback)``. A function's exception is data here, not a tool failure, so the host can
raise the original exception object with the remote traceback chained to it.

Pickle is explicit in this one adapter because the caller handed us Python callables;
the pool's own codec stays JSON, and nothing else in the worker unpickles.
"""

from __future__ import annotations

import base64
import os
import pickle
import traceback
from typing import TYPE_CHECKING, Any

from snakepit.adapter._base import Adapter
from snakepit.adapter._tools import tool

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "CALL_TOOL",
    "ENV_INITIALIZER",
    "FUNCTION_RUNNER",
    "FunctionRunner",
    "dumps",
    "loads",
    "process_chunk",
]

CALL_TOOL = "snakepit.call"
FUNCTION_RUNNER = "snakepit.adapter._functions:FunctionRunner"
# The pickled (initializer, initargs), base64, handed to every worker of the pool.
ENV_INITIALIZER = "SNAKEPIT_FUNCTION_INITIALIZER"


def dumps(value: Any) -> bytes:
    """Pickle ``value``: plain pickle when it can (fast), cloudpickle for what it cannot
    (lambdas, closures, classes and functions defined in ``__main__``).

    Raises:
        Exception: whatever pickling raised when neither can carry the value.
    """
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        try:
            import cloudpickle
        except ImportError:  # pragma: no cover - cloudpickle is a dependency
            raise
        data: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        return data


def dumps_by_value(value: Any) -> bytes:
    """Pickle what the caller hands over with cloudpickle, so that functions and classes of
    the caller's ``__main__`` (which a worker cannot import) travel by value."""
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - cloudpickle is a dependency
        return dumps(value)
    data: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return data


def loads(data: bytes) -> Any:
    """Unpickle what :func:`dumps` produced (cloudpickle output is plain pickle data)."""
    return pickle.loads(data)


def process_chunk(fn: Callable[..., Any], chunk: Iterable[tuple[Any, ...]]) -> list[Any]:
    """Run ``fn`` over a chunk of argument tuples (``Executor.map`` with ``chunksize``)."""
    return [fn(*args) for args in chunk]


def _qualified(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _failure(exc: BaseException) -> bytes:
    """The outcome of a raising call. The exception is pickled apart from its description,
    so the host still gets its type, message and traceback when it cannot rebuild it."""
    tb = "".join(traceback.format_exception(exc))
    try:
        blob: bytes | None = dumps(exc)
    except BaseException as problem:
        blob = None
        tb += f"\n(the exception could not be pickled: {type(problem).__name__}: {problem})"
    return dumps(("err", blob, _qualified(exc), str(exc), tb))


class FunctionRunner(Adapter):
    """Runs pickled plain functions for ``snakepit.Executor`` (one per worker process).

    Subclass it to add tools next to the function runner (``Executor(adapter=...)``).
    """

    def setup(self) -> None:
        """Run the executor's ``initializer(*initargs)``, once per worker process."""
        blob = os.environ.pop(ENV_INITIALIZER, "")
        if blob:
            initializer, initargs = loads(base64.b64decode(blob))
            initializer(*initargs)

    @tool(name=CALL_TOOL)
    def call(self, task: bytes) -> bytes:
        """Run one pickled ``(fn, args, kwargs)`` and return the pickled outcome."""
        try:
            fn, args, kwargs = loads(task)
            value = fn(*args, **kwargs)
        except BaseException as exc:
            return _failure(exc)
        try:
            return dumps(("ok", value))
        except BaseException as exc:
            return _failure(exc)
