"""Run a set of chaos scenarios under one overall deadline and report each outcome."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["ChaosSuiteReport", "ScenarioOutcome", "run_chaos_suite"]

_Scenario = Callable[[], Awaitable[object]]
_Status = Literal["passed", "failed", "timed_out", "not_run"]


@dataclass(frozen=True)
class ScenarioOutcome:
    """How one scenario ended.

    Attributes:
        name: the scenario's name.
        status: ``passed``, ``failed`` (it raised), ``timed_out`` (the suite
            deadline passed while it ran) or ``not_run`` (the deadline had passed).
        error: the exception it raised, when failed.
        seconds: how long it ran.
    """

    name: str
    status: _Status
    error: BaseException | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class ChaosSuiteReport:
    """The outcomes of :func:`run_chaos_suite`, in the order the scenarios were given."""

    outcomes: tuple[ScenarioOutcome, ...]
    deadline: float

    @property
    def passed(self) -> tuple[str, ...]:
        """Names of the scenarios that passed."""
        return tuple(o.name for o in self.outcomes if o.status == "passed")

    @property
    def not_passed(self) -> tuple[ScenarioOutcome, ...]:
        """The outcomes that are not ``passed``."""
        return tuple(o for o in self.outcomes if o.status != "passed")

    def assert_all_passed(self) -> None:
        """Fail unless every scenario passed.

        Raises:
            AssertionError: naming each scenario that failed, timed out or did not run.
        """
        bad = self.not_passed
        if bad:
            lines = [
                f"  {o.name}: {o.status}" + (f" ({o.error!r})" if o.error is not None else "")
                for o in bad
            ]
            raise AssertionError(
                f"expected all {len(self.outcomes)} chaos scenarios to pass within "
                f"{self.deadline}s, {len(bad)} did not:\n" + "\n".join(lines)
            )


async def run_chaos_suite(
    scenarios: Mapping[str, _Scenario] | Sequence[_Scenario],
    deadline: float,
) -> ChaosSuiteReport:
    """Run async scenarios one after another, all within ``deadline`` seconds in total.

    A scenario that raises is recorded as failed and the suite goes on; the
    one running when the deadline passes is cancelled (timed out) and the rest
    are not run. Scenarios run one at a time so their chaos does not mix.

    Args:
        scenarios: zero-argument async callables, by name (or a sequence,
            named after each callable).
        deadline: real seconds for the whole suite.

    Returns:
        A :class:`ChaosSuiteReport`; call ``assert_all_passed()`` on it to fail the test.

    Raises:
        asyncio.CancelledError: the suite itself was cancelled (never swallowed).
    """
    named = (
        list(scenarios.items())
        if isinstance(scenarios, Mapping)
        else [(getattr(s, "__qualname__", repr(s)), s) for s in scenarios]
    )
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + deadline
    outcomes: list[ScenarioOutcome] = []
    for name, scenario in named:
        if loop.time() >= ends_at:
            outcomes.append(ScenarioOutcome(name, "not_run"))
            continue
        started = time.monotonic()
        scope = asyncio.timeout_at(ends_at)
        try:
            async with scope:
                await scenario()
        except TimeoutError as exc:
            status: _Status = "timed_out" if scope.expired() else "failed"
            error = None if scope.expired() else exc
            outcomes.append(ScenarioOutcome(name, status, error, time.monotonic() - started))
        except Exception as exc:
            outcomes.append(ScenarioOutcome(name, "failed", exc, time.monotonic() - started))
        else:
            outcomes.append(ScenarioOutcome(name, "passed", None, time.monotonic() - started))
    return ChaosSuiteReport(outcomes=tuple(outcomes), deadline=deadline)
