"""The supertester pytest plugin: fixtures, and event histories in the reports of failing tests.

Registered through the ``pytest11`` entry point, so it loads in every pytest
run; it imports only pytest at load time and costs nothing for tests that do
not use its fixtures.

Fixtures:

* ``fake_clock`` -- a fresh :class:`~supertester.FakeClock`.
* ``mailbox`` -- a :class:`~supertester.Mailbox` (closed at teardown).
* ``recorder`` -- an :class:`~supertester.EventRecorder`.
* ``isolation`` -- an entered :func:`~supertester.isolated` block: unique
  ``name``, private short ``path``; at teardown the test fails (as an error
  in teardown) naming any child process, asyncio task or thread it leaked.
* ``no_leaked_processes`` -- only the child-process leak check.

Ini options: ``supertester_leak_grace`` (seconds, default 2.0) and
``supertester_thread_allow`` (extra thread-name prefixes, one per line).

When a test that used ``recorder`` or ``mailbox`` fails, their histories are
added to its report as sections.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from supertester.clock import FakeClock
    from supertester.isolation import Isolation
    from supertester.mailbox import Mailbox
    from supertester.tracing import EventRecorder

    _async_fixture = pytest.fixture
else:
    try:  # mode-independent async fixtures when pytest-asyncio is installed
        from pytest_asyncio import fixture as _async_fixture
    except ImportError:  # pragma: no cover - async fixtures then need another async plugin
        _async_fixture = pytest.fixture

__all__ = [
    "fake_clock",
    "isolation",
    "mailbox",
    "no_leaked_processes",
    "pytest_addoption",
    "pytest_runtest_makereport",
    "recorder",
]

_Render = tuple[str, Callable[[], str]]
_HISTORIES = pytest.StashKey[list[_Render]]()
_SHOWN = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the ini options of the ``isolation`` fixture."""
    parser.addini(
        "supertester_leak_grace",
        "seconds the isolation fixture's leak checks wait for things already on their way out",
        default="2.0",
    )
    parser.addini(
        "supertester_thread_allow",
        "extra thread-name prefixes the isolation fixture never reports as leaks",
        type="linelist",
        default=[],
    )


def _show_on_failure(request: pytest.FixtureRequest, title: str, render: Callable[[], str]) -> None:
    request.node.stash.setdefault(_HISTORIES, []).append((title, render))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the recorded histories to the first failing report of a test."""
    report = yield
    histories = item.stash.get(_HISTORIES, None)
    if report.failed and histories and not item.stash.get(_SHOWN, False):
        item.stash[_SHOWN] = True
        for title, render in histories:
            report.sections.append((f"supertester: {title}", render()))
    return report


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fresh FakeClock at monotonic 0.0."""
    from supertester.clock import FakeClock

    return FakeClock()


@_async_fixture
async def mailbox(request: pytest.FixtureRequest) -> AsyncIterator[Mailbox[Any]]:
    """A Mailbox; its subscriptions are cancelled at teardown, its history shown on failure."""
    from supertester.mailbox import Mailbox

    box: Mailbox[Any] = Mailbox("mailbox")
    _show_on_failure(request, "mailbox history", box.format_history)
    async with box:
        yield box


@pytest.fixture
def recorder(request: pytest.FixtureRequest) -> EventRecorder:
    """An EventRecorder whose history is printed in the report if the test fails."""
    from supertester.tracing import EventRecorder

    rec = EventRecorder("recorded events")
    _show_on_failure(request, "event history", rec.format)
    return rec


@_async_fixture
async def isolation(request: pytest.FixtureRequest) -> AsyncIterator[Isolation]:
    """A unique name and private directory; fails at teardown on leaked processes, tasks, threads."""
    from supertester.isolation import isolated
    from supertester.leaks import DEFAULT_THREAD_ALLOW

    config = request.config
    grace = float(config.getini("supertester_leak_grace"))
    allow = DEFAULT_THREAD_ALLOW + tuple(config.getini("supertester_thread_allow"))
    prefix = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name).strip("-")[:24] or "test"
    async with isolated(prefix, grace=grace, thread_allow=allow) as iso:
        yield iso


@pytest.fixture
def no_leaked_processes() -> Iterator[None]:
    """Fails the test at teardown if it left a child process running (which is then killed)."""
    from supertester.process_leaks import ProcessLeakCheck

    with ProcessLeakCheck(kill_leaked=True):
        yield
