"""Suite-wide configuration: markers by folder."""

from __future__ import annotations

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
