"""An in-process host bridge for the bridge service and host client tests: real gRPC, no workers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from snakepit.bridge import InMemorySessionStore
from snakepit.bridge._host_tools import HostToolRegistry
from snakepit.bridge._service import HostBridge
from snakepit.worker._runtime import make_runtime_dir, remove_runtime_dir
from supertester import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@dataclass
class Host:
    """The host side of one test: a store on a fake clock, its host tools, the bridge serving both."""

    clock: FakeClock
    store: InMemorySessionStore
    tools: HostToolRegistry
    bridge: HostBridge

    @property
    def address(self) -> str:
        assert self.bridge.address is not None
        return self.bridge.address


async def start_host(transport: str = "unix") -> tuple[Host, Path]:
    clock = FakeClock()
    store = InMemorySessionStore(clock, ttl=60.0, max_sessions=5, name="test-host")
    tools = HostToolRegistry("test-host")
    bridge = HostBridge(store, tools, name="test-host", transport=transport)
    runtime = make_runtime_dir("bridge")
    await bridge.start(runtime)
    return Host(clock, store, tools, bridge), runtime


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    """A host bridge on a Unix socket, with session ``s1`` already created."""
    h, runtime = await start_host()
    await h.store.create("s1")
    try:
        yield h
    finally:
        await h.store.close()
        await h.bridge.stop(grace=None)
        remove_runtime_dir(runtime)
