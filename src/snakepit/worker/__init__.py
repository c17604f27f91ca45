"""The host's side of one worker: process handle, transport, and the process registry."""

from __future__ import annotations

from snakepit.worker.handle import WorkerHandle, WorkerOptions, WorkerState
from snakepit.worker.local import LocalTransport
from snakepit.worker.transport import (
    DescribeResult,
    GrpcTransport,
    PingResult,
    ToolSpec,
    Transport,
    TransportError,
)

__all__ = [
    "DescribeResult",
    "GrpcTransport",
    "LocalTransport",
    "PingResult",
    "ToolSpec",
    "Transport",
    "TransportError",
    "WorkerHandle",
    "WorkerOptions",
    "WorkerState",
]
