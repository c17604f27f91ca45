"""Suite-wide configuration: bytecode caches, markers by folder, the slowest kinds of test
first, a frozen heap, and the fixture that runs a test over both transports."""

from __future__ import annotations

import compileall
import gc
import os
import sys
from pathlib import Path

import pytest

_MARKERS = {
    "unit": "unit",
    "integration": "integration",
    "performance": "performance",
    "chaos": "chaos",
    "supertester": "supertester",
    "ray": "ray",
}
# The order in which kinds of test are handed out: those that start processes and wait
# for them first, the millisecond unit tests last (see pytest_collection_modifyitems).
_RANK = {"chaos": 0, "integration": 0, "performance": 0, "supertester": 1, "unit": 2}
_ROOT = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    """Compile the package's bytecode once, before any worker starts, and let pytest keep
    its rewritten test modules.

    Every worker and fork-server template is a new interpreter that imports snakepit;
    where bytecode is not written on import (``PYTHONDONTWRITEBYTECODE``, a read-only
    checkout), each would compile the sources again, which roughly doubles a pool's
    start. ``compileall`` writes the caches whatever that setting says.

    pytest imports the test modules, and all of snakepit and supertester (a distribution
    with a ``pytest11`` entry point is rewritten whole), through its assertion rewriter,
    which ignores those caches and keeps its own only where bytecode may be written.
    Without it, every xdist worker parses and rewrites ~180 modules before its first
    test: about a second of CPU each.
    """
    if not hasattr(config, "workerinput"):  # the xdist controller (or a plain run) only
        compileall.compile_dir(_ROOT.parent / "src", quiet=1, workers=1)
    sys.dont_write_bytecode = False


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one xdist worker more than cores. Much of a test's time is spent
    waiting for worker processes to start, answer or die, which another test can use."""
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder, then order the tests longest kind first.

    xdist (``--dist worksteal``) splits this order into one share per worker, and a
    worker that runs out takes the tail of the largest share left, so the long tests
    start early and no worker is left alone with a queue of them at the end. The sort is
    stable: pytest-randomly's shuffled order holds within each kind.
    """
    kinds: dict[str, str] = {}
    for item in items:
        try:
            top = Path(item.path).relative_to(_ROOT).parts[0]
        except ValueError:
            continue
        marker = _MARKERS.get(top)
        if marker:
            item.add_marker(getattr(pytest.mark, marker))
            kinds[item.nodeid] = marker
    items.sort(key=lambda item: _RANK.get(kinds.get(item.nodeid, ""), 1))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection built (modules, test items, imported libraries): it lives until
    the end anyway, and frozen objects are skipped by every later full garbage collection,
    the automatic ones and those of the memory-growth checks (about 70 ms each otherwise)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(params=["local", "grpc"])
def both_transports(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per transport: pools and workers it starts without naming a
    transport use this one (``@pytest.mark.usefixtures("both_transports")``)."""
    from snakepit.testing import _servers as servers

    transport: str = request.param
    monkeypatch.setattr(servers, "default_transport", transport)
    return transport
