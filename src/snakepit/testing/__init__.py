"""Test helpers for snakepit and for users testing their own adapters (see docs/testing.md).

Built on :mod:`supertester`. The pytest fixtures (``snakepit_pool``,
``snakepit_mock_pool``, ``snakepit_worker``) come from the plugin that
installing snakepit registers.

The names below load lazily: worker processes import
``snakepit.testing.adapters``, and must not pay for (or import) the host side.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snakepit.testing._assertions import assert_grpc_server_ready, assert_streaming_response
    from snakepit.testing._chaos import PoolSupervisor, supervised
    from snakepit.testing._mock import MockWorker, in_process_workers
    from snakepit.testing._pools import (
        assert_no_worker_left,
        cleanup_sessions,
        isolated_pool,
        isolated_sync_pool,
        pool_mailbox,
    )
    from snakepit.testing._servers import SHOWCASE, with_python_server

_WHERE = {
    "assert_grpc_server_ready": "snakepit.testing._assertions",
    "assert_streaming_response": "snakepit.testing._assertions",
    "PoolSupervisor": "snakepit.testing._chaos",
    "supervised": "snakepit.testing._chaos",
    "MockWorker": "snakepit.testing._mock",
    "in_process_workers": "snakepit.testing._mock",
    "assert_no_worker_left": "snakepit.testing._pools",
    "cleanup_sessions": "snakepit.testing._pools",
    "isolated_pool": "snakepit.testing._pools",
    "isolated_sync_pool": "snakepit.testing._pools",
    "pool_mailbox": "snakepit.testing._pools",
    "SHOWCASE": "snakepit.testing._servers",
    "with_python_server": "snakepit.testing._servers",
}

__all__ = [
    "SHOWCASE",
    "MockWorker",
    "PoolSupervisor",
    "assert_grpc_server_ready",
    "assert_no_worker_left",
    "assert_streaming_response",
    "cleanup_sessions",
    "in_process_workers",
    "isolated_pool",
    "isolated_sync_pool",
    "pool_mailbox",
    "supervised",
    "with_python_server",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'snakepit.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
