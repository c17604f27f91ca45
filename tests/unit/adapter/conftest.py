"""The worker side's tests meet a real host bridge, in process (see tests/support/bridge_host.py)."""

from __future__ import annotations

from tests.support.bridge_host import host

__all__ = ["host"]
