"""Support for supertester's own tests: pytester, and a toy supervisor of real processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from supertester import ChildInfo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator


def pytest_configure(config: pytest.Config) -> None:
    # pytester runs the plugin's own failure-report tests. `pytest_plugins` is refused in a
    # conftest below the rootdir, so the plugin is registered here (it is pytest's own).
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


# A child that lives until its stdin closes: the cheapest well-behaved worker.
CHILD_CMD = [sys.executable, "-I", "-S", "-c", "import sys; sys.stdin.read()"]


@dataclass(frozen=True)
class ToyEvent:
    kind: str  # "started" | "exited" | "restarted"
    child_id: str
    pid: int


class _Child:
    def __init__(self, child_id: str) -> None:
        self.id = child_id
        self.proc: subprocess.Popen[bytes] | None = None
        self.pidfd: int | None = None
        self.exited = asyncio.Event()


class ToySupervisor:
    """Spawns ``python -c`` children and restarts them when they die, driven by pidfd events.

    It implements supertester's ``Supervised`` and ``FailureTarget`` protocols.
    """

    def __init__(self, count: int = 3, *, strategy: str = "one_for_one", restart: bool = True):
        self.strategy = strategy
        self.restart = restart
        self._children = [_Child(f"child-{i}") for i in range(count)]
        self._listeners: list[Callable[[object], None]] = []
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self.hung: set[str] = set()

    # -- Supervised -------------------------------------------------------------------------
    def children(self) -> list[ChildInfo]:
        return [
            ChildInfo(c.id, c.proc.pid if c.proc else None, self._running(c))
            for c in self._children
        ]

    def subscribe_events(self, callback: Callable[[object], None]) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    # -- FailureTarget ----------------------------------------------------------------------
    def inject(self, kind: str, child_id: str) -> Awaitable[None] | None:
        child = self._by_id(child_id)
        assert child.proc is not None
        if kind == "exit":
            child.proc.send_signal(signal.SIGKILL)
        elif kind == "disconnect":
            assert child.proc.stdin is not None
            child.proc.stdin.close()
        elif kind == "timeout":
            self.hung.add(child_id)
        else:
            raise ValueError(f"unknown failure kind {kind!r}")
        return None

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        for child in self._children:
            self._spawn(child, "started")

    async def close(self) -> None:
        self._closing = True
        for child in self._children:
            if child.proc is not None and child.proc.stdin is not None:
                child.proc.stdin.close()
        try:
            async with asyncio.timeout(5):
                for child in self._children:
                    await child.exited.wait()
        finally:
            for child in self._children:
                self._stop(child, kill=True)

    async def __aenter__(self) -> ToySupervisor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<ToySupervisor {self.strategy} {len(self._children)} children>"

    # -- internals --------------------------------------------------------------------------
    def _by_id(self, child_id: str) -> _Child:
        return next(c for c in self._children if c.id == child_id)

    @staticmethod
    def _running(child: _Child) -> bool:
        return child.proc is not None and not child.exited.is_set()

    def _publish(self, kind: str, child: _Child) -> None:
        assert child.proc is not None
        event = ToyEvent(kind, child.id, child.proc.pid)
        for listener in list(self._listeners):
            listener(event)

    def _spawn(self, child: _Child, kind: str) -> None:
        child.proc = subprocess.Popen(
            CHILD_CMD, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        child.exited = asyncio.Event()
        child.pidfd = os.pidfd_open(child.proc.pid)
        self._loop.add_reader(child.pidfd, self._on_exit, child)
        self._publish(kind, child)

    def _stop(self, child: _Child, *, kill: bool) -> None:
        """Forget the pidfd, kill if asked, reap, close the pipe (idempotent)."""
        if child.pidfd is not None:
            self._loop.remove_reader(child.pidfd)
            os.close(child.pidfd)
            child.pidfd = None
        if child.proc is not None:
            if kill and child.proc.poll() is None:
                child.proc.kill()
            child.proc.wait()
            if child.proc.stdin is not None:
                child.proc.stdin.close()
        child.exited.set()

    def _on_exit(self, child: _Child) -> None:
        self._stop(child, kill=False)
        self._publish("exited", child)
        if self._closing or not self.restart:
            return
        index = self._children.index(child)
        if self.strategy == "one_for_one":
            group = [child]
        elif self.strategy == "rest_for_one":
            group = self._children[index:]
        else:
            group = list(self._children)
        for other in group:
            if other is not child:
                self._stop(other, kill=True)
                self._publish("exited", other)
        for member in group:
            self._spawn(member, "restarted")


@pytest.fixture
async def toy_supervisor() -> AsyncIterator[Callable[..., Awaitable[ToySupervisor]]]:
    """A factory of started ToySupervisors, all closed at teardown."""
    started: list[ToySupervisor] = []

    async def make(count: int = 3, **options: Any) -> ToySupervisor:
        sup = ToySupervisor(count, **options)
        started.append(sup)
        await sup.start()
        return sup

    yield make
    for sup in started:
        with contextlib.suppress(Exception):
            await sup.close()


@pytest.fixture
def child_process() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """A factory of ``python -c`` children that wait on stdin; killed and reaped at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def make(**options: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            CHILD_CMD,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **options,
        )
        procs.append(proc)
        return proc

    yield make
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


@pytest.fixture
def run_inner(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], pytest.RunResult]:
    """Run a test file in an inner pytest session (in-process) with the project's async settings.

    Only the plugins under test are loaded (no entry-point autoloading), which keeps it fast.
    """
    pytester.makeini(
        """
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
        asyncio_default_test_loop_scope = function
        supertester_leak_grace = 0.05
        """
    )
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")

    def run(source: str) -> pytest.RunResult:
        pytester.makepyfile(source)
        return pytester.runpytest_inprocess(
            "-p", "pytest_asyncio.plugin", "-p", "supertester.pytest_plugin"
        )

    return run
