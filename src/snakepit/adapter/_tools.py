"""``@tool``: which adapter methods are remotely callable, and their specs.

A tool's spec (name, parameters from the signature, description from the
docstring, streaming or not) is built once per adapter class and reported to
the host by ``Describe``. Arguments are bound against the signature in the
worker, so a missing or unknown argument is an ``InvalidArgumentsError`` that
names the tool and the argument, never a bare ``TypeError``.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from snakepit.errors import InvalidArgumentsError

__all__ = ["ParamInfo", "ToolInfo", "collect_tools", "tool"]

F = TypeVar("F", bound=Callable[..., Any])

_TOOL_ATTR = "__snakepit_tool__"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
ToolKind = Literal["sync", "async", "generator", "async_generator"]

# Plain annotations we check before calling; anything else is passed through unchecked.
_SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "bytes": (bytes,),
    "list": (list,),
    "dict": (dict,),
}


@dataclass(frozen=True)
class _ToolOptions:
    name: str | None
    description: str | None
    idempotent: bool = False


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, idempotent: bool = False
) -> Callable[[F], F]: ...


def tool(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = False,
) -> F | Callable[[F], F]:
    """Mark an adapter method as a tool callable from the host.

    Works on plain, ``async``, generator (streaming) and async generator
    (streaming) methods. A parameter annotated ``SessionContext`` receives the
    call's session context instead of an argument.

    Args:
        fn: the method (when used as ``@tool`` without parentheses).
        name: the tool's public name (default: the method name).
        description: overrides the docstring's first paragraph.
        idempotent: running it twice does no harm; a call the worker died under is run
            again on a fresh worker, up to the pool's ``idempotent_retries`` times.
    """

    def mark(f: F) -> F:
        if name is not None and not _NAME_RE.match(name):
            raise ValueError(
                f"@tool(name={name!r}) on {f.__qualname__}: tool names must match "
                f"{_NAME_RE.pattern}"
            )
        setattr(
            f, _TOOL_ATTR, _ToolOptions(name=name, description=description, idempotent=idempotent)
        )
        return f

    return mark(fn) if fn is not None else mark


@dataclass(frozen=True)
class ParamInfo:
    name: str
    annotation: str
    required: bool
    default_json: str
    kind: str


@dataclass(frozen=True)
class ToolInfo:
    """One tool of an adapter class: its method and its spec."""

    name: str
    method_name: str
    description: str
    kind: ToolKind
    params: tuple[ParamInfo, ...]
    context_param: str | None
    accepts_var_kwargs: bool
    idempotent: bool = False

    @property
    def streaming(self) -> bool:
        return self.kind in ("generator", "async_generator")

    @property
    def is_async(self) -> bool:
        return self.kind in ("async", "async_generator")

    def signature_text(self) -> str:
        parts = []
        for p in self.params:
            text = p.name + (f": {p.annotation}" if p.annotation else "")
            if not p.required:
                text += f" = {p.default_json or '...'}"
            parts.append(text)
        return f"{self.name}({', '.join(parts)})"

    def bind(self, args: Any) -> dict[str, Any]:
        """Check ``args`` (a dict of keyword arguments) against the signature.

        Raises:
            InvalidArgumentsError: args is not a dict, an argument is missing or unknown, or a
                plainly annotated argument has the wrong type.
        """
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise InvalidArgumentsError(
                f"tool {self.name!r} takes keyword arguments as a dict, got "
                f"{type(args).__name__}; call it as {self.signature_text()}",
                tool=self.name,
                argument=None,
            )
        known = {p.name: p for p in self.params}
        if not self.accepts_var_kwargs:
            unknown = [k for k in args if k not in known]
            if unknown:
                raise InvalidArgumentsError(
                    f"tool {self.name!r} got unknown argument(s) {', '.join(map(repr, unknown))}; "
                    f"it takes {self.signature_text()}",
                    tool=self.name,
                    argument=unknown[0],
                )
        for p in self.params:
            if p.name not in args:
                if p.required:
                    raise InvalidArgumentsError(
                        f"tool {self.name!r} is missing required argument {p.name!r}; "
                        f"it takes {self.signature_text()}",
                        tool=self.name,
                        argument=p.name,
                    )
                continue
            allowed = _SIMPLE_TYPES.get(p.annotation)
            value = args[p.name]
            if allowed is not None and value is not None:
                ok = isinstance(value, allowed) and not (
                    isinstance(value, bool) and p.annotation in ("int", "float")
                )
                if not ok:
                    raise InvalidArgumentsError(
                        f"tool {self.name!r} argument {p.name!r} expects {p.annotation}, got "
                        f"{type(value).__name__} {_short(value)}; it takes {self.signature_text()}",
                        tool=self.name,
                        argument=p.name,
                    )
        return args


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _annotation_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", None) or str(annotation)


def _is_context(annotation: str) -> bool:
    return annotation.rsplit(".", 1)[-1].strip("'\"") == "SessionContext" or annotation.endswith(
        "SessionContext | None"
    )


def _kind_of(fn: Callable[..., Any]) -> ToolKind:
    if inspect.isasyncgenfunction(fn):
        return "async_generator"
    if inspect.iscoroutinefunction(fn):
        return "async"
    if inspect.isgeneratorfunction(fn):
        return "generator"
    return "sync"


def _describe(fn: Callable[..., Any], options: _ToolOptions) -> str:
    if options.description is not None:
        return options.description
    doc = inspect.getdoc(fn) or ""
    return doc.split("\n\n", 1)[0].strip()


def _build(method_name: str, fn: Callable[..., Any], options: _ToolOptions) -> ToolInfo:
    sig = inspect.signature(fn)
    params: list[ParamInfo] = []
    context_param = None
    var_kwargs = False
    for i, (pname, p) in enumerate(sig.parameters.items()):
        if i == 0 and pname in ("self", "cls"):
            continue
        annotation = _annotation_text(p.annotation)
        if _is_context(annotation):
            context_param = pname
            continue
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var_kwargs = True
            continue
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            raise TypeError(
                f"tool {method_name!r}: parameter {pname!r} is positional-only or *args; tools "
                "are called with keyword arguments, so use named parameters"
            )
        default_json = ""
        if p.default is not inspect.Parameter.empty:
            try:
                default_json = json.dumps(p.default)
            except (TypeError, ValueError):
                default_json = ""
        params.append(
            ParamInfo(
                name=pname,
                annotation=annotation,
                required=p.default is inspect.Parameter.empty,
                default_json=default_json,
                kind="keyword_only"
                if p.kind is inspect.Parameter.KEYWORD_ONLY
                else "positional_or_keyword",
            )
        )
    name = options.name or method_name
    if not _NAME_RE.match(name):
        raise ValueError(f"tool name {name!r} must match {_NAME_RE.pattern}")
    return ToolInfo(
        name=name,
        method_name=method_name,
        description=_describe(fn, options),
        kind=_kind_of(fn),
        params=tuple(params),
        context_param=context_param,
        accepts_var_kwargs=var_kwargs,
        idempotent=options.idempotent,
    )


def collect_tools(cls: type) -> dict[str, ToolInfo]:
    """The tools of an adapter class (including inherited ones), by public name.

    Raises:
        TypeError: a tool has positional-only parameters or two tools share a name.
    """
    tools: dict[str, ToolInfo] = {}
    seen: set[str] = set()
    for klass in cls.__mro__:
        for attr, raw in vars(klass).items():
            if attr in seen:
                continue
            seen.add(attr)
            fn = raw.__func__ if isinstance(raw, staticmethod | classmethod) else raw
            options = getattr(fn, _TOOL_ATTR, None)
            if not isinstance(options, _ToolOptions):
                continue
            info = _build(attr, fn, options)
            if info.name in tools:
                raise TypeError(
                    f"{cls.__qualname__}: two tools are named {info.name!r} "
                    f"({tools[info.name].method_name} and {attr})"
                )
            tools[info.name] = info
    return tools
