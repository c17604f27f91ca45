"""Where and how workers run: another virtualenv's interpreter, environment, working directory."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import psutil

from snakepit.testing import cleanup_sessions
from snakepit.testing.pools import isolated_pool


def _another_virtualenv(path: Path) -> Path:
    """A plain virtualenv whose packages are the running environment's, and its python.

    ``--system-site-packages`` would not do: from a virtualenv (as the tests always run)
    it exposes the *base* interpreter's packages, which need not include grpc. A ``.pth``
    file adding this environment's site directories (their own ``.pth`` files included)
    gives the new one exactly what the worker needs, while it stays another virtualenv.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"]])
    if site.ENABLE_USER_SITE:
        ours[site.getusersitepackages()] = None
    lines = [f"import site; site.addsitedir({d!r})" for d in ours if os.path.isdir(d)]
    (Path(purelib) / "snakepit-test-parent.pth").write_text("\n".join(lines) + "\n")
    return python


class TestWorkerEnvironment:
    async def test_workers_run_with_another_virtualenv_env_and_cwd(self, tmp_path: Path) -> None:
        """python= runs workers on another virtualenv's interpreter; env and cwd reach them."""
        python = _another_virtualenv(tmp_path / "venv")
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
