"""Where and how workers run: another virtualenv's interpreter, environment, working directory."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import psutil
import pytest

import snakepit
from snakepit.testing import cleanup_sessions, isolated_pool


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


_TOOLS = """
from snakepit import Adapter, tool

class TextTools(Adapter):
    @tool
    def shout(self, text: str) -> str:
        return text.upper() + "!"
"""

_APP = """
import sys
import snakepit

with snakepit.SyncPool(adapter="mytools:TextTools", size=1, heartbeat_interval=None,
                       registry_dir=sys.argv[1]) as pool:
    print(pool.execute("shout", {"text": "hi"}))
"""


class TestAdapterImports:
    def test_an_adapter_beside_the_script_imports_without_pythonpath(self, tmp_path: Path) -> None:
        """As with multiprocessing's spawn: the worker sees the host's sys.path (here the
        script's directory), although it runs in another directory."""
        project = tmp_path / "project"
        project.mkdir()
        (project / "mytools.py").write_text(_TOOLS)
        (project / "app.py").write_text(_APP)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run(
            [sys.executable, str(project / "app.py"), str(tmp_path / "reg")],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "HI!"

    async def test_an_adapter_that_does_not_import_says_where_it_looked(
        self, tmp_path: Path
    ) -> None:
        with pytest.raises(snakepit.WorkerStartupError) as info:
            async with isolated_pool("nowhere_to_be_found_mod:Tools", cwd=str(tmp_path)):
                pass
        message = str(info.value)
        assert "could not be imported" in message
        assert "No module named 'nowhere_to_be_found_mod'" in message
        assert f"searched sys.path:\n    {tmp_path}" in message
        assert "cwd=" in message
        assert "env={'PYTHONPATH'" in message
