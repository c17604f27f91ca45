"""Bounded waits: await with a deadline, probe responsiveness, and (last resort) poll.

Prefer an event: a :class:`~supertester.Mailbox` receive, a future, a
process exit. :func:`eventually` is for the rare condition that publishes no
event at all; it re-checks with an exponential backoff and is the only place
in supertester that pauses for time.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import TYPE_CHECKING, Any, TypeVar, cast

from supertester._aio import backoff_pause
from supertester.errors import SupertesterTimeout

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["assert_responsive", "call_with_timeout", "eventually"]

T = TypeVar("T")


async def call_with_timeout(awaitable: Awaitable[T], timeout: float, what: str | None = None) -> T:
    """Await ``awaitable``, failing the test if it takes longer than ``timeout`` seconds.

    On timeout the awaitable is cancelled (a task awaited here is cancelled too).

    Args:
        awaitable: a coroutine, task or future.
        timeout: real seconds.
        what: names the awaited operation in the failure message
            (default: the coroutine's or task's name).

    Returns:
        The awaitable's result.

    Raises:
        SupertesterTimeout: it did not complete in time.
    """
    description = what or _describe(awaitable)
    try:
        async with asyncio.timeout(timeout) as scope:
            return await awaitable
    except TimeoutError as exc:
        if not scope.expired():
            raise
        raise SupertesterTimeout(
            f"expected {description} to complete within {timeout}s, it did not and was "
            "cancelled. Look for a hang (an event never published, a lock never released) "
            "or raise the bound if it is legitimately slow.",
            what=description,
            timeout=timeout,
        ) from exc


async def assert_responsive(
    probe: Callable[[], Awaitable[T]] | Awaitable[T],
    timeout: float = 5.0,
    what: str | None = None,
) -> T:
    """Assert that a component answers a probe (a ping, a cheap call) within ``timeout``.

    Args:
        probe: an awaitable, or a zero-argument callable returning one,
            e.g. ``pool.ping`` or ``lambda: client.health()``.
        timeout: real seconds.
        what: names the component in the failure message.

    Returns:
        The probe's answer.

    Raises:
        SupertesterTimeout: no answer within ``timeout``.
    """
    if callable(probe):
        description = what or f"{getattr(probe, '__qualname__', repr(probe))}() to answer"
        awaitable = probe()
    else:
        description = what or f"{_describe(probe)} to answer"
        awaitable = probe
    return await call_with_timeout(awaitable, timeout, what=description)


async def eventually(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 5.0,
    what: str | None = None,
    *,
    first_interval: float = 0.001,
    max_interval: float = 0.05,
) -> T:
    """Re-check ``predicate`` until it returns a truthy value; the last resort for eventless states.

    Use it only when the system offers no event, future or process handle to
    wait on: it pauses between checks (exponential backoff from
    ``first_interval`` up to ``max_interval``). An ``AssertionError`` raised by
    the predicate counts as "not yet", so a block of asserts can be retried.

    Args:
        predicate: a sync or async zero-argument callable.
        timeout: real seconds before giving up.
        what: names the awaited condition in the failure message.
        first_interval: the first pause, in seconds.
        max_interval: the longest pause, in seconds.

    Returns:
        The first truthy value the predicate returned.

    Raises:
        SupertesterTimeout: the predicate never held; the message gives the
            number of checks and the last value or assertion seen.
    """
    description = what or f"{getattr(predicate, '__qualname__', repr(predicate))}() to hold"
    started = time.monotonic()
    attempts = 0
    last: str = "no check completed"
    interval = first_interval
    try:
        async with asyncio.timeout(timeout) as scope:
            while True:
                attempts += 1
                try:
                    value: Any = predicate()
                    if inspect.isawaitable(value):
                        value = await value
                except AssertionError as exc:
                    last = f"the last check failed: {exc}"
                else:
                    if value:
                        return cast("T", value)
                    last = f"the last check returned {value!r}"
                await backoff_pause(interval)
                interval = min(interval * 2, max_interval)
    except TimeoutError as exc:
        if not scope.expired():
            raise
        elapsed = time.monotonic() - started
        raise SupertesterTimeout(
            f"expected {description} within {timeout}s; it did not after {attempts} checks "
            f"over {elapsed:.3f}s ({last}). If the system publishes an event for this state, "
            "await that instead of polling.",
            what=description,
            timeout=timeout,
        ) from exc


def _describe(awaitable: object) -> str:
    if isinstance(awaitable, asyncio.Task):
        return f"task {awaitable.get_name()!r} ({_describe(awaitable.get_coro())})"
    name = getattr(awaitable, "__qualname__", None)
    if inspect.iscoroutine(awaitable) and name:
        return f"{name}()"
    return repr(awaitable)
