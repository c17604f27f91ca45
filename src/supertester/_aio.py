"""Small asyncio utilities used across supertester (private).

The two functions that touch ``asyncio.sleep`` live here so that every use is
in one place and justified: a zero-length yield to the event loop is not a
delay, and :func:`backoff_pause` is only used by ``eventually``, the
documented last resort for conditions that publish no event.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["backoff_pause", "checkpoint", "set_event_threadsafe"]


async def checkpoint(rounds: int = 1) -> None:
    """Yield to the event loop ``rounds`` times, so ready callbacks and tasks run."""
    for _ in range(rounds):
        await asyncio.sleep(0)  # noqa: TID251  # a zero-length yield, not a delay


async def backoff_pause(seconds: float) -> None:
    """Pause between two checks of a condition that has no event (``eventually`` only)."""
    await asyncio.sleep(seconds)  # noqa: TID251  # the documented last resort: no event to wait on


def set_event_threadsafe(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    """Set ``event`` (owned by ``loop``) from any thread; a closed loop is ignored."""
    if _running_loop() is loop:
        event.set()
        return
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(event.set)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
