"""When to restart a dead worker, and when to stop trying: backoff and restart intensity.

Pure bookkeeping, like the scheduler: ``Supervision`` reports failures and
successes with the current monotonic time and gets back how long to wait
before the next start, or ``None`` when the pool should stop restarting and
report itself degraded (the restart intensity of Erlang/OTP supervisors).

* **Backoff** is per worker slot: each consecutive failure of the same slot
  multiplies the delay (``backoff_initial * backoff_multiplier ** (n - 1)``,
  capped at ``backoff_max``), with random jitter so slots that died together do
  not restart in lockstep. A replacement that becomes ready and serves resets
  its slot.
* **Intensity** is pool-wide: more than ``max_restarts`` failures within
  ``window`` seconds means something is wrong beyond one worker (a broken
  adapter, a full disk), and restarting again would only spin.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["RestartPolicy", "RestartTracker"]


@dataclass
class RestartPolicy:
    """How a pool restarts failed workers.

    Attributes:
        max_restarts: Failures allowed within ``window`` before the pool is
            degraded (``0``: the first failure degrades it).
        window: The span, in seconds, over which failures are counted.
        backoff_initial: Delay before the first restart of a slot, in seconds.
        backoff_max: The largest delay before jitter, in seconds.
        backoff_multiplier: Growth of the delay per consecutive failure of a slot.
        jitter: The delay is scaled by a random factor in ``[1 - jitter, 1 + jitter]``.

    Raises:
        ValueError: If a field is out of range (the message names it and what is allowed).
    """

    max_restarts: int = 10
    window: float = 60.0
    backoff_initial: float = 0.1
    backoff_max: float = 10.0
    backoff_multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_restarts, bool)
            or not isinstance(self.max_restarts, int)
            or self.max_restarts < 0
        ):
            raise ValueError(
                f"RestartPolicy.max_restarts must be an int >= 0, got {self.max_restarts!r}"
            )
        _check("window", self.window, "a finite number > 0", lambda v: v > 0)
        _check("backoff_initial", self.backoff_initial, "a finite number >= 0", lambda v: v >= 0)
        _check(
            "backoff_max",
            self.backoff_max,
            f"a finite number >= backoff_initial ({self.backoff_initial!r})",
            lambda v: v >= self.backoff_initial,
        )
        _check(
            "backoff_multiplier", self.backoff_multiplier, "a finite number >= 1", lambda v: v >= 1
        )
        _check("jitter", self.jitter, "a number from 0 to 1", lambda v: 0 <= v <= 1)


def _check(field: str, value: float, allowed: str, ok: Callable[[float], bool]) -> None:
    valid = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and ok(value)
    )
    if not valid:
        raise ValueError(f"RestartPolicy.{field} must be {allowed}, got {value!r}")


class RestartTracker:
    """Counts worker failures and answers how long to back off, or that the pool is degraded.

    Args:
        policy: The limits and backoff shape.
        rng: The source of jitter; pass a seeded ``random.Random`` for
            reproducible delays (default: a fresh, unseeded one).
    """

    def __init__(self, policy: RestartPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._rng = rng if rng is not None else random.Random()
        self._failures: deque[float] = deque()
        self._consecutive: dict[str, int] = {}
        self._degraded = False

    def record_failure(self, worker_slot: str, now: float) -> float | None:
        """Record that the worker in ``worker_slot`` died unexpectedly.

        Args:
            worker_slot: The slot (stable across restarts) whose worker died.
            now: The current monotonic time.

        Returns:
            Seconds to wait before starting its replacement, or ``None`` when
            more than ``max_restarts`` failures fell within ``window`` (the pool
            is now degraded; it stays so until :meth:`reset`).
        """
        self._prune(now)
        self._failures.append(now)
        if len(self._failures) > self.policy.max_restarts:
            self._degraded = True
        if self._degraded:
            return None
        count = self._consecutive.get(worker_slot, 0) + 1
        self._consecutive[worker_slot] = count
        return self._delay(count)

    def record_success(self, worker_slot: str, now: float) -> None:
        """Record that the slot's replacement became ready and served: its backoff starts over.

        Args:
            worker_slot: The slot whose worker succeeded.
            now: The current monotonic time (unused; kept for symmetry and future policies).
        """
        del now
        self._consecutive.pop(worker_slot, None)

    @property
    def degraded(self) -> bool:
        """Whether restart intensity was exceeded and restarts have stopped."""
        return self._degraded

    def reset(self) -> None:
        """Leave the degraded state and start counting afresh (operator action, or recovered).

        Forgets the failures in the window and every slot's consecutive failures.
        """
        self._degraded = False
        self._failures.clear()
        self._consecutive.clear()

    def restarts_in_window(self, now: float) -> int:
        """How many failures (each a restart, or a refusal once degraded) fell within ``window``.

        A failure exactly ``window`` seconds old has left the window.
        """
        self._prune(now)
        return len(self._failures)

    def consecutive_failures(self, worker_slot: str) -> int:
        """How many times the slot failed since its last success."""
        return self._consecutive.get(worker_slot, 0)

    def __repr__(self) -> str:
        state = "degraded" if self._degraded else "ok"
        return f"<RestartTracker {state}, {len(self._failures)} failures recorded in window>"

    def _prune(self, now: float) -> None:
        horizon = now - self.policy.window
        failures = self._failures
        while failures and failures[0] <= horizon:
            failures.popleft()

    def _delay(self, consecutive: int) -> float:
        policy = self.policy
        try:
            base = policy.backoff_initial * policy.backoff_multiplier ** (consecutive - 1)
        except OverflowError:
            base = policy.backoff_max
        base = min(base, policy.backoff_max)
        if policy.jitter:
            base *= 1.0 + policy.jitter * self._rng.uniform(-1.0, 1.0)
        return base
