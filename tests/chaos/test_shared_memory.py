"""Shared memory on the local transport: a worker SIGKILLed mid-call, mid-stream and
mid-transfer leaves no segment behind, and the pool is back at full size."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import TYPE_CHECKING, Any

import pytest

import snakepit
from snakepit.events import RequestDispatched, WorkerReady
from snakepit.testing import isolated_pool, pool_mailbox

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

PROBE = "snakepit.testing.adapters:Probe"
BOUND = 20.0
BIG = 2 * 1024 * 1024  # far above the shared-memory threshold


def _memfds() -> list[str]:
    """The memfd segments this process holds open."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("/memfd:"):
                out.append(target)
    return out


async def _drain(stream: AsyncIterator[object]) -> None:
    async for _ in stream:
        pass


class TestSharedMemoryCrash:
    async def test_sigkill_mid_call_mid_stream_and_mid_transfer(self) -> None:
        """Three workers die by SIGKILL: one holding an 8 MiB argument, one streaming 8 MiB
        chunks, one receiving an 8 MiB argument. Each call ends in WorkerCrashedError,
        no segment is left (in /dev/shm or as an open memfd) and the pool refills."""
        shm_before = set(os.listdir("/dev/shm"))
        blob = os.urandom(BIG)
        async with isolated_pool(
            PROBE, size=2, max_concurrency=2, max_restarts=20, backoff_initial=0.01
        ) as pool:
            ready = pool_mailbox(pool)

            async def kill_at_dispatch(box: Any, call: asyncio.Future[object], tool: str) -> None:
                event = await box.receive(
                    lambda e: isinstance(e, RequestDispatched) and e.tool == tool,
                    timeout=BOUND,
                )
                pid = next(w.pid for w in pool.workers() if w.id == event.worker_id)
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                with pytest.raises(snakepit.WorkerCrashedError):
                    await asyncio.wait_for(call, BOUND)

            # Mid-call: the worker holds the argument it received in shared memory.
            box = pool_mailbox(pool)
            held = asyncio.ensure_future(pool.execute("hold", {"value": blob}))
            assert await pool.execute("echo", {"value": blob}) == blob  # the other worker
            await kill_at_dispatch(box, held, "hold")

            # Mid-stream: chunks in shared memory are in flight towards the host.
            stream = pool.stream("endless", {"size": BIG})
            assert len(await anext(stream)) == BIG
            pid = next(w.pid for w in pool.workers() if w.in_flight)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(snakepit.WorkerCrashedError):
                await asyncio.wait_for(_drain(stream), BOUND)

            # Mid-transfer: killed as the argument's segment is handed over.
            box = pool_mailbox(pool)
            sent = asyncio.ensure_future(pool.execute("echo", {"value": blob}))
            await kill_at_dispatch(box, sent, "echo")

            async with asyncio.timeout(BOUND):
                while len([w for w in pool.workers() if w.state == "ready"]) < 2:
                    await ready.receive(lambda e: isinstance(e, WorkerReady), timeout=BOUND)
            assert await pool.execute("echo", {"value": blob}) == blob
        assert _memfds() == []
        assert set(os.listdir("/dev/shm")) <= shm_before
