"""Fork-server start: workers are forks of one template that imported the adapter's module once."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import textwrap
import uuid
from typing import TYPE_CHECKING, Any

import psutil
import pytest

import snakepit
from snakepit.events import WorkerReady
from snakepit.testing import isolated_pool, pool_mailbox
from snakepit.worker._forkserver import ForkServer, effective_start_method
from snakepit.worker._launch import PIPE

if TYPE_CHECKING:
    from pathlib import Path

PROBE = "snakepit.testing.adapters:ForkProbe"
BOUND = 20.0


async def probes(pool: snakepit.Pool, n: int, **args: Any) -> dict[int, dict[str, Any]]:
    """Probe until ``n`` distinct workers have answered (concurrent calls spread over them)."""
    seen: dict[int, dict[str, Any]] = {}
    for _ in range(50):
        for answer in await asyncio.gather(*(pool.execute("probe", args) for _ in range(n))):
            seen[answer["pid"]] = answer
        if len(seen) >= n:
            return seen
    raise AssertionError(f"only {len(seen)} of {n} workers answered")


def fds_of(pid: int) -> dict[str, set[str]]:
    """The pipe and socket inodes process ``pid`` holds open."""
    kinds: dict[str, set[str]] = {"pipe": set(), "socket": set()}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind, _, inode = target.partition(":")
        if kind in kinds:
            kinds[kind].add(inode)
    return kinds


class TestForkedWorkers:
    async def test_workers_are_forks_and_setup_runs_in_each(self) -> None:
        """Three workers are children of one template, which imported the module once; each ran
        its own setup(), is the leader of its own session, and drew its own random numbers."""
        async with isolated_pool(PROBE, size=3) as pool:
            seen = await probes(pool, 3)
            template = {p["ppid"] for p in seen.values()}
            assert len(template) == 1 and template != {os.getpid()}
            (template_pid,) = template
            assert psutil.Process(template_pid).ppid() == os.getpid()
            for pid, p in seen.items():
                assert p["imported_in"] == template_pid
                assert p["setup_in"] == pid
                assert p["sid"] == p["pgid"] == pid
            assert len({p["random"] for p in seen.values()}) == 3

    async def test_env_and_cwd_reach_forked_workers(self, tmp_path: Path) -> None:
        """The pool's env and cwd apply in each forked worker."""
        mark = uuid.uuid4().hex
        async with isolated_pool(
            PROBE, size=2, env={"SNAKEPIT_TEST_MARK": mark}, cwd=str(tmp_path)
        ) as pool:
            for p in (await probes(pool, 2, env="SNAKEPIT_TEST_MARK")).values():
                assert p["env"] == mark
                assert p["cwd"] == str(tmp_path)
                assert p["ppid"] != os.getpid()

    async def test_a_crashed_worker_is_replaced_by_a_fork(self) -> None:
        """A worker that exits with code 3 fails its call with that code; its replacement is
        forked from the same template, which is not started again."""
        async with isolated_pool(PROBE, size=1) as pool:
            box = pool_mailbox(pool)
            (first,) = (await probes(pool, 1)).values()
            with pytest.raises(snakepit.WorkerCrashedError, match="exit code 3") as info:
                await pool.execute("crash", {"code": 3})
            assert info.value.exit_code == 3
            ready = await box.assert_receive(WorkerReady, BOUND)
            (second,) = (await probes(pool, 1)).values()
            assert second["pid"] == ready.pid != first["pid"]
            assert second["ppid"] == first["ppid"] == second["imported_in"]
            assert second["setup_in"] == second["pid"]

    async def test_workers_hold_no_fd_of_the_template_or_of_each_other(self) -> None:
        """A forked worker holds neither the template's control socket nor another worker's
        pipes: each worker's EOFs are its own."""
        async with isolated_pool(PROBE, size=3) as pool:
            seen = await probes(pool, 3)
            (template_pid,) = {p["ppid"] for p in seen.values()}
            template = fds_of(template_pid)
            workers = [fds_of(pid) for pid in seen]
            for i, w in enumerate(workers):
                assert not (w["socket"] & template["socket"])
                assert not (w["pipe"] & template["pipe"])
                for other in workers[i + 1 :]:
                    assert not (w["pipe"] & other["pipe"])

    async def test_spawn_start_method_runs_fresh_interpreters(self) -> None:
        """start_method='spawn' starts each worker as a child of the host."""
        async with isolated_pool(PROBE, size=2, start_method="spawn") as pool:
            for pid, p in (await probes(pool, 2)).items():
                assert p["ppid"] == os.getpid()
                assert p["imported_in"] == pid

    def test_another_interpreter_is_always_spawned(self) -> None:
        """A fork can only be of this interpreter: another python= spawns."""
        assert effective_start_method("forkserver", sys.executable) == "forkserver"
        assert effective_start_method("forkserver", "/opt/other/python3") == "spawn"
        assert effective_start_method("spawn", sys.executable) == "spawn"


class TestTemplateFailures:
    async def test_an_unimportable_adapter_fails_start_with_the_import_error(self) -> None:
        """An adapter module that does not import fails start with exit code 3 and the reason."""
        with pytest.raises(snakepit.WorkerStartupError, match="exit code 3") as info:
            async with isolated_pool("no_such_module_xyz:Nope"):
                pass
        assert info.value.exit_code == 3
        assert "No module named 'no_such_module_xyz'" in info.value.stderr_tail

    async def test_a_module_that_starts_threads_at_import_is_refused(self, tmp_path: Path) -> None:
        """The template never forks with a second thread: an adapter module that starts one at
        import fails start, naming the thread and the way out."""
        name = f"threaded_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(
            textwrap.dedent(
                """
                import threading
                from snakepit.adapter import Adapter, tool

                threading.Thread(target=threading.Event().wait, name="poller", daemon=True).start()

                class Threaded(Adapter):
                    @tool
                    def ping(self) -> str:
                        return "pong"
                """
            )
        )
        with pytest.raises(snakepit.WorkerStartupError, match="'poller'") as info:
            async with isolated_pool(f"{name}:Threaded", cwd=str(tmp_path)):
                pass
        assert "start_method='spawn'" in str(info.value)
        async with isolated_pool(f"{name}:Threaded", cwd=str(tmp_path), start_method="spawn") as p:
            assert await p.execute("ping") == "pong"


class TestLauncherSeam:
    async def test_a_socket_can_be_the_workers_stdin(self, tmp_path: Path) -> None:
        """The launcher hands the child any fd as stdin (a socketpair end, as the local transport
        does); the template keeps no copy, so the worker's death closes the host's end."""
        server = ForkServer("snakepit.testing.adapters:Minimal")
        host_end, worker_end = socket.socketpair()
        try:
            proc = await server.launch(
                [
                    sys.executable,
                    "-m",
                    "snakepit.adapter",
                    "--adapter",
                    "snakepit.testing.adapters:Minimal",
                    "--socket",
                    str(tmp_path / "w.sock"),
                ],
                env=dict(os.environ),
                cwd=None,
                stdin=worker_end,
                stdout=PIPE,
                stderr=PIPE,
            )
            worker_end.close()
            assert proc.stdout is not None
            ready = await asyncio.wait_for(proc.stdout.readline(), BOUND)
            assert ready.startswith(b"SNAKEPIT_READY ")
            assert psutil.Process(proc.pid).ppid() == server.template_pid
            host_end.setblocking(False)
            # EOF on its stdin: the worker stops by itself, as when the host dies.
            host_end.shutdown(socket.SHUT_WR)
            assert await asyncio.wait_for(proc.wait(), BOUND) == 0
            assert (
                await asyncio.wait_for(asyncio.get_running_loop().sock_recv(host_end, 1), BOUND)
                == b""
            )
        finally:
            host_end.close()
            worker_end.close()
            await server.close()
