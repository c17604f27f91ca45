"""Errors a newcomer hits with real workers end fast, in a clear message."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import pytest

import snakepit
from snakepit.testing import isolated_pool

if TYPE_CHECKING:
    from pathlib import Path

TOOLS = "tests.support.adapters:RetryTools"
BOUND = 15.0  # an upper bound on waits, never a delay


async def test_sys_exit_in_a_tool_ends_the_call_with_its_code() -> None:
    """The call fails at once naming SystemExit(3) and the tool; the worker keeps serving."""
    async with isolated_pool(TOOLS) as pool:
        before = pool.workers()[0]
        async with asyncio.timeout(5.0):  # today's failure took ~1 s and said CANCELLED
            with pytest.raises(snakepit.ToolError) as info:
                await pool.execute("exit_with", {"code": 3})
        message = str(info.value)
        assert "SystemExit(3)" in message
        assert "'exit_with'" in message
        assert [c async for c in pool.stream("count", {"n": 2})] == [0, 1]
        assert pool.workers()[0].id == before.id


async def test_a_worker_print_is_logged_at_info_under_its_worker() -> None:
    """print() in a tool reaches the host's logging: INFO, logger snakepit.worker.<id>."""
    records: asyncio.Queue[logging.LogRecord] = asyncio.Queue()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.put_nowait(record)

    async with isolated_pool(TOOLS) as pool:
        worker = pool.workers()[0].id
        logger = logging.getLogger(f"snakepit.worker.{worker}")
        handler = Collect()
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)  # as logging.basicConfig(level="INFO") would
        try:
            await pool.execute("say", {"text": "hello from the tool"})
            async with asyncio.timeout(BOUND):
                record = await records.get()
                while "hello from the tool" not in record.getMessage():
                    record = await records.get()
        finally:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)
        assert record.levelno == logging.INFO
        assert record.getMessage() == "hello from the tool"


def test_a_closed_sync_pool_cannot_start_again(tmp_path: Path) -> None:
    pool = snakepit.SyncPool(
        adapter="snakepit.examples.showcase:Showcase",
        size=1,
        heartbeat_interval=None,
        registry_dir=str(tmp_path),
    )
    with pool:
        assert pool.execute("add", {"a": 1, "b": 1}) == 2
    with pytest.raises(snakepit.PoolClosedError, match="is closed; create a new SyncPool"):
        pool.start()
