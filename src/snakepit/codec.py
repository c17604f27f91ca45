"""Values on the wire: JSON-compatible values plus bytes, round-tripped exactly.

A value is ``None``, ``bool``, ``int``, ``float``, ``str``, bytes-like, a
``list`` (or ``tuple``, which arrives as a list) of values, or a ``dict`` with
``str`` keys and value values, nested at most :data:`MAX_DEPTH` containers
deep. It is sent as one standard JSON document (RFC 8259) plus a list of raw
byte blobs. Two tagged markers carry what JSON cannot:

* each bytes-like value becomes ``{"\\u0000b": index}`` in the document and
  travels unencoded beside it (no base64, no copy into the JSON text);
  ``bytes``, ``bytearray``, ``memoryview`` and any other buffer of single bytes
  (format ``B``, ``b`` or ``c``: ``mmap``, ``array('B')``) count, and all
  arrive as ``bytes``;
* a NaN or infinite float becomes ``{"\\u0000f": "nan" | "inf" | "-inf"}``, since
  JSON has no token for them; the bare ``NaN``/``Infinity`` tokens some
  encoders write are refused when decoding;
* a numpy array or numpy scalar becomes
  ``{"\\u0000n": {"dtype": "<f8", "shape": [2, 3], "blob": index}}`` with its raw
  C-order buffer as a blob (``"shape": null`` for a scalar), and arrives as a
  writable array (or scalar) of the same dtype and shape. numpy is imported only
  when such a value or marker is met, so pools that never send one never load
  it. Object and structured dtypes are refused: they hold Python objects or
  field layouts that a raw buffer cannot carry.

A user dict that happens to use a marker key is escaped as
``{"\\u0000d": dict}``, so every value above comes back exactly as it went.

Anything else (a set, a numpy object array, an object, a dict with an int key, a
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
_NUMPY = "\x00n"  # marker key for a numpy array or scalar: {"\x00n": {dtype, shape, blob}}
_MARKERS = frozenset({_BYTES, _FLOAT, _ESCAPE, _NUMPY})
_NUMPY_KINDS = frozenset("?biufcmMSU")  # dtype kinds whose raw buffer is the whole value
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
        elif self.problem == "dtype":
            message = (
                f"cannot {verb} {shown}: a numpy {t.__name__} of dtype {self.value.dtype} "
                "cannot travel as raw data (object and structured dtypes hold Python objects "
                "or field layouts); convert it first, e.g. value.tolist(), or use a plain "
                "numeric dtype"
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
                f"dict with str keys, numpy arrays and scalars){_hint(self.value)}"
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
    if t.__module__ == "numpy" and _is_numpy(value):
        if value.dtype.kind not in _NUMPY_KINDS:
            raise _Refusal(value, "dtype")
        return True
    if _bytes_like(value):
        return True
    raise _Refusal(value, "type")


def _is_numpy(value: Any) -> bool:
    """True for a numpy array or scalar; numpy is loaded already since the value exists."""
    import numpy  # only reached for a value of a numpy type

    return isinstance(value, numpy.ndarray | numpy.generic)


def _numpy_marker(value: Any, blobs: list[bytes]) -> dict[str, Any]:
    import numpy  # only reached for a value of a numpy type

    if isinstance(value, numpy.ndarray):
        blobs.append(numpy.ascontiguousarray(value).tobytes())
        shape: list[int] | None = list(value.shape)
    else:
        blobs.append(value.tobytes())
        shape = None
    return {_NUMPY: {"dtype": value.dtype.str, "shape": shape, "blob": len(blobs) - 1}}


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
    if t.__module__ == "numpy" and _is_numpy(value):
        return _numpy_marker(value, blobs)
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
            if _NUMPY in value:
                return _numpy_value(value[_NUMPY], blobs)
            if _ESCAPE in value:
                value = value[_ESCAPE]
                if type(value) is not dict:
                    raise _Refusal(value, "escape")
        if depth >= MAX_DEPTH:
            raise _Refusal(value, "depth")
        return {key: _restore(item, blobs, depth + 1) for key, item in value.items()}
    return value


def _numpy_value(spec: Any, blobs: list[bytes]) -> Any:
    """Rebuild the numpy array or scalar a ``{"\\u0000n": spec}`` marker describes.

    Raises:
        _Refusal: the marker is malformed, or numpy is not installed on this side.
    """
    if type(spec) is not dict or set(spec) != {"dtype", "shape", "blob"}:
        raise _Refusal(spec, "numpy")
    dtype, shape, index = spec["dtype"], spec["shape"], spec["blob"]
    if type(index) is not int or not 0 <= index < len(blobs):
        raise _Refusal(index, "blob")
    if type(dtype) is not str or not (
        shape is None or (type(shape) is list and all(type(n) is int and n >= 0 for n in shape))
    ):
        raise _Refusal(spec, "numpy")
    try:
        import numpy  # loaded only when a numpy value arrives
    except ImportError:
        raise _Refusal(dtype, "no-numpy") from None
    try:
        kind = numpy.dtype(dtype)
        if kind.kind not in _NUMPY_KINDS:
            raise ValueError(f"dtype {dtype} is not carried as raw data")
        data = numpy.frombuffer(bytearray(blobs[index]), dtype=kind)
        if shape is None:
            if data.size != 1:
                raise ValueError(f"a scalar of dtype {dtype} needs {kind.itemsize} bytes")
            return data[0]
        return data.reshape(shape)
    except (TypeError, ValueError) as exc:
        raise _Refusal(f"{dtype} {shape}: {exc}", "numpy") from None


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
            if refusal.problem == "no-numpy":
                raise SerializationError(
                    f"cannot decode {what}: it holds a numpy value (dtype "
                    f"{brief(refusal.value)}) but numpy is not installed in this process; "
                    "install it here too (pip install 'pysnakepit[numpy]')",
                    path=what,
                    type_name="ndarray",
                ) from None
            problem = {
                "blob": f"bad blob reference {brief(refusal.value)} ({len(blobs or ())} blobs)",
                "float": f"bad non-finite float marker {brief(refusal.value)}",
                "escape": "an escaped dict marker holds no dict",
                "numpy": f"bad numpy marker {brief(refusal.value)}",
                "depth": f"it nests containers more than {MAX_DEPTH} deep",
            }[refusal.problem]
            raise _malformed(what, problem) from None
        except RecursionError:
            raise _malformed(what, f"it nests containers more than {MAX_DEPTH} deep") from None
    return value
