"""Fixtures for the session store tests: a fake clock, an event bus and a store on both."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from snakepit.bridge import InMemorySessionStore
from snakepit.events import Event, EventBus
from supertester import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bus() -> EventBus:
    return EventBus("test-bus")


@pytest.fixture
def published(bus: EventBus) -> list[Event]:
    """Every event published on ``bus``, in order."""
    events: list[Event] = []
    bus.add_listener(events.append)
    return events


@pytest.fixture
async def store(clock: FakeClock, bus: EventBus) -> AsyncIterator[InMemorySessionStore]:
    store = InMemorySessionStore(clock, ttl=60.0, events=bus, name="test-store")
    yield store
    await store.close()
