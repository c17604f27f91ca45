"""Names and numbers both sides of the wire agree on."""

from __future__ import annotations

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
]

PROTOCOL_VERSION = "1"
# gRPC workers print exactly one line starting with this on stdout once they serve.
READY_PREFIX = "SNAKEPIT_READY "
# The gRPC metadata key that carries the per-pool token (TCP only).
TOKEN_HEADER = "snakepit-token"
# Where a gRPC worker learns the host bridge's address (and token, over TCP).
ENV_ADDRESS = "SNAKEPIT_HOST_ADDRESS"
ENV_TOKEN = "SNAKEPIT_HOST_TOKEN"
DEFAULT_MAX_MESSAGE = 256 * 1024 * 1024
# The most chunks, and encoded bytes, one StreamItem carries (never more than the message
# limit either: a batch is closed before a chunk would push it over).
STREAM_BATCH_CHUNKS = 256
STREAM_BATCH_BYTES = 1 << 20
# StreamItem frames a local worker may have sent and the host not yet consumed.
STREAM_CREDITS = 4
# A bytes value at least this long travels in shared memory on the local transport.
# Measured here (echo round trips, MB/s, socket vs memfd): 64 KiB 273-308 vs 160,
# 128 KiB 106-125 vs 268-282, 1 MiB 85-113 vs 488-584: the crossover lies between.
SHM_THRESHOLD = 128 * 1024
