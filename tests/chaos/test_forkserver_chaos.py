"""The fork server under fire: its template killed mid-call, its host SIGKILLed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import psutil
import pytest

import snakepit
from snakepit.events import WorkerReady
from snakepit.testing import assert_no_worker_left, isolated_pool, pool_mailbox
from supertester.processes import _wait_exited

if TYPE_CHECKING:
    from pathlib import Path

BOUND = 20.0


def template_of(pid: int) -> int:
    return psutil.Process(pid).ppid()


class TestTemplateDeath:
    async def test_a_killed_template_fails_no_call_and_is_replaced_on_the_next_start(
        self,
    ) -> None:
        """SIGKILL of the template while a call runs: the call completes, the workers keep
        serving, a crash after it is reported (exit code unknown: init reaped it) and its
        replacement is forked from a new template."""
        async with isolated_pool(size=2, max_restarts=10) as pool:
            box = pool_mailbox(pool)
            entered, gate = asyncio.Event(), asyncio.Event()

            async def hold() -> str:
                entered.set()
                await gate.wait()
                return "released"

            pool.register_host_tool("hold", hold)
            in_flight = asyncio.create_task(pool.execute("acall_host", {"name": "hold"}))
            await asyncio.wait_for(entered.wait(), BOUND)
            old_workers = {w.pid for w in pool.workers()}
            (old_template,) = {template_of(pid) for pid in old_workers if pid}
            os.kill(old_template, signal.SIGKILL)
            assert await _wait_exited([old_template], BOUND) == set()

            assert await pool.execute("add", {"a": 1, "b": 2}) == 3
            gate.set()
            assert await asyncio.wait_for(in_flight, BOUND) == "released"

            with pytest.raises(snakepit.WorkerCrashedError, match="exit code unknown") as info:
                await pool.execute("crash", {"code": 5})
            assert info.value.exit_code is None
            ready = await box.assert_receive(WorkerReady, BOUND)
            new_template = template_of(ready.pid)
            assert new_template != old_template
            assert psutil.Process(new_template).ppid() == os.getpid()
            assert await pool.execute("pid") in {w.pid for w in pool.workers()}
            assert pool.stats().live_workers == 2


HOST = textwrap.dedent(
    """
    import asyncio, json, os, signal, sys
    import psutil
    import snakepit
    from snakepit.events import WorkerReady

    async def main():
        async with snakepit.Pool(adapter="snakepit.examples.showcase:Showcase", size=2,
                                 registry_dir=sys.argv[1], heartbeat_interval=None) as pool:
            workers = [w.pid for w in pool.workers()]
            templates = [psutil.Process(workers[0]).ppid()]
            if sys.argv[2] == "orphans":
                # The first template dies; a crash then forks a replacement from a second one,
                # so the host dies with workers of a dead template (reparented away from it).
                ready = pool.events.subscribe(WorkerReady)
                os.kill(templates[0], signal.SIGKILL)
                try:
                    await pool.execute("crash", {"code": 1})
                except snakepit.WorkerCrashedError:
                    pass
                new = await asyncio.wait_for(ready.get(), 20)
                workers.append(new.pid)
                templates.append(psutil.Process(new.pid).ppid())
            print(json.dumps({"workers": workers, "templates": templates}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())
    """
)


class TestHostDeath:
    @pytest.mark.parametrize("case", ["plain", "orphans"])
    def test_a_sigkilled_host_leaves_no_template_and_no_worker(
        self, tmp_path: Path, case: str
    ) -> None:
        """Host SIGKILL: the template (parent-death signal) and every worker are gone, including
        workers of an earlier template that had died (their stdin reaches EOF)."""
        host = subprocess.Popen(
            [sys.executable, "-c", HOST, str(tmp_path), case],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert host.stdout is not None
            seen = json.loads(host.stdout.readline())
            pids = set(seen["workers"]) | set(seen["templates"])
            assert len(seen["templates"]) == (2 if case == "orphans" else 1)
            host.kill()
            host.wait(BOUND)
            assert_no_worker_left(pids, timeout=BOUND)
        finally:
            host.kill()
            host.wait(BOUND)
            if host.stdin:
                host.stdin.close()
            if host.stdout:
                host.stdout.close()


# A host that is its own child subreaper: a worker whose template died is re-parented to
# it and, never waited for, stays a zombie after it dies, as it does for a moment under any
# init. The host then crashes that worker and reports whether its helpers outlive it.
ORPHAN_HOST = textwrap.dedent(
    """
    import asyncio, ctypes, json, os, signal, sys
    import psutil
    import snakepit
    from snakepit.events import WorkerExited

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER

    async def main():
        async with snakepit.Pool(adapter="snakepit.testing.adapters:Helpers", size=1,
                                 registry_dir=sys.argv[1], heartbeat_interval=None,
                                 max_restarts=10) as pool:
            exited = pool.events.subscribe(WorkerExited)
            helpers = [psutil.Process(p) for p in await pool.execute("spawn_helpers")]
            (worker,) = pool.workers()
            # Held before the kill: the pool's child watcher may reap the template at once.
            template = psutil.Process(psutil.Process(worker.pid).ppid())
            template.kill()
            template.wait(20)
            try:
                await pool.execute("die")
            except snakepit.WorkerCrashedError:
                pass
            await asyncio.wait_for(exited.get(), 20)
            gone, alive = psutil.wait_procs(helpers, timeout=10)  # reaped ones count as gone
            for proc in alive:
                proc.kill()
            print(json.dumps({"alive": [p.pid for p in alive]}), flush=True)

    asyncio.run(main())
    """
)


class TestOrphanedWorkerHelpers:
    def test_helpers_of_a_worker_that_outlived_its_template_die_with_it(
        self, tmp_path: Path
    ) -> None:
        """A worker forked by a template that has since died is reaped by whoever adopted it,
        not by the host; when it crashes, its helpers are killed all the same, even while it
        is still a zombie (its pid, taken by it, does not mean the group is empty)."""
        out = subprocess.run(
            [sys.executable, "-c", ORPHAN_HOST, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads(out.stdout.splitlines()[-1]) == {"alive": []}, out.stderr[-2000:]
