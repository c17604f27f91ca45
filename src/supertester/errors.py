"""The errors supertester raises.

Both are :class:`AssertionError` subclasses: a test that trips one fails (it
does not error), and the message says what was expected, what was seen and
what to do next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from supertester.leaks import Leak

__all__ = ["LeakError", "SupertesterTimeout"]


class SupertesterTimeout(AssertionError, TimeoutError):
    """Raised when something a test awaited did not happen within its bound.

    It is an ``AssertionError`` (the test fails, with a message naming what was
    awaited and for how long) and also a ``TimeoutError``, so code that already
    handles timeouts keeps working.

    Attributes:
        what: a description of what was awaited.
        timeout: the bound, in seconds (``None`` when unbounded).
    """

    def __init__(self, message: str, *, what: str = "", timeout: float | None = None) -> None:
        super().__init__(message)
        self.what = what
        self.timeout = timeout


class LeakError(AssertionError):
    """Raised when a block left something running that it started: a process, task, thread or fd.

    Attributes:
        leaks: every leak found, in the order the checks ran.
    """

    def __init__(self, leaks: Sequence[Leak], *, context: str = "") -> None:
        self.leaks = tuple(leaks)
        where = f" in {context}" if context else ""
        lines = [
            f"expected no leaked resources{where}, found {len(self.leaks)}:",
            *(f"  - {leak}" for leak in self.leaks),
            "Stop, cancel, join or close what the test started before it ends "
            "(use `async with` on the component, or await its close()).",
        ]
        super().__init__("\n".join(lines))
