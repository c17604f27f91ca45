"""The host's side of one worker: process handle, transport, and the process registry."""

from __future__ import annotations

from snakepit.worker._handle import WorkerHandle, WorkerOptions, WorkerState
from snakepit.worker._local import LocalTransport
from snakepit.worker._transport import (
    DescribedTool,
    DescribeResult,
    GrpcTransport,
    PingResult,
    Transport,
    TransportError,
)

__all__ = [
    "DescribeResult",
    "DescribedTool",
    "GrpcTransport",
    "LocalTransport",
    "PingResult",
    "Transport",
    "TransportError",
    "WorkerHandle",
    "WorkerOptions",
    "WorkerState",
]
