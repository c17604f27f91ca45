"""The host side's pool: ``Pool``, ``SyncPool``, ``Session`` and the pure scheduler beneath them."""

from __future__ import annotations

from snakepit.pool._pool import Pool
from snakepit.pool._session import Session
from snakepit.pool._sync import SyncPool
from snakepit.pool._types import PoolStats, WorkerInfo

__all__ = ["Pool", "PoolStats", "Session", "SyncPool", "WorkerInfo"]
