"""supertester: deterministic tests of concurrent, supervised systems (asyncio tasks and OS processes).

Synchronise on events, not time (:class:`Mailbox`, :func:`call_with_timeout`,
:class:`FakeClock`); isolate every test and prove it leaked nothing
(:func:`isolated`, the leak checks); assert supervision and inject chaos
against a small :class:`Supervised` protocol; measure relatively
(:func:`measure`, :func:`assert_no_memory_growth`); and keep an event history
that is printed when a test fails (:class:`EventRecorder`). The pytest
fixtures live in :mod:`supertester.pytest_plugin`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supertester.chaos import (
        FailureReport,
        FailureSchedule,
        FailureTarget,
        InjectedFailure,
        KilledChild,
        KillReport,
        inject_random_failures,
        kill_children,
        plan_failures,
    )
    from supertester.chaos_suite import ChaosSuiteReport, ScenarioOutcome, run_chaos_suite
    from supertester.clock import FakeClock
    from supertester.errors import LeakError, SupertesterTimeout
    from supertester.isolation import Isolation, isolated, unique_name
    from supertester.latency import Timing, assert_latency_ratio, time_calls, time_calls_async
    from supertester.leaks import (
        DEFAULT_THREAD_ALLOW,
        FdLeakCheck,
        Leak,
        LeakCheck,
        TaskLeakCheck,
        ThreadLeakCheck,
    )
    from supertester.mailbox import Mailbox
    from supertester.memory import (
        MemoryGrowthReport,
        assert_no_memory_growth,
        assert_no_memory_growth_async,
        memory_slope,
    )
    from supertester.performance import Measurement, Meter, measure
    from supertester.process_leaks import ProcessLeakCheck
    from supertester.processes import assert_alive, describe_process, is_alive, wait_for_exit
    from supertester.resources import AppliedLimit, ResourceReport, exhaust_resources
    from supertester.supervision import (
        ChildInfo,
        RestartReport,
        Supervised,
        assert_all_children_alive,
        assert_child_count,
        assert_process_restarted,
        check_restart_strategy,
        wait_for_children,
    )
    from supertester.tracing import EventRecorder, RecordedEvent
    from supertester.waiting import assert_responsive, call_with_timeout, eventually

__all__ = [
    "DEFAULT_THREAD_ALLOW",
    "AppliedLimit",
    "ChaosSuiteReport",
    "ChildInfo",
    "EventRecorder",
    "FailureReport",
    "FailureSchedule",
    "FailureTarget",
    "FakeClock",
    "FdLeakCheck",
    "InjectedFailure",
    "Isolation",
    "KillReport",
    "KilledChild",
    "Leak",
    "LeakCheck",
    "LeakError",
    "Mailbox",
    "Measurement",
    "MemoryGrowthReport",
    "Meter",
    "ProcessLeakCheck",
    "RecordedEvent",
    "ResourceReport",
    "RestartReport",
    "ScenarioOutcome",
    "SupertesterTimeout",
    "Supervised",
    "TaskLeakCheck",
    "ThreadLeakCheck",
    "Timing",
    "assert_alive",
    "assert_all_children_alive",
    "assert_child_count",
    "assert_latency_ratio",
    "assert_no_memory_growth",
    "assert_no_memory_growth_async",
    "assert_process_restarted",
    "assert_responsive",
    "call_with_timeout",
    "check_restart_strategy",
    "describe_process",
    "eventually",
    "exhaust_resources",
    "inject_random_failures",
    "is_alive",
    "isolated",
    "kill_children",
    "measure",
    "memory_slope",
    "plan_failures",
    "run_chaos_suite",
    "time_calls",
    "time_calls_async",
    "unique_name",
    "wait_for_children",
    "wait_for_exit",
]

# Public name -> the module defining it. Imported on first access (PEP 562), so that
# loading the pytest plugin, which imports this package, stays cheap in every test run.
_EXPORTS: dict[str, str] = {
    "FailureReport": "supertester.chaos",
    "FailureSchedule": "supertester.chaos",
    "FailureTarget": "supertester.chaos",
    "InjectedFailure": "supertester.chaos",
    "KillReport": "supertester.chaos",
    "KilledChild": "supertester.chaos",
    "inject_random_failures": "supertester.chaos",
    "kill_children": "supertester.chaos",
    "plan_failures": "supertester.chaos",
    "ChaosSuiteReport": "supertester.chaos_suite",
    "ScenarioOutcome": "supertester.chaos_suite",
    "run_chaos_suite": "supertester.chaos_suite",
    "FakeClock": "supertester.clock",
    "LeakError": "supertester.errors",
    "SupertesterTimeout": "supertester.errors",
    "Isolation": "supertester.isolation",
    "isolated": "supertester.isolation",
    "unique_name": "supertester.isolation",
    "Timing": "supertester.latency",
    "assert_latency_ratio": "supertester.latency",
    "time_calls": "supertester.latency",
    "time_calls_async": "supertester.latency",
    "DEFAULT_THREAD_ALLOW": "supertester.leaks",
    "FdLeakCheck": "supertester.leaks",
    "Leak": "supertester.leaks",
    "LeakCheck": "supertester.leaks",
    "TaskLeakCheck": "supertester.leaks",
    "ThreadLeakCheck": "supertester.leaks",
    "Mailbox": "supertester.mailbox",
    "MemoryGrowthReport": "supertester.memory",
    "assert_no_memory_growth": "supertester.memory",
    "assert_no_memory_growth_async": "supertester.memory",
    "memory_slope": "supertester.memory",
    "Measurement": "supertester.performance",
    "Meter": "supertester.performance",
    "measure": "supertester.performance",
    "ProcessLeakCheck": "supertester.process_leaks",
    "assert_alive": "supertester.processes",
    "describe_process": "supertester.processes",
    "is_alive": "supertester.processes",
    "wait_for_exit": "supertester.processes",
    "AppliedLimit": "supertester.resources",
    "ResourceReport": "supertester.resources",
    "exhaust_resources": "supertester.resources",
    "ChildInfo": "supertester.supervision",
    "RestartReport": "supertester.supervision",
    "Supervised": "supertester.supervision",
    "assert_all_children_alive": "supertester.supervision",
    "assert_child_count": "supertester.supervision",
    "assert_process_restarted": "supertester.supervision",
    "check_restart_strategy": "supertester.supervision",
    "wait_for_children": "supertester.supervision",
    "EventRecorder": "supertester.tracing",
    "RecordedEvent": "supertester.tracing",
    "assert_responsive": "supertester.waiting",
    "call_with_timeout": "supertester.waiting",
    "eventually": "supertester.waiting",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'supertester' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
