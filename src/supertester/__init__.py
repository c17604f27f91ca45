"""supertester: deterministic tests of concurrent, supervised systems (asyncio tasks and OS processes)."""

from __future__ import annotations

from supertester.clock import FakeClock

__all__ = ["FakeClock"]
