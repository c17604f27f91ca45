"""Where and how workers run: another virtualenv's interpreter, environment, working directory."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import psutil

from snakepit.testing import cleanup_sessions
from snakepit.testing.pools import isolated_pool

if TYPE_CHECKING:
    from pathlib import Path


class TestWorkerEnvironment:
    async def test_workers_run_with_another_virtualenv_env_and_cwd(self, tmp_path: Path) -> None:
        """python= runs workers on another virtualenv's interpreter; env and cwd reach them."""
        venv = tmp_path / "venv"
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
            check=True,
        )
        python = venv / "bin" / "python"
        async with isolated_pool(
            python=str(python), env={"SNAKEPIT_TEST_MARK": "42"}, cwd=str(tmp_path)
        ) as pool:
            pid = await pool.execute("pid")
            proc = psutil.Process(pid)
            assert proc.cmdline()[0] == str(python)
            assert proc.environ()["SNAKEPIT_TEST_MARK"] == "42"
            assert proc.cwd() == str(tmp_path)


class TestSessionCleanup:
    async def test_cleanup_sessions_deletes_in_bulk(self) -> None:
        """cleanup_sessions deletes every matching session (and only those)."""
        async with isolated_pool() as pool:
            for i in range(5):
                await pool.session(f"tmp-{i}").execute("ping")
            await pool.session("keep").execute("ping")
            assert sorted(await cleanup_sessions(pool, "tmp-*")) == [f"tmp-{i}" for i in range(5)]
            assert [s.id for s in await pool.sessions.list()] == ["keep"]
