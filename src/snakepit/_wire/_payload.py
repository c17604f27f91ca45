"""Values as ``Payload`` messages: the codec (``snakepit.codec``) plus the message around it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit.codec import Encoding, decode, encode

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["from_payload", "to_payload"]


def to_payload(value: Any, what: str, encoding: Encoding = Encoding.JSON) -> pb.Payload:
    """Encode ``value`` as a ``Payload``.

    Raises:
        SerializationError: the value cannot be carried (named by ``what`` and its path).
    """
    document, blobs = encode(value, what=what, encoding=encoding)
    return pb.Payload(document=document, blobs=blobs, encoding=encoding.value)  # type: ignore[arg-type]


def from_payload(
    payload: pb.Payload,
    what: str,
    *,
    allow_pickle: bool = False,
    blobs: Sequence[bytes] | None = None,
) -> Any:
    """Decode a ``Payload`` (an empty one is None).

    ``blobs`` replaces the message's own blobs (the local transport fills in the ones that
    travelled in shared memory).

    Raises:
        SerializationError: malformed, or pickled while pickle is not allowed.
    """
    return decode(
        payload.document,
        list(payload.blobs if blobs is None else blobs),
        encoding=Encoding(payload.encoding),
        allow_pickle=allow_pickle,
        what=what,
    )
