"""A call's tool, arguments, timeout and retries, checked before it waits for a worker.

Pure functions: each takes the pool's tools and options and raises a typed
error that names the argument and what is allowed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

from snakepit import codec
from snakepit.bridge._types import short_repr
from snakepit.errors import (
    InvalidArgumentsError,
    InvalidValueError,
    RequestError,
    ToolNotFoundError,
    brief,
)
from snakepit.worker._transport import MAX_DEADLINE

if TYPE_CHECKING:
    from snakepit.config import PoolConfig
    from snakepit.worker._transport import DescribedTool

__all__ = ["DEFAULT", "call_args", "call_deadline", "call_retries", "earliest"]


class _Default:
    def __repr__(self) -> str:
        return "<pool default>"


DEFAULT: Final[Any] = _Default()


def call_args(
    tools: dict[str, DescribedTool],
    tool: str,
    args: Any,
    *,
    streaming: bool,
    pool: str,
    config: PoolConfig,
) -> dict[str, Any]:
    """The call's arguments, checked against ``tool``'s spec and the codec.

    Raises:
        ToolNotFoundError: ``tool`` is not a tool of the pool.
        InvalidArgumentsError: ``args`` is not a dict, or does not fit the tool's signature.
        RequestError: ``tool`` is (or is not) a streaming tool, unlike the call.
        SerializationError: a value cannot travel.
    """
    # What the caller passed is echoed cut short: a 1 MiB name makes no 1 MiB message.
    if not isinstance(tool, str) or not tool:
        raise ToolNotFoundError(
            f"tool must be a non-empty string, got {brief(tool)}",
            tool=tool,
            available=sorted(tools),
        )
    if args is None:
        args = {}
    elif not isinstance(args, dict):
        raise InvalidArgumentsError(
            f"arguments of tool {short_repr(tool)} must be a dict of keyword arguments, got "
            f"{type(args).__name__}",
            tool=tool,
            argument=None,
        )
    spec = tools.get(tool)
    if spec is None:
        raise ToolNotFoundError(
            f"pool {pool!r} ({config.adapter}) has no tool {short_repr(tool)}; "
            f"available: {', '.join(sorted(tools)) or 'none'}",
            tool=tool,
            available=sorted(tools),
        )
    if spec.streaming != streaming:
        use, other = ("stream", "execute") if spec.streaming else ("execute", "stream")
        raise RequestError(
            f"tool {tool!r} is {'a streaming tool (a generator)' if spec.streaming else 'not a streaming tool (not a generator)'}; "
            f"call it with pool.{use}({tool!r}, ...), not pool.{other}()",
            tool=tool,
        )
    spec.check_args(args, worker="(host)")
    if config.serialization == "json":
        codec.validate(args, what=f"args of tool {tool!r}")  # before it waits for a worker
    checked: dict[str, Any] = args
    return checked


def call_deadline(timeout: Any, default: float | None, tool: str = "") -> float | None:
    """The call's deadline in seconds, or None for none (see ``Pool.execute``'s ``timeout``).

    Raises:
        InvalidValueError: ``timeout`` is not a number > 0, None or ``math.inf`` (NaN included).
    """
    if timeout is DEFAULT:
        timeout = default
    if timeout is None:
        return None
    if (
        not isinstance(timeout, int | float)
        or isinstance(timeout, bool)
        or (isinstance(timeout, float) and math.isnan(timeout))
        or timeout <= 0
    ):
        raise InvalidValueError(
            f"timeout of {brief(tool or 'the call')} must be a number of seconds > 0, or "
            f"None or math.inf for no deadline; got {brief(timeout)}",
            argument="timeout",
            tool=tool,
        )
    if timeout > MAX_DEADLINE:  # math.inf, or longer than any clock can wait for
        return None
    return float(timeout)


def call_retries(
    tools: dict[str, DescribedTool], tool: str, retries: int | None, config: PoolConfig
) -> int:
    """How many times a call may run again after its worker crashed.

    Raises:
        InvalidValueError: ``retries`` is not an integer >= 0 or None.
    """
    if retries is None:
        # A malformed tool name is refused by call_args, with its own message.
        spec = tools.get(tool) if isinstance(tool, str) else None
        return config.idempotent_retries if spec is not None and spec.idempotent else 0
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise InvalidValueError(
            f"retries must be an integer >= 0 or None, got {brief(retries)}",
            argument="retries",
        )
    return retries


def earliest(*times: float | None) -> float | None:
    """The earliest of the deadlines that are set, or None."""
    known = [t for t in times if t is not None]
    return min(known) if known else None
