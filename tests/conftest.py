"""Suite-wide configuration: markers by folder, and the fixture that runs a test over both
transports."""

from __future__ import annotations

import compileall
import os
from pathlib import Path

import pytest

from snakepit.testing import _servers as servers

_MARKERS = {
    "unit": "unit",
    "integration": "integration",
    "performance": "performance",
    "chaos": "chaos",
    "supertester": "supertester",
    "ray": "ray",
}
_ROOT = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    """Compile the package's bytecode once, before any worker starts.

    Every worker and fork-server template is a new interpreter that imports snakepit;
    where bytecode is not written on import (``PYTHONDONTWRITEBYTECODE``, a read-only
    checkout), each would compile the sources again, which roughly doubles a pool's
    start. ``compileall`` writes the caches whatever that setting says.
    """
    if not hasattr(config, "workerinput"):  # the xdist controller (or a plain run) only
        compileall.compile_dir(_ROOT.parent / "src", quiet=1, workers=1)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one xdist worker more than cores. Much of a test's time is spent
    waiting for worker processes to start, answer or die, which another test can use."""
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            top = Path(item.path).relative_to(_ROOT).parts[0]
        except ValueError:
            continue
        marker = _MARKERS.get(top)
        if marker:
            item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(params=["local", "grpc"])
def both_transports(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per transport: pools and workers it starts without naming a
    transport use this one (``@pytest.mark.usefixtures("both_transports")``)."""
    transport: str = request.param
    monkeypatch.setattr(servers, "default_transport", transport)
    return transport
