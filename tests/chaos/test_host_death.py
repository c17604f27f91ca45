"""No orphans: workers die with their host, and a new pool sweeps what a dead host left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import psutil

from snakepit.testing import assert_no_worker_left, isolated_pool

if TYPE_CHECKING:
    from pathlib import Path

BOUND = 20.0

HOST = textwrap.dedent(
    """
    import asyncio, json, sys
    import snakepit

    async def main():
        async with snakepit.Pool(adapter="snakepit.examples.showcase:Showcase", size=3,
                                 registry_dir=sys.argv[1], transport=sys.argv[2],
                                 heartbeat_interval=None) as pool:
            print(json.dumps([w.pid for w in pool.workers()]), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())
    """
)


class TestHostDeath:
    def test_sigkilled_host_leaves_no_worker_alive(
        self, tmp_path: Path, both_transports: str
    ) -> None:
        """A host that opens a pool of 3 and is SIGKILLed leaves no worker process behind."""
        host = subprocess.Popen(
            [sys.executable, "-c", HOST, str(tmp_path), both_transports],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert host.stdout is not None
            pids = json.loads(host.stdout.readline())
            assert len(pids) == 3 and all(psutil.pid_exists(p) for p in pids)
            host.kill()
            host.wait(BOUND)
            assert_no_worker_left(set(pids), timeout=BOUND)
        finally:
            host.kill()
            host.wait(BOUND)
            if host.stdin:
                host.stdin.close()
            if host.stdout:
                host.stdout.close()


class TestRegistry:
    async def test_new_pool_kills_workers_of_a_dead_host(self, tmp_path: Path) -> None:
        """A registry entry of a dead host makes the next pool kill that host's surviving worker."""
        # A stand-in for a worker that ignores its host's death: its own session, stdin from /dev/null.
        leftover = subprocess.Popen(
            [sys.executable, "-c", "import threading; threading.Event().wait()"],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            created = psutil.Process(leftover.pid).create_time()
            dead_host = subprocess.Popen([sys.executable, "-c", "pass"])
            dead_host.wait(BOUND)
            record = {
                "run_id": "dead-run",
                "host_pid": dead_host.pid,
                "host_create_time": 1.0,
                "workers": {"w1": {"pid": leftover.pid, "create_time": created}},
            }
            (tmp_path / "dead-run.json").write_text(json.dumps(record))
            async with isolated_pool(registry_dir=str(tmp_path)) as pool:
                assert leftover.wait(BOUND) == -9
                assert not (tmp_path / "dead-run.json").exists()
                assert (await pool.execute("ping")) == {"status": "pong"}
        finally:
            leftover.kill()
            leftover.wait(BOUND)

    async def test_a_reused_pid_is_never_killed(self, tmp_path: Path) -> None:
        """A registry entry whose start time does not match the live process leaves it alone."""
        bystander = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
        )
        try:
            record = {
                "run_id": "old-run",
                "host_pid": 999_999_999,
                "host_create_time": 1.0,
                "workers": {"w1": {"pid": bystander.pid, "create_time": 12345.0}},
            }
            (tmp_path / "old-run.json").write_text(json.dumps(record))
            async with isolated_pool(registry_dir=str(tmp_path)):
                assert bystander.poll() is None
        finally:
            assert bystander.stdin is not None
            bystander.stdin.close()
            assert bystander.wait(BOUND) == 0

    async def test_live_pool_is_recorded_and_cleared_on_close(self, tmp_path: Path) -> None:
        """A running pool's file names its workers; closing the pool removes the file."""
        async with isolated_pool(size=2, registry_dir=str(tmp_path)) as pool:
            (record_path,) = tmp_path.glob("*.json")
            record = json.loads(record_path.read_text())
            assert record["host_pid"] == os.getpid()
            recorded = {name: w["pid"] for name, w in record["workers"].items()}
            # The fork server's template is recorded beside the workers it forked.
            assert recorded.pop("forkserver-1") == psutil.Process(pool.workers()[0].pid).ppid()
            assert sorted(recorded.values()) == sorted(w.pid for w in pool.workers())
        assert not list(tmp_path.glob("*.json"))
