"""Values on the wire: JSON-compatible values plus bytes, round-tripped exactly.

A value is ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, a
``list`` (or ``tuple``, which arrives as a list) of values, or a ``dict`` with
``str`` keys and value values. It is sent as one JSON document plus a list of
raw byte blobs: each ``bytes`` in the value becomes ``{"\\u0000b": index}``
in the document and travels unencoded beside it (no base64, no copy into the
JSON text). A user dict that happens to use the marker key is escaped, so
every value above comes back exactly as it went.

Anything else (a set, a numpy array, an object, a dict with an int key) is a
:class:`SerializationError` that names where in the value it sits and its
type; it is never silently turned into a string.

Python-to-Python pools may opt into pickle (``Encoding.PICKLE``); it is never
the default and a worker only unpickles when started with pickle allowed.
"""

from __future__ import annotations

import datetime
import enum
import json
import pickle
from typing import Any

from snakepit.errors import SerializationError

__all__ = ["Encoded", "Encoding", "decode", "encode", "validate"]

_BYTES = "\x00b"  # marker key for a bytes value: {"\x00b": index into blobs}
_ESCAPE = "\x00d"  # marker key for a user dict that itself uses a marker key

Encoded = tuple[bytes, list[bytes]]


class Encoding(enum.IntEnum):
    """How a payload is encoded; the numbers are the wire values."""

    JSON = 0
    PICKLE = 1


def _check(value: Any, path: str) -> bool:
    """Validate ``value``; return True when it holds bytes or marker keys (needs rewriting)."""
    t = type(value)
    if t is str or t is int or t is float or t is bool or value is None:
        return False
    if t is bytes:
        return True
    if t is list or t is tuple:
        special = False
        for i, item in enumerate(value):
            if _check(item, f"{path}[{i}]"):
                special = True
        return special
    if t is dict:
        special = False
        for key, item in value.items():
            if type(key) is not str:
                raise SerializationError(
                    f"cannot encode {path}: dict keys must be str, found key {key!r} of type "
                    f"{type(key).__name__}; convert the keys to strings first",
                    path=path,
                    type_name=type(key).__name__,
                )
            if key in (_BYTES, _ESCAPE):
                special = True
            if _check(item, f"{path}[{key!r}]"):
                special = True
        return special
    if isinstance(value, bytearray | memoryview):
        raise SerializationError(
            f"cannot encode {path}: {t.__name__} is not supported; pass bytes({path}) instead",
            path=path,
            type_name=t.__name__,
        )
    # Hints are Python the user can write: ``path`` names a place, it is not an expression.
    hint = ""
    if hasattr(value, "tolist"):
        hint = "; convert it first, e.g. value.tolist() (or value.tobytes() for raw data)"
    elif isinstance(value, set | frozenset):
        hint = "; pass a list instead, e.g. sorted(value)"
    elif isinstance(value, datetime.datetime | datetime.date | datetime.time):
        hint = (
            "; send text, e.g. value.isoformat(), and read it back with "
            f"{t.__name__}.fromisoformat(text)"
        )
    elif isinstance(value, datetime.timedelta):
        hint = "; send a number, e.g. value.total_seconds()"
    elif isinstance(value, int | float | str | bytes | dict | list):
        hint = f"; pass a plain {t.__mro__[1].__name__} instead of the subclass {t.__name__}"
    raise SerializationError(
        f"cannot encode {path}: values of type {t.__module__}.{t.__qualname__} are not supported "
        f"(allowed: None, bool, int, float, str, bytes, list, tuple, dict with str keys){hint}",
        path=path,
        type_name=t.__name__,
    )


def _rewrite(value: Any, blobs: list[bytes]) -> Any:
    t = type(value)
    if t is bytes:
        blobs.append(value)
        return {_BYTES: len(blobs) - 1}
    if t is list or t is tuple:
        return [_rewrite(item, blobs) for item in value]
    if t is dict:
        out = {key: _rewrite(item, blobs) for key, item in value.items()}
        if _BYTES in value or _ESCAPE in value:
            return {_ESCAPE: out}
        return out
    return value


def validate(value: Any, *, what: str = "value") -> None:
    """Check that :func:`encode` can carry ``value`` (JSON encoding), without encoding it.

    Raises:
        SerializationError: naming where in the value the problem sits and its type.
    """
    try:
        _check(value, what)
    except RecursionError:
        raise SerializationError(
            f"cannot encode {what}: it is nested too deeply or contains itself",
            path=what,
            type_name=type(value).__name__,
        ) from None


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
                f"cannot pickle {what}: {exc}", path=what, type_name=type(value).__name__
            ) from exc
    blobs: list[bytes] = []
    try:
        if _check(value, what):
            value = _rewrite(value, blobs)
    except RecursionError:
        raise SerializationError(
            f"cannot encode {what}: it is nested too deeply or contains itself",
            path=what,
            type_name=type(value).__name__,
        ) from None
    try:
        document = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    except (ValueError, RecursionError) as exc:
        raise SerializationError(
            f"cannot encode {what}: {exc}", path=what, type_name=type(value).__name__
        ) from exc
    return document, blobs


def _restore(value: Any, blobs: list[bytes]) -> Any:
    t = type(value)
    if t is list:
        return [_restore(item, blobs) for item in value]
    if t is dict:
        if len(value) == 1:
            if _BYTES in value:
                return blobs[value[_BYTES]]
            if _ESCAPE in value:
                return {key: _restore(item, blobs) for key, item in value[_ESCAPE].items()}
        return {key: _restore(item, blobs) for key, item in value.items()}
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
                f"cannot unpickle {what}: {type(exc).__name__}: {exc} (is the class importable "
                "on both sides?)",
                path=what,
                type_name="pickle",
            ) from exc
    if not document:
        return None
    try:
        value = json.loads(document)
    except ValueError as exc:
        raise SerializationError(
            f"malformed payload for {what}: {exc}", path=what, type_name="bytes"
        ) from exc
    # Markers contain NUL, which JSON always escapes: no "\u0000" means nothing to restore.
    if b"\\u0000" in document:
        try:
            return _restore(value, list(blobs or []))
        except (IndexError, TypeError, AttributeError) as exc:
            raise SerializationError(
                f"malformed payload for {what}: bad blob reference ({exc})",
                path=what,
                type_name="bytes",
            ) from exc
    return value
