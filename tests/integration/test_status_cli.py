"""`snakepit status`, `--version` and help, through the real CLI against a real running pool."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

import snakepit
from snakepit.cli import main
from snakepit.events import RequestDispatched
from snakepit.testing import isolated_pool, pool_mailbox

if TYPE_CHECKING:
    from pathlib import Path


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snakepit.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


async def test_status_lists_the_running_pool_its_workers_and_current_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "status"
    monkeypatch.setenv("SNAKEPIT_STATUS_DIR", str(folder))
    env = {**os.environ, "SNAKEPIT_STATUS_DIR": str(folder)}
    folder.mkdir(mode=0o700)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    async with isolated_pool(size=2, name=f"st{os.getpid()}") as pool:
        # A pool whose process died without removing its file (after this pool's start,
        # which removes such files): skipped, not listed.
        (folder / "ghost-1-x.json").write_text(
            json.dumps(
                {
                    "format": 1,
                    "pool": "ghost",
                    "pid": int(dead.stdout),
                    "pid_started": 0,
                    "workers": [],
                }
            )
        )
        (folder / "link.json").symlink_to(folder / "ghost-1-x.json")
        box = pool_mailbox(pool)
        await pool.execute("ping")
        call = asyncio.create_task(pool.execute("hang", timeout=30))
        dispatched = await box.assert_receive(
            lambda e: isinstance(e, RequestDispatched) and e.tool == "hang", 10
        )
        pool._status.flush()  # what its timer does within half a second
        done = await asyncio.to_thread(_cli, "status", "--json", env=env)
        assert done.returncode == 0, done.stderr
        [doc] = json.loads(done.stdout)
        assert doc["pool"] == pool.name and doc["pid"] == os.getpid() and doc["state"] == "running"
        by_id = {w["id"]: w for w in doc["workers"]}
        assert {w.id: w.pid for w in pool.workers()} == {i: w["pid"] for i, w in by_id.items()}
        busy = by_id[dispatched.worker_id]
        assert busy["state"] == "busy" and busy["tools"] == ["hang"] and busy["rss"] > 1_000_000
        assert sum(w["requests"] for w in by_id.values()) == 2

        table = await asyncio.to_thread(
            _cli, "status", "--watch", "--count", "2", "--interval", "0.01", env=env
        )
        assert table.returncode == 0, table.stderr
        assert table.stdout.count(f"pool {pool.name}") == 2 and "ghost" not in table.stdout
        assert re.search(
            rf"{dispatched.worker_id}\s+busy\s+{busy['pid']}\s+[\d.]+ MiB\s+\d+\s+hang",
            table.stdout,
        )
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    after = await asyncio.to_thread(_cli, "status", env=env)
    assert "no running snakepit pools" in after.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["ghost-1-x.json", "link.json"]


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with contextlib.suppress(SystemExit):  # --help and --version exit 0 after printing
        main(list(args))
    return capsys.readouterr().out


def test_version_bare_command_and_plain_help_for_every_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _main(capsys, "--version").strip() == f"snakepit {snakepit.__version__}"
    bare = _main(capsys)
    assert "usage: snakepit" in bare and "status" in bare
    for command in ([], ["demo"], ["doctor"], ["status"]):
        text = _main(capsys, *command, "--help")
        assert "``" not in text and ":class:" not in text and ":func:" not in text, text
        options = text.split("options:", 1)[1]
        for match in re.finditer(r"^  (-[-\w]+(?: [A-Z_]+)?)(.*)\n(.*)", options, re.MULTILINE):
            flag, same_line, next_line = match.groups()
            assert same_line.strip() or next_line.startswith(" " * 10), (
                f"{command} {flag} has no help"
            )


async def test_a_starting_pool_removes_the_status_files_of_dead_hosts_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host killed before it could remove its status file leaves it behind; the next pool
    removes it, and leaves a live process's file and what is not a status file alone."""
    import psutil

    folder = tmp_path / "status"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("SNAKEPIT_STATUS_DIR", str(folder))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    me = psutil.Process()

    def status(pid: int, started: float) -> str:
        return json.dumps(
            {"format": 1, "pool": "p", "pid": pid, "pid_started": started, "workers": []}
        )

    (folder / "ghost-1-x.json").write_text(status(int(dead.stdout), 0))
    (folder / "alive-2-y.json").write_text(status(me.pid, me.create_time()))
    (folder / "other.json").write_text("not a status document")
    async with isolated_pool(size=1, name=f"sw{os.getpid()}") as pool:
        left = sorted(p.name for p in folder.iterdir())
        assert "ghost-1-x.json" not in left
        assert {"alive-2-y.json", "other.json"} <= set(left)
        assert any(name.startswith(f"{pool.name}-") for name in left)
