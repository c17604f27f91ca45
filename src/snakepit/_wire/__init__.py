"""The wire contract in one place: what the host and the worker share.

Both sides import this package, never each other: the codec (re-exported
from :mod:`snakepit.codec`), ``Payload`` and ``ErrorInfo`` conversion in both
directions, the local transport's framing, and the constants (ready line,
token header, message limits). It imports protobuf messages only, never gRPC.
"""

from __future__ import annotations

from snakepit._wire._constants import (
    DEFAULT_MAX_MESSAGE,
    ENV_ADDRESS,
    ENV_TOKEN,
    PROTOCOL_VERSION,
    READY_PREFIX,
    SHM_THRESHOLD,
    STREAM_BATCH_BYTES,
    STREAM_BATCH_CHUNKS,
    STREAM_CREDITS,
    TOKEN_HEADER,
)
from snakepit._wire._errors import error_info, exception_from_info, host_error_info
from snakepit._wire._payload import from_payload, to_payload
from snakepit.codec import Encoding, decode, encode, validate

__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "ENV_ADDRESS",
    "ENV_TOKEN",
    "PROTOCOL_VERSION",
    "READY_PREFIX",
    "SHM_THRESHOLD",
    "STREAM_BATCH_BYTES",
    "STREAM_BATCH_CHUNKS",
    "STREAM_CREDITS",
    "TOKEN_HEADER",
    "Encoding",
    "decode",
    "encode",
    "error_info",
    "exception_from_info",
    "from_payload",
    "host_error_info",
    "to_payload",
    "validate",
]
