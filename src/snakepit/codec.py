"""Values on the wire: JSON-compatible values plus bytes, round-tripped exactly.

A value is ``None``, ``bool``, ``int``, ``float``, ``str``, bytes-like, a
``list`` (or ``tuple``, which arrives as a list) of values, or a ``dict`` with
``str`` keys and value values, nested at most :data:`MAX_DEPTH` containers
deep. It is sent as one standard JSON document (RFC 8259) plus a list of raw
byte blobs. Two tagged markers carry what JSON cannot:

* each bytes-like value becomes ``{"\\u0000b": index}`` in the document and
  travels unencoded beside it (no base64, no copy into the JSON text);
  ``bytes``, ``bytearray``, ``memoryview`` and any other buffer of single bytes
  (format ``B``, ``b`` or ``c``: ``mmap``, ``array('B')``, a ``uint8`` array)
  count, and all arrive as ``bytes``;
* a NaN or infinite float becomes ``{"\\u0000f": "nan" | "inf" | "-inf"}``, since
  JSON has no token for them; the bare ``NaN``/``Infinity`` tokens some
  encoders write are refused when decoding.

A user dict that happens to use a marker key is escaped as
``{"\\u0000d": dict}``, so every value above comes back exactly as it went.

Anything else (a set, a float64 array, an object, a dict with an int key, a
value nested deeper than :data:`MAX_DEPTH`) is a :class:`SerializationError`
that names where in the value it sits and its type; it is never silently
turned into a string.

Python-to-Python pools may opt into pickle (``Encoding.PICKLE``); it is never
the default and a worker only unpickles when started with pickle allowed.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import pickle
from typing import Any

from snakepit.errors import SerializationError, brief

__all__ = ["MAX_DEPTH", "Encoded", "Encoding", "decode", "encode", "validate"]

_BYTES = "\x00b"  # marker key for a bytes value: {"\x00b": index into blobs}
_FLOAT = "\x00f"  # marker key for a non-finite float: {"\x00f": "nan" | "inf" | "-inf"}
_ESCAPE = "\x00d"  # marker key for a user dict that itself uses a marker key
_MARKERS = frozenset({_BYTES, _FLOAT, _ESCAPE})
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_BYTE_FORMATS = frozenset({"B", "b", "c"})

MAX_DEPTH = 200
"""The deepest a value may nest containers (lists, tuples, dicts) inside each other.

It keeps encoding and decoding off Python's recursion limit, so a deep value is
a ``SerializationError`` on either side rather than a ``RecursionError``."""

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _refuse_constant(token: str) -> Any:
    raise ValueError(
        f"non-standard JSON token {token}; the contract sends non-finite floats as "
        '{"\\u0000f": "nan" | "inf" | "-inf"}'
    )


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)

Encoded = tuple[bytes, list[bytes]]


class Encoding(enum.IntEnum):
    """How a payload is encoded; the numbers are the wire values."""

    JSON = 0
    PICKLE = 1


class _Refusal(Exception):
    """Why a value cannot be carried; each container on the way out adds its step of the path."""

    def __init__(self, value: Any, problem: str) -> None:
        super().__init__(problem)
        self.value = value
        self.problem = problem
        self.steps: list[str] = []

    def error(self, what: str, verb: str = "encode") -> SerializationError:
        path = what + "".join(reversed(self.steps))
        shown = path if len(path) <= 160 else f"{path[:100]}...{path[-57:]}"
        t = type(self.value)
        if self.problem == "key":
            message = (
                f"cannot {verb} {shown}: dict keys must be str, found key {brief(self.value)} "
                f"of type {t.__name__}; convert the keys to strings first"
            )
        elif self.problem == "depth":
            message = (
                f"cannot {verb} {shown}: it nests containers more than {MAX_DEPTH} deep "
                "(or contains itself); flatten it"
            )
        else:
            message = (
                f"cannot {verb} {shown}: values of type {t.__module__}.{t.__qualname__} are "
                "not supported (allowed: None, bool, int, float, str, bytes-like, list, tuple, "
                f"dict with str keys){_hint(self.value)}"
            )
        return SerializationError(message, path=path, type_name=t.__name__)


def _hint(value: Any) -> str:
    """How to make ``value`` carriable, as Python the user can write (a path names a place;
    it is not an expression, so hints speak of ``value``)."""
    t = type(value)
    if hasattr(value, "tolist"):
        return "; convert it first, e.g. value.tolist() (or value.tobytes() for raw data)"
    if isinstance(value, set | frozenset):
        return "; pass a list instead, e.g. sorted(value)"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return (
            "; send text, e.g. value.isoformat(), and read it back with "
            f"{t.__name__}.fromisoformat(text)"
        )
    if isinstance(value, datetime.timedelta):
        return "; send a number, e.g. value.total_seconds()"
    if isinstance(value, int | float | str | dict | list):
        return f"; pass a plain {t.__mro__[1].__name__} instead of the subclass {t.__name__}"
    return ""


def _bytes_like(value: Any) -> bool:
    """True for a bytes-like value: a memoryview, bytearray, or a buffer of single bytes."""
    if isinstance(value, memoryview | bytearray | bytes):
        return True
    try:
        with memoryview(value) as view:
            return view.format in _BYTE_FORMATS
    except (TypeError, ValueError):
        return False


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, memoryview):
        return value.tobytes()
    with memoryview(value) as view:
        return view.tobytes()


def _step(key: str) -> str:
    return f"[{key!r}]" if len(key) <= 40 else f"[{key[:30]!r}...]"


def _check(value: Any, depth: int) -> bool:
    """Validate ``value``; return True when it needs rewriting (bytes, non-finite floats,
    marker keys).

    Raises:
        _Refusal: what cannot be carried; the caller turns it into a SerializationError.
    """
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return False
    if t is float:
        return not -math.inf < value < math.inf
    if t is bytes:
        return True
    if t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise _Refusal(value, "depth")
        special = False
        for i, item in enumerate(value):
            try:
                if _check(item, depth + 1):
                    special = True
            except _Refusal as refusal:
                refusal.steps.append(f"[{i}]")
                raise
        return special
    if t is dict:
        if depth >= MAX_DEPTH:
            raise _Refusal(value, "depth")
        special = False
        for key, item in value.items():
            if type(key) is not str:
                raise _Refusal(key, "key")
            if key in _MARKERS:
                special = True
            try:
                if _check(item, depth + 1):
                    special = True
            except _Refusal as refusal:
                refusal.steps.append(_step(key))
                raise
        return special
    if _bytes_like(value):
        return True
    raise _Refusal(value, "type")


def _rewrite(value: Any, blobs: list[bytes]) -> Any:
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        if -math.inf < value < math.inf:
            return value
        return {_FLOAT: "nan" if value != value else ("inf" if value > 0 else "-inf")}
    if t is bytes:
        blobs.append(value)
        return {_BYTES: len(blobs) - 1}
    if t is list or t is tuple:
        return [_rewrite(item, blobs) for item in value]
    if t is dict:
        out = {key: _rewrite(item, blobs) for key, item in value.items()}
        if not _MARKERS.isdisjoint(value):
            return {_ESCAPE: out}
        return out
    blobs.append(_as_bytes(value))  # bytes-like: _check let nothing else through
    return {_BYTES: len(blobs) - 1}


def _checked(value: Any, what: str) -> bool:
    try:
        return _check(value, 0)
    except _Refusal as refusal:
        raise refusal.error(what) from None
    except RecursionError:  # the caller was already deep in its stack
        raise SerializationError(
            f"cannot encode {what}: it is nested too deeply", path=what, type_name="list"
        ) from None


def validate(value: Any, *, what: str = "value") -> None:
    """Check that :func:`encode` can carry ``value`` (JSON encoding), without encoding it.

    Raises:
        SerializationError: naming where in the value the problem sits and its type.
    """
    _checked(value, what)


def encode(value: Any, *, what: str = "value", encoding: Encoding = Encoding.JSON) -> Encoded:
    """Encode ``value`` as ``(document, blobs)``.

    Args:
        value: the value to send.
        what: how to name the value in errors (``"args"``, ``"result of tool 'x'"``).
        encoding: ``Encoding.JSON`` (default) or ``Encoding.PICKLE`` (opt-in).

    Raises:
        SerializationError: the value (or a part of it, named by its path) cannot be encoded.
    """
    if encoding is Encoding.PICKLE:
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), []
        except Exception as exc:
            raise SerializationError(
                f"cannot pickle {what}: {_cut(str(exc))}",
                path=what,
                type_name=type(value).__name__,
            ) from exc
    blobs: list[bytes] = []
    try:
        if _checked(value, what):
            value = _rewrite(value, blobs)
        document = _ENCODER.encode(value).encode()
    except (ValueError, RecursionError) as exc:
        # An int beyond the interpreter's digit limit, a lone surrogate in a str...
        raise SerializationError(
            f"cannot encode {what}: {_cut(str(exc))}",
            path=what,
            type_name=type(value).__name__,
        ) from exc
    return document, blobs


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _malformed(what: str, problem: str) -> SerializationError:
    return SerializationError(
        f"malformed payload for {what}: {problem}", path=what, type_name="bytes"
    )


def _restore(value: Any, blobs: list[bytes], depth: int) -> Any:
    t = type(value)
    if t is list:
        if depth >= MAX_DEPTH:
            raise _Refusal(value, "depth")
        return [_restore(item, blobs, depth + 1) for item in value]
    if t is dict:
        if len(value) == 1:
            if _BYTES in value:
                index = value[_BYTES]
                if type(index) is not int or not 0 <= index < len(blobs):
                    raise _Refusal(index, "blob")
                return blobs[index]
            if _FLOAT in value:
                number = _NON_FINITE.get(value[_FLOAT]) if type(value[_FLOAT]) is str else None
                if number is None:
                    raise _Refusal(value[_FLOAT], "float")
                return number
            if _ESCAPE in value:
                value = value[_ESCAPE]
                if type(value) is not dict:
                    raise _Refusal(value, "escape")
        if depth >= MAX_DEPTH:
            raise _Refusal(value, "depth")
        return {key: _restore(item, blobs, depth + 1) for key, item in value.items()}
    return value


def decode(
    document: bytes,
    blobs: list[bytes] | None = None,
    *,
    encoding: Encoding = Encoding.JSON,
    allow_pickle: bool = False,
    what: str = "value",
) -> Any:
    """Decode what :func:`encode` produced.

    Raises:
        SerializationError: the payload is malformed, or pickled while pickle is not allowed.
    """
    if encoding is Encoding.PICKLE:
        if not allow_pickle:
            raise SerializationError(
                f"refusing to unpickle {what}: pickle was not enabled for this pool "
                "(pass serialization='pickle' to the Pool to allow it)",
                path=what,
                type_name="pickle",
            )
        try:
            return pickle.loads(document)
        except Exception as exc:
            raise SerializationError(
                f"cannot unpickle {what}: {type(exc).__name__}: {_cut(str(exc))} (is the "
                "class importable "
                "on both sides?)",
                path=what,
                type_name="pickle",
            ) from exc
    if not document:
        return None
    try:
        value = _DECODER.decode(document.decode())
    except ValueError as exc:  # not UTF-8, not JSON, or a bare NaN/Infinity token
        raise _malformed(what, _cut(str(exc))) from exc
    except RecursionError:
        raise _malformed(what, f"it nests containers more than {MAX_DEPTH} deep") from None
    # Markers contain NUL, which JSON always escapes: no "\u0000" means nothing to restore.
    if b"\\u0000" in document:
        try:
            return _restore(value, list(blobs or ()), 0)
        except _Refusal as refusal:
            problem = {
                "blob": f"bad blob reference {brief(refusal.value)} ({len(blobs or ())} blobs)",
                "float": f"bad non-finite float marker {brief(refusal.value)}",
                "escape": "an escaped dict marker holds no dict",
                "depth": f"it nests containers more than {MAX_DEPTH} deep",
            }[refusal.problem]
            raise _malformed(what, problem) from None
        except RecursionError:
            raise _malformed(what, f"it nests containers more than {MAX_DEPTH} deep") from None
    return value
