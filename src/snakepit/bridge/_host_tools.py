"""Host tools: Python callables on the host that worker code may call (bidirectional tools).

``pool.register_host_tool(name, fn)`` puts a callable here; worker code calls
it with ``ctx.call_host_tool(name, args)``. Arguments are keyword arguments,
checked against the callable's signature before it runs. A synchronous tool
runs on a thread (``asyncio.to_thread``) so the host's event loop stays free;
an ``async`` one runs on the loop. Whatever a tool raises comes back to the
worker as :class:`~snakepit.errors.HostToolError` carrying the host traceback
(a :class:`~snakepit.errors.SnakepitError` keeps its own kind). That includes
``SystemExit``, ``KeyboardInterrupt`` and a ``CancelledError`` the tool raises itself:
none of them may stop the host's loop or leave the worker's call unanswered.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snakepit.errors import (
    HostToolError,
    InvalidArgumentsError,
    InvalidValueError,
    SnakepitError,
    ToolNotFoundError,
    brief,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["HostTool", "HostToolRegistry", "validate_tool_name"]

log = logging.getLogger("snakepit.bridge")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")


def validate_tool_name(name: Any) -> str:
    """Return ``name`` when it is a valid tool name: ``[A-Za-z_][A-Za-z0-9_.-]{0,127}``.

    Raises:
        InvalidValueError: it is not a string of that shape (a ``ValueError`` too).
    """
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        # The name is echoed cut short: a 1 MiB name makes no 1 MiB message.
        raise InvalidValueError(
            f"invalid host tool name {brief(name)}: use 1-128 characters [A-Za-z0-9_.-] "
            "starting with a letter or '_'",
            argument="name",
        )
    return name


@dataclass(frozen=True)
class HostTool:
    """One registered host tool."""

    name: str
    fn: Callable[..., Any]
    description: str
    signature: inspect.Signature
    is_async: bool

    def signature_text(self) -> str:
        return f"{self.name}{self.signature}"


class HostToolRegistry:
    """The host tools of one pool, by name."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._tools: dict[str, HostTool] = {}

    def register(
        self, name: str, fn: Callable[..., Any], *, description: str | None = None
    ) -> HostTool:
        """Make ``fn`` callable from worker code as ``name``.

        Raises:
            InvalidValueError: the name is malformed or already registered (a ``ValueError``).
            TypeError: ``fn`` is not callable or its signature cannot be read.
        """
        validate_tool_name(name)
        if not callable(fn):
            raise TypeError(f"host tool {name!r} must be callable, got {type(fn).__name__}")
        if name in self._tools:
            raise InvalidValueError(
                f"host tool {name!r} is already registered in pool {self.name!r}; "
                "unregister it first or pick another name",
                argument="name",
            )
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"host tool {name!r}: cannot read the signature of {fn!r}") from exc
        is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
        )
        if description is None:
            description = (inspect.getdoc(fn) or "").split("\n\n", 1)[0].strip()
        tool = HostTool(name, fn, description, signature, is_async)
        self._tools[name] = tool
        return tool

    def unregister(self, name: str) -> bool:
        """Remove a host tool; True when it was registered."""
        return self._tools.pop(name, None) is not None

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._tools)

    def tools(self) -> list[HostTool]:
        """The registered tools, sorted by name."""
        return [self._tools[name] for name in self.names()]

    def get(self, name: str) -> HostTool:
        """The tool called ``name``.

        Raises:
            ToolNotFoundError: no such tool (the message lists the available ones).
        """
        tool = self._tools.get(name)
        if tool is None:
            available = self.names()
            raise ToolNotFoundError(
                f"pool {self.name!r} has no host tool {name!r}; available: "
                f"{', '.join(available) or 'none'} (register one with pool.register_host_tool)",
                tool=name,
                available=available,
            )
        return tool

    async def call(self, name: str, args: Any) -> Any:
        """Run the host tool ``name`` with keyword ``args``.

        Raises:
            ToolNotFoundError: no such tool.
            InvalidArgumentsError: ``args`` is not a dict or does not fit the signature.
            HostToolError: the tool raised, even ``SystemExit``, ``KeyboardInterrupt`` or
                ``CancelledError`` (type, message and host traceback attached).
            SnakepitError: the tool raised a snakepit error; it keeps its kind.
        """
        tool = self.get(name)
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise InvalidArgumentsError(
                f"host tool {name!r} takes keyword arguments as a dict, got "
                f"{type(args).__name__}; it takes {tool.signature_text()}",
                tool=name,
                argument=None,
            )
        try:
            tool.signature.bind(**args)
        except TypeError as exc:
            raise InvalidArgumentsError(
                f"host tool {name!r}: {exc}; it takes {tool.signature_text()}",
                tool=name,
                argument=None,
            ) from None
        try:
            if tool.is_async:
                result = await tool.fn(**args)
            else:
                raised, result = await asyncio.to_thread(_outcome, tool.fn, args)
                if raised:
                    raise result
                if inspect.isawaitable(result):
                    result = await result
        except SnakepitError:
            raise
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and _cancelling():
                raise  # the worker's call went away: this is our cancellation, not the tool's
            raise _host_tool_error(name, exc) from exc
        return result

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"<HostToolRegistry {self.name!r} {self.names()}>"


def _outcome(fn: Callable[..., Any], args: dict[str, Any]) -> tuple[bool, Any]:
    """Call ``fn`` on its thread and return what it raised rather than raise it: an
    exception carried by a future is thrown into the awaiting coroutine, and
    ``StopIteration`` or ``GeneratorExit`` there would never reach our handler."""
    try:
        return False, fn(**args)
    except BaseException as exc:
        return True, exc


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _host_tool_error(name: str, exc: BaseException) -> HostToolError:
    """What a tool raised, for the worker. ``SystemExit``, ``KeyboardInterrupt`` and a
    ``CancelledError`` of the tool's own are reported too: a host tool must not stop the
    host's loop, and the worker's call must get its answer."""
    remote_type = type(exc).__qualname__
    if type(exc).__module__ not in ("builtins", "__main__"):
        remote_type = f"{type(exc).__module__}.{remote_type}"
    message = f"host tool {name!r} raised {remote_type}" + (f": {exc}" if str(exc) else "")
    if not isinstance(exc, Exception):
        log.error(
            "host tool %r raised %s; it is reported to its caller, not raised", name, remote_type
        )
        message += " (a host tool cannot stop or cancel the host; the error went to the caller)"
    return HostToolError(
        message,
        tool=name,
        remote_type=remote_type,
        remote_traceback="".join(traceback.format_exception(exc)),
    )
