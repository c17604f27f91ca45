"""In-process workers: the pool's logic without processes, for fast unit tests.

``Pool(adapter=..., worker_factory=in_process_workers())`` runs every worker
inside the test's own process: the real worker code of the local transport on
threads (:mod:`snakepit.testing._inprocess`), over a socket pair, with the
host's real ``LocalTransport`` on the other end. Tool lookup, argument
checks, contexts and calls to the host, streams, cancellation, deadlines and
errors are those of a real worker, because the same code answers. A
``MockWorker`` can be made to crash, hang or refuse to start on demand, so
supervision logic is testable in milliseconds. Use real workers
(``isolated_pool``) for anything about processes, signals or gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from typing import TYPE_CHECKING

from snakepit.errors import WorkerCrashedError, WorkerStartupError
from snakepit.testing._inprocess import THREADS_GRACE, Gate, Gates, InProcessWorker
from snakepit.worker._base import HandleBase, WorkerState
from snakepit.worker._local import LocalTransport
from snakepit.worker._transport import TransportError

if TYPE_CHECKING:
    from collections.abc import Callable

    from snakepit.clock import Clock
    from snakepit.events import EventBus
    from snakepit.pool._types import WorkerFactory
    from snakepit.worker._handle import WorkerOptions

__all__ = ["MockWorker", "in_process_workers"]

_fake_pids = itertools.count(900_000)
_KILLED = -9
_EXIT_MEANINGS = {3: "the adapter could not be imported", 4: "the adapter's setup() raised"}


class MockWorker(HandleBase):
    """A worker that runs its adapter in this process. Implements the pool's ``WorkerLike``.

    Test controls: :meth:`crash` (as if the process died with ``exit_code``),
    :meth:`hang_next` (the next call blocks until the worker dies), :meth:`hold_next`
    (the next call waits for an event), ``fail_start`` (start raises ``WorkerStartupError``).
    """

    def __init__(
        self,
        worker_id: str,
        options: WorkerOptions,
        *,
        events: EventBus,
        clock: Clock,
        source: str,
        fail_start: bool = False,
    ) -> None:
        super().__init__(worker_id, options, events=events, clock=clock, source=source)
        self.fail_start = fail_start
        self._worker: InProcessWorker | None = None
        self._ended: asyncio.Future[tuple[int, str]] | None = None
        self._gates = Gates()

    async def start(self) -> None:
        """Start the worker's threads and return once it is ready.

        Raises:
            WorkerStartupError: ``fail_start``, or the adapter could not be imported or
                set up (exit code 3 or 4, as a worker process), or no ready within
                ``startup_timeout``.
        """
        loop = asyncio.get_running_loop()
        self._exited = loop.create_future()
        self._starting()
        if self.fail_start:
            self._finish(1, publish=False)
            raise WorkerStartupError(
                f"worker {self.id!r} failed to start (MockWorker fail_start)",
                worker_id=self.id,
                exit_code=1,
                stderr_tail="",
            )
        ended = self._ended = loop.create_future()

        def on_end(code: int, reason: str) -> None:  # on the worker's last thread
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                loop.call_soon_threadsafe(self._worker_ended, ended, code, reason)

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        o = self.options
        transport = self._transport = LocalTransport(
            ours,
            worker_id=self.id,
            max_message_bytes=o.max_message_bytes,
            encoding=o.encoding,
            host=o.host,
        )
        self._worker = InProcessWorker(o, self.id, theirs, on_end, self._gates)
        self._worker.start()
        try:
            async with asyncio.timeout(o.startup_timeout):
                self.describe_result = await transport.ready()
        except BaseException as exc:
            await self._startup_failed(exc)
            raise
        self.pid = next(_fake_pids)
        self._ready(f"inproc:{self.id}", pid=self.pid)

    async def _startup_failed(self, exc: BaseException) -> None:
        """Leave nothing running after a failed start; a ``WorkerStartupError`` says why.

        Raises:
            WorkerStartupError: unless ``exc`` is a cancellation (then it is left to rise).
        """
        assert self._worker is not None and self._ended is not None
        self._worker.kill()
        try:
            code, reason = await asyncio.wait_for(asyncio.shield(self._ended), THREADS_GRACE)
        except TimeoutError:  # stuck in the adapter's setup(): its thread cannot be stopped
            code, reason = _KILLED, "setup() did not return"
        await self.transport.close()
        self._finish(code or _KILLED, publish=False)
        if isinstance(exc, asyncio.CancelledError):
            return
        if isinstance(exc, TimeoutError):
            reason = f"no ready within startup_timeout={self.options.startup_timeout}s"
        meaning = _EXIT_MEANINGS.get(code)
        raise WorkerStartupError(
            f"worker {self.id!r} ({self.options.adapter}) failed to start: exit code "
            f"{self.exit_code}" + (f" ({meaning})" if meaning else "") + f"\n{reason}",
            worker_id=self.id,
            exit_code=self.exit_code,
            stderr_tail=reason,
        ) from (exc if isinstance(exc, TransportError) else None)

    def _worker_ended(self, ended: asyncio.Future[tuple[int, str]], code: int, reason: str) -> None:
        """The worker's threads are over: as a process whose exit was seen."""
        if not ended.done():
            ended.set_result((code, reason))
        self._finish(code, publish=self.state is not WorkerState.STARTING)

    # -- test controls -------------------------------------------------------------------------

    def crash(self, exit_code: int = 1) -> None:
        """Die now, as a process would: calls in flight fail with WorkerCrashedError."""
        self._finish(exit_code, publish=True)
        if self._worker is not None:
            self._worker.kill()

    def hang_next(self) -> None:
        """Make the next call block (in the worker) until this worker dies."""
        self.hold_next()

    def hold_next(self) -> asyncio.Event:
        """Make the next call wait (in the worker) until the returned event is set, then run
        normally; if the worker dies first, the call fails as with any worker's death."""
        gate = Gate()
        self._gates.add(gate)
        return gate

    # -- WorkerLike ------------------------------------------------------------------------------

    def _finish(self, code: int | None, *, publish: bool) -> None:
        if self.state is WorkerState.EXITED:
            return
        self.state = WorkerState.EXITED
        self.exit_code = code
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(code)
        if publish:
            self._publish_exited(code, expected=self._stop_requested)

    async def _crash_error(self, exc: TransportError, tool: str) -> WorkerCrashedError:
        """The error of a call whose channel broke: the worker died (its exit, bounded)."""
        if self._exited is not None and exc.code != "CLOSED":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited), timeout=1.0)
        return WorkerCrashedError(
            f"worker {self.id!r} exited during {tool!r}: exit code {self.exit_code}; the pool "
            "replaces the worker, and the call may be retried",
            worker_id=self.id,
            pid=self.pid,
            exit_code=self.exit_code,
            tool=tool,
        )

    async def stop(self, grace: float | None = None) -> int | None:
        """Stop gracefully (calls in flight may end), killing after ``grace`` seconds.

        Idempotent; returns the exit code.
        """
        grace = self.options.shutdown_grace if grace is None else grace
        worker, ended = self._worker, self._ended
        if worker is None or ended is None:
            self._stop_requested = True
            self._finish(self.exit_code, publish=False)
            return self.exit_code
        if self.state is not WorkerState.EXITED:
            self._stop_requested = True
            self.state = WorkerState.STOPPING
            worker.stop()
            try:
                await asyncio.wait_for(asyncio.shield(ended), grace)
            except TimeoutError:
                self.kill()
        await self.transport.close()
        return self.exit_code

    def kill(self) -> None:
        self._stop_requested = True
        self._finish(_KILLED, publish=True)
        if self._worker is not None:
            self._worker.kill()

    def __repr__(self) -> str:
        return f"<MockWorker {self.id} {self.state.value}>"


def in_process_workers(
    created: list[MockWorker] | None = None, *, fail_start: Callable[[str], bool] | None = None
) -> WorkerFactory:
    """A ``worker_factory`` for ``Pool`` that builds :class:`MockWorker` s.

    Args:
        created: if given, every worker built is appended to it (to reach them in a test).
        fail_start: a predicate on the worker id; true makes that worker fail to start.
    """

    def factory(
        worker_id: str, options: WorkerOptions, *, events: EventBus, clock: Clock, source: str
    ) -> MockWorker:
        worker = MockWorker(
            worker_id,
            options,
            events=events,
            clock=clock,
            source=source,
            fail_start=bool(fail_start and fail_start(worker_id)),
        )
        if created is not None:
            created.append(worker)
        return worker

    return factory
