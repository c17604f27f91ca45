"""Suite-wide configuration: markers by folder, and the fixture that runs a test over both
transports."""

from __future__ import annotations

from pathlib import Path

import pytest

from snakepit.testing import servers

_MARKERS = {
    "unit": "unit",
    "integration": "integration",
    "performance": "performance",
    "chaos": "chaos",
    "supertester": "supertester",
    "ray": "ray",
}
_ROOT = Path(__file__).parent


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
