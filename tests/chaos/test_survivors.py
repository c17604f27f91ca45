"""No survivors: a worker's helper processes die with it on every path, and what a dead
host left behind (helpers, runtime directories) is removed by the next pool."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

import snakepit
from snakepit.events import WorkerExited, WorkerReady, WorkerRecycled
from snakepit.testing import isolated_pool, pool_mailbox
from supertester import wait_for_exit

if TYPE_CHECKING:
    from collections.abc import Iterator

HELPERS = "snakepit.testing.adapters:Helpers"
BOUND = 20.0
STARTUP_BOUND = 45.0


@pytest.fixture
def spawned() -> Iterator[list[int]]:
    """Helper pids a test saw; any still running at teardown are killed (a failing test
    must not leave them behind)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if proc.name() in ("sh", "sleep"):
                proc.kill()


class TestHelpersDieWithTheirWorker:
    @pytest.mark.parametrize("hold_pipes", [False, True], ids=["quiet", "holding-stderr"])
    async def test_after_a_crash_and_an_external_kill(
        self, hold_pipes: bool, spawned: list[int]
    ) -> None:
        """A worker that exits by itself, then one SIGKILLed from outside (as the OOM killer
        does), take their helpers with them; the pool replaces both. Helpers that hold the
        worker's stderr open do not hide its exit."""
        async with isolated_pool(HELPERS, max_restarts=10) as pool:
            box = pool_mailbox(pool)
            helpers = await pool.execute("spawn_helpers", {"hold_pipes": hold_pipes})
            spawned += helpers
            with pytest.raises(snakepit.WorkerCrashedError):
                await pool.execute("die", timeout=BOUND)
            await wait_for_exit(helpers, BOUND, what="helpers of the crashed worker")
            await box.assert_receive(WorkerReady, BOUND)

            helpers = await pool.execute("spawn_helpers", {"hold_pipes": hold_pipes})
            spawned += helpers
            os.kill(await pool.execute("pid"), signal.SIGKILL)
            await box.assert_receive(WorkerExited, BOUND)
            await wait_for_exit(helpers, BOUND, what="helpers of the killed worker")
            await box.assert_receive(WorkerReady, BOUND)
            assert await pool.execute("ping") == {"status": "pong"}

    async def test_after_a_deadline_kill_and_on_close(self, spawned: list[int]) -> None:
        """A worker killed for a caller's deadline, and one stopped by close(), leave no helper."""
        async with isolated_pool(HELPERS) as pool:
            box = pool_mailbox(pool)
            helpers = await pool.execute("spawn_helpers", {"hold_pipes": True})
            spawned += helpers
            with pytest.raises(snakepit.ExecutionTimeoutError):
                await pool.execute("hang", timeout=0.2)
            await wait_for_exit(helpers, BOUND, what="helpers of the timed-out worker")
            await box.assert_receive(WorkerReady, BOUND)
            helpers = await pool.execute("spawn_helpers")
            spawned += helpers
        await wait_for_exit(helpers, BOUND, what="helpers of a worker stopped by close()")

    async def test_after_recycling(self, spawned: list[int]) -> None:
        """A worker recycled for max_requests is stopped with its helpers."""
        async with isolated_pool(HELPERS, max_requests=2) as pool:
            box = pool_mailbox(pool)
            helpers = await pool.execute("spawn_helpers")
            spawned += helpers
            assert await pool.execute("ping") == {"status": "pong"}
            await box.assert_receive(WorkerRecycled, BOUND)
            await box.assert_receive(WorkerExited, BOUND)
            await wait_for_exit(helpers, BOUND, what="helpers of the recycled worker")


HOST = textwrap.dedent(
    """
    import asyncio, json, os, sys
    import snakepit

    async def main():
        async with snakepit.Pool(adapter=sys.argv[2], size=1, registry_dir=sys.argv[1],
                                 transport="grpc",
                                 heartbeat_interval=None) as pool:
            helpers = []
            for hold_pipes in (False, True):
                helpers += await pool.execute("spawn_helpers", {"hold_pipes": hold_pipes})
            (worker,) = pool.workers()
            print(json.dumps({"host": os.getpid(), "worker": worker.pid, "helpers": helpers,
                              "address": worker.address}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())
    """
)

# Stands in for init: runs the host, adopts what it orphans (a child subreaper), reaps
# everything and says so on stdout, so the test knows when the dead host's worker is
# gone for good (reaped, not a zombie whose pid still answers).
REAPER = textwrap.dedent(
    """
    import ctypes, os, subprocess, sys
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    subprocess.Popen(sys.argv[1:])
    while True:
        try:
            pid, _ = os.wait()
        except ChildProcessError:
            break
        print(f"reaped {pid}", flush=True)
    """
)


class TestDeadHostLeftovers:
    @pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
    async def test_next_pool_kills_helpers_and_removes_the_runtime_dir(
        self, tmp_path: Path, sig: signal.Signals, spawned: list[int]
    ) -> None:
        """A host killed with its pool running leaves helpers (its worker dies with it) and a
        runtime directory; the next pool on the same registry kills the helpers and removes
        the directory."""
        reaper = subprocess.Popen(
            [sys.executable, "-c", REAPER, sys.executable, "-c", HOST, str(tmp_path), HELPERS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert reaper.stdout is not None
        lines = reaper.stdout

        async def line(what: str, bound: float = BOUND) -> str:
            try:
                return await asyncio.wait_for(asyncio.to_thread(lines.readline), bound)
            except TimeoutError:
                raise AssertionError(f"no line within {bound}s: waiting for {what}") from None

        try:
            # Two interpreters that import grpc and a pool start: slow on a loaded machine.
            started = json.loads(await line("the host's pool to start", STARTUP_BOUND))
            spawned += started["helpers"]
            runtime_dir = Path(started["address"].removeprefix("unix:")).parent
            assert runtime_dir.is_dir()
            os.kill(started["host"], sig)
            gone = {f"reaped {started['host']}\n", f"reaped {started['worker']}\n"}
            while gone:
                gone.discard(await line(f"the reaper to reap {sorted(gone)}"))
            async with isolated_pool(registry_dir=str(tmp_path)) as pool:
                await wait_for_exit(started["helpers"], BOUND, what="the dead host's helpers")
                assert not runtime_dir.exists()
                assert await pool.execute("ping") == {"status": "pong"}
        finally:
            reaper.kill()
            reaper.wait(BOUND)
            for stream in (reaper.stdin, reaper.stdout):
                if stream is not None:
                    stream.close()
