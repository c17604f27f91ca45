"""Standalone worker processes for protocol-level tests (the seed's ``with_python_server``)."""

from __future__ import annotations

import itertools
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from snakepit.worker._handle import WorkerHandle, WorkerOptions
from snakepit.worker._runtime import make_runtime_dir, remove_runtime_dir

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from snakepit.events import EventBus

__all__ = ["SHOWCASE", "default_transport", "with_python_server"]

SHOWCASE = "snakepit.examples.showcase:Showcase"
# The transport test workers and pools use when a test does not name one; a fixture
# parametrised over transports sets it (None: the library's default).
default_transport: str | None = None
_ids = itertools.count(1)


@asynccontextmanager
async def with_python_server(
    adapter: str = SHOWCASE, *, events: EventBus | None = None, **options: Any
) -> AsyncIterator[WorkerHandle]:
    """Start one real worker process, yield its ready handle, and stop it (group and all) at exit.

    ``options`` are :class:`~snakepit.worker.WorkerOptions` fields (``transport="tcp"``,
    ``startup_timeout=...``, ``env=...``).

    Raises:
        WorkerStartupError: the worker did not become ready.
    """
    if default_transport is not None:
        options.setdefault("transport", default_transport)
    runtime = make_runtime_dir("srv")
    handle = WorkerHandle(
        f"srv{os.getpid()}-{next(_ids)}",
        WorkerOptions(adapter=adapter, runtime_dir=runtime, **options),
        events=events,
    )
    try:
        await handle.start()
        yield handle
    finally:
        try:
            await handle.stop(grace=min(2.0, handle.options.shutdown_grace))
        finally:
            remove_runtime_dir(runtime)
