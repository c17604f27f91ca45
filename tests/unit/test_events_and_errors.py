"""The event bus and the error hierarchy shared by every side."""

from __future__ import annotations

import asyncio
import pickle
import threading

import pytest

import snakepit
from snakepit import errors
from snakepit.events import EventBus, RequestQueued, WorkerExited, WorkerReady


def ready(n: int) -> WorkerReady:
    return WorkerReady(worker_id=f"w{n}", pid=n, address="unix:x", startup_seconds=0.1)


class TestEventBus:
    async def test_subscriber_gets_matching_events_in_order(self) -> None:
        """A subscription sees only events that pass its filter, in publish order."""
        bus = EventBus("t")
        with bus.subscribe(WorkerReady) as sub:
            for i in range(5):
                bus.publish(ready(i))
                bus.publish(RequestQueued(request_id=i, tool="x"))
            got = [await sub.get() for _ in range(5)]
        assert [e.pid for e in got] == [0, 1, 2, 3, 4]  # type: ignore[attr-defined]

    async def test_predicate_filters_and_listeners_are_synchronous(self) -> None:
        """A predicate filter works, and a listener is called before publish returns."""
        bus = EventBus("t")
        seen: list[object] = []
        remove = bus.add_listener(seen.append, lambda e: getattr(e, "pid", None) == 2)
        bus.publish(ready(1))
        bus.publish(ready(2))
        assert [e.pid for e in seen] == [2]  # type: ignore[attr-defined]
        remove()
        bus.publish(ready(2))
        assert len(seen) == 1

    async def test_full_buffer_drops_oldest_and_counts(self) -> None:
        """A bounded subscription keeps the newest events and counts what it dropped."""
        bus = EventBus("t")
        sub = bus.subscribe(maxsize=3)
        for i in range(5):
            bus.publish(ready(i))
        assert sub.dropped == 2
        assert [(await sub.get()).pid for _ in range(3)] == [2, 3, 4]  # type: ignore[attr-defined]

    async def test_waiting_subscriber_is_woken_from_another_thread(self) -> None:
        """An event published from another thread wakes a subscriber waiting in the loop."""
        bus = EventBus("t")
        sub = bus.subscribe(WorkerReady)
        waiter = asyncio.ensure_future(sub.get())
        thread = threading.Thread(target=bus.publish, args=(ready(7),))
        thread.start()
        event = await asyncio.wait_for(waiter, 5)
        thread.join()
        assert event.pid == 7  # type: ignore[attr-defined]

    async def test_closing_the_bus_ends_iteration_after_draining(self) -> None:
        """After close, a subscription yields what it buffered and then stops."""
        bus = EventBus("t")
        sub = bus.subscribe()
        bus.publish(ready(1))
        bus.close()
        assert [e.kind async for e in sub] == ["WorkerReady"]
        assert bus.subscribe().get_nowait() is None

    def test_events_are_frozen_and_typed(self) -> None:
        """Events are immutable dataclasses that name their kind."""
        event = WorkerExited(worker_id="w1", pid=1, exit_code=-9, expected=False)
        assert event.kind == "WorkerExited"
        with pytest.raises(AttributeError):
            event.pid = 2  # type: ignore[misc]


class TestErrors:
    def test_groups_say_the_remedy(self) -> None:
        """Each error sits under the group that says what the caller should do."""
        assert issubclass(errors.ToolNotFoundError, errors.RequestError)
        assert issubclass(errors.ExecutionTimeoutError, errors.SnakepitTimeoutError)
        assert issubclass(errors.ExecutionTimeoutError, TimeoutError)
        assert issubclass(errors.PoolSaturatedError, errors.CapacityError)
        assert issubclass(errors.WorkerCrashedError, errors.WorkerError)
        assert issubclass(errors.HostToolError, errors.ToolError)
        for name in errors.__all__:
            obj = getattr(errors, name)
            if isinstance(obj, type):
                assert issubclass(obj, errors.SnakepitError)
                assert obj.__doc__ and obj.__doc__.startswith("Raised "), name

    def test_details_are_attributes_and_survive_the_wire(self) -> None:
        """Details are attributes, and from_wire rebuilds the same class with them."""
        err = errors.WorkerCrashedError("gone", worker_id="w1", exit_code=-9)
        assert (err.worker_id, err.exit_code) == ("w1", -9)
        again = errors.from_wire("WorkerCrashedError", "gone", {"worker_id": "w1"})
        assert type(again) is errors.WorkerCrashedError and again.worker_id == "w1"
        assert type(errors.from_wire("NoSuchKind", "x")) is errors.SnakepitError

    @pytest.mark.parametrize(
        "details",
        [
            {"message": "forged"},
            {"details": 1},
            {"__traceback__": 1},
            {"__class__": 1},
            {"args": 5},
            {"with_traceback": None},
            {"_private": 1},
            {"not an identifier": 1},
            {1: 2},
            ["not", "a", "mapping"],
        ],
    )
    def test_from_wire_survives_any_details_a_worker_sends(self, details: object) -> None:
        """Details that would break the class are dropped: the result is always the typed error."""
        err = errors.from_wire("ToolError", "tool failed", details)  # type: ignore[arg-type]
        assert type(err) is errors.ToolError
        assert err.message == "tool failed"
        assert isinstance(err.details, dict) and not err.details
        assert str(err) == "tool failed"
        assert err.args == ("tool failed",)

    def test_from_wire_keeps_the_good_details_beside_dropped_ones(self) -> None:
        """A forged key costs only itself, not the worker id or tool name beside it."""
        err = errors.from_wire("WorkerCrashedError", "gone", {"worker_id": "w1", "args": 5})
        assert err.details == {"worker_id": "w1"} and err.worker_id == "w1"

    @pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '"str"', "{" * 100_000])
    def test_details_from_json_never_raises(self, text: str) -> None:
        """Details that are not a JSON object are empty, not an exception."""
        assert errors.details_from_json(text) == {}
        assert errors.details_from_json('{"tool": "t"}') == {"tool": "t"}

    def test_brief_is_short_and_never_raises(self) -> None:
        """brief() bounds any value (a 10**5000 int, a failing __repr__, 1 MiB of text)."""

        class Hostile:
            def __repr__(self) -> str:
                raise RuntimeError("no repr for you")

        for value in (10**5000, -(10**5000), "x" * 2**20, b"y" * 2**20, Hostile(), [[[[[1]]]]]):
            text = errors.brief(value)
            assert len(text) <= 120
        assert "5001 digits" in errors.brief(10**5000)
        assert errors.brief("short") == "'short'"
        assert len(errors.brief("x" * 100, limit=20)) == 20

    def test_errors_pickle_with_their_details(self) -> None:
        """An error pickles (for SyncPool threads and multiprocessing users) with its details."""
        err = errors.ToolError("boom", tool="t", remote_type="ValueError", remote_traceback="tb")
        again = pickle.loads(pickle.dumps(err))
        assert type(again) is errors.ToolError
        assert (again.tool, again.remote_type) == ("t", "ValueError")
        assert "Remote traceback" in str(again)

    def test_every_error_is_exported_from_snakepit(self) -> None:
        """The pool's error classes are importable from the top-level package."""
        required = [
            "SnakepitError", "PoolSaturatedError", "QueueTimeoutError", "ExecutionTimeoutError",
            "WorkerCrashedError", "WorkerStartupError", "WorkerBusyError",
            "SessionWorkerUnavailableError", "PoolClosedError", "ToolError",
            "ToolNotFoundError", "SerializationError",
        ]  # fmt: skip
        assert all(name in snakepit.__all__ for name in required)


class TestEventsNobodyWants:
    def test_wants_follows_the_filters_of_listeners_and_subscriptions(self) -> None:
        """A bus wants an event class only while a listener or subscription may take it, so
        the pool skips building per-call events that nobody listens to."""
        from snakepit.events import EventBus, RequestCompleted, SessionExpired

        bus = EventBus("t")
        remove = bus.add_listener(lambda e: None, (SessionExpired,))
        assert not bus.wants(RequestCompleted) and bus.wants(SessionExpired)
        with bus.subscribe(RequestCompleted):
            assert bus.wants(RequestCompleted)
        assert not bus.wants(RequestCompleted)
        remove_any = bus.add_listener(lambda e: None, lambda e: False)  # a predicate: maybe
        assert bus.wants(RequestCompleted)
        remove_any()
        remove()
        assert not bus.wants(SessionExpired)
