"""What only the in-memory store does: its expiry loop's timers, and its repr.

Everything every store must do is in the conformance suite
(tests/integration/store/), which runs on each backend, this one included.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from snakepit.bridge import InMemorySessionStore
from snakepit.events import Event, EventBus, SessionExpired, Subscription

if TYPE_CHECKING:
    from supertester import FakeClock


async def next_event(sub: Subscription) -> Event:
    async with asyncio.timeout(2):
        return await sub.get()


class TestExpiryTimers:
    async def test_the_loop_wakes_for_a_new_session_that_expires_sooner(
        self, clock: FakeClock, bus: EventBus
    ) -> None:
        sub = bus.subscribe(SessionExpired)
        async with InMemorySessionStore(clock, events=bus) as store:
            await store.create("slow", ttl=100)
            await clock.wait_for_sleepers(1)
            assert clock.next_deadline() == 100
            await store.create("fast", ttl=5)
            await clock.advance(6)  # a loop still sleeping towards t=100 would never see it
            assert (await next_event(sub)).session_id == "fast"  # type: ignore[attr-defined]
            assert [s.id for s in await store.list_sessions()] == ["slow"]

    async def test_the_loop_keeps_a_session_that_was_touched_before_its_deadline(
        self, clock: FakeClock, bus: EventBus
    ) -> None:
        sub = bus.subscribe(SessionExpired)
        async with InMemorySessionStore(clock, events=bus) as store:
            await store.create("s1", ttl=10)
            await clock.wait_for_sleepers(1)
            await clock.advance(6)
            await store.touch("s1")
            await clock.advance(6)  # past the first deadline, not the slid one
            await clock.wait_for_sleepers(1)
            assert sub.get_nowait() is None
            assert clock.next_deadline() == 16
            await clock.advance(4)
            assert (await next_event(sub)).session_id == "s1"  # type: ignore[attr-defined]

    async def test_the_loop_idles_without_a_timer_when_empty_and_rearms_for_a_new_session(
        self, clock: FakeClock, bus: EventBus
    ) -> None:
        sub = bus.subscribe(SessionExpired)
        async with InMemorySessionStore(clock, events=bus) as store:
            await store.create("s1", ttl=1)
            await clock.wait_for_sleepers(1)
            await store.delete("s1")
            await clock.advance(1)
            assert clock.sleepers == 0
            await store.create("s2", ttl=5)
            await clock.wait_for_sleepers(1)
            await clock.advance(5)
            assert (await next_event(sub)).session_id == "s2"  # type: ignore[attr-defined]


class TestRepr:
    async def test_the_repr_tells_the_state_at_a_glance(self, store: InMemorySessionStore) -> None:
        await store.create("s1")
        await store.watch("s1")
        assert repr(store) == "<InMemorySessionStore 'test-store' open [sessions 1, watches 1]>"
        await store.close()
        assert "closed" in repr(store)
