"""Fixtures for the store conformance suite: every test runs on every backend.

``make_store(**settings)`` builds a store of the backend under test on a fake
clock and an event bus; on Redis every store of one test shares a fresh key
prefix (so two stores are two hosts sharing sessions) on the worker's
redis-server.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from snakepit.bridge import InMemorySessionStore, SessionStore
from snakepit.events import Event, EventBus
from supertester import FakeClock
from tests.support.redis_server import RedisServer, redis_server_binary, start_redis_server

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

BACKENDS = ["memory", "redis"]
NO_REDIS = (
    "redis-server is not installed on this machine: install it (Debian/Ubuntu: "
    "apt-get install redis-server) to run the Redis store tests; CI installs it in .ci/run"
)


def _need_redis_server() -> None:
    if redis_server_binary() is None:
        if os.environ.get("CI"):
            pytest.fail(f"{NO_REDIS} (CI must run them, not skip them)")
        pytest.skip(NO_REDIS)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server per test process (xdist worker), stopped at the end."""
    _need_redis_server()
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, for tests that kill it."""
    _need_redis_server()
    server = start_redis_server(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


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


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def make_store(
    backend: str,
    clock: FakeClock,
    bus: EventBus,
    redis_prefix: str,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[..., SessionStore]]:
    made: list[SessionStore] = []
    server: RedisServer | None = None
    if backend == "redis":
        server = request.getfixturevalue("redis_server")

    def make(**settings: Any) -> SessionStore:
        settings.setdefault("events", bus)
        settings.setdefault("name", "test-store")
        store: SessionStore
        if server is None:
            store = InMemorySessionStore(settings.pop("clock", clock), **settings)
        else:
            from snakepit.bridge import RedisSessionStore

            settings.setdefault("clock", clock)
            settings.setdefault("prefix", redis_prefix)
            # Redis expires the keys in real time; the fake clock decides when a session is gone.
            settings.setdefault("expiry_grace", 3600.0)
            store = RedisSessionStore(server.url, **settings)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture
def store(make_store: Callable[..., SessionStore]) -> SessionStore:
    return make_store(ttl=60.0)
