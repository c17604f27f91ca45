"""A worker whose process the host did not start and cannot signal: the attached handle.

A worker on another machine (``Pool(remote_workers=[...])``, served by ``snakepit
worker``) or in a Ray actor (``launcher="ray"``) is reached over TCP like any
worker, but its process is not a child of the host: there is no pid to signal, no
stderr to read, no exit status to reap. :class:`AttachedWorkerHandle` gives the pool
the same interface as :class:`~snakepit.worker._handle.WorkerHandle` (states, calls,
ping, stop, kill, ``wait_exited``) over a :class:`Placement`, which knows where the
process is and what can be done to it:

- ``start()`` makes the process exist if it can (a Ray actor) and says where it
  listens (an :class:`Endpoint`: address, token, TLS credentials);
- ``wait_lost()`` returns when the placement itself learns the process is gone (Ray
  reports a dead actor or node); a remote worker has no such signal, so its loss is
  found by a call whose channel breaks or a heartbeat that is not answered;
- ``stop()`` / ``kill()`` end it where that is possible (Ray), or only detach.

A lost worker ends its handle (state ``EXITED``, exit code unknown): calls in flight
fail with ``WorkerCrashedError``, a ``WorkerLost`` event is published, and the
pool's supervision retries the slot with its usual backoff and restart intensity.
The pid the pool sees is None (the remote pid is ``remote_pid``): nothing local may
be signalled or recorded in the orphan registry for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from snakepit.errors import (
    ExecutionTimeoutError,
    WorkerAuthenticationError,
    WorkerCrashedError,
    WorkerStartupError,
)
from snakepit.events import WorkerLost
from snakepit.worker._base import HandleBase, WorkerState
from snakepit.worker._transport import GrpcTransport, TransportError

if TYPE_CHECKING:
    import grpc

    from snakepit.clock import Clock
    from snakepit.events import EventBus
    from snakepit.worker._startup import WorkerOptions
    from snakepit.worker._transport import PingResult

__all__ = ["AttachedWorkerHandle", "Endpoint", "Placement"]


@dataclass(frozen=True)
class Endpoint:
    """Where an attached worker listens, and what the pool presents to it."""

    address: str
    token: str | None
    credentials: grpc.ChannelCredentials | None = None


class Placement(Protocol):
    """Where one attached worker runs; one instance per worker start."""

    #: True when ``start()`` makes a new process (Ray); False when it can only reconnect.
    restartable: bool
    #: seconds a broken call waits for ``wait_lost()`` to say why (0: it never says)
    loss_grace: float

    def describe(self) -> str:
        """``"remote worker at host:port"``, ``"Ray actor ... on node ..."``: for messages."""
        ...

    async def start(self, worker_id: str, timeout: float) -> Endpoint:
        """Make the worker reachable and say where.

        Raises:
            WorkerStartupError: it cannot be started or placed (the reason in the message).
        """
        ...

    async def wait_lost(self) -> str | None:
        """Return a reason once the process is known to be gone; None at once if this
        placement cannot tell (a loss is then found by calls and heartbeats)."""
        ...

    async def stop(self, grace: float) -> None:
        """End the process gracefully where possible (never raises)."""
        ...

    def kill(self) -> None:
        """End the process now where possible, without waiting (never raises)."""
        ...


class AttachedWorkerHandle(HandleBase):
    """A worker the host reaches over TCP but did not spawn; see the module docstring."""

    def __init__(
        self,
        worker_id: str,
        options: WorkerOptions,
        placement: Placement,
        *,
        events: EventBus | None = None,
        clock: Clock | None = None,
        source: str = "",
    ) -> None:
        super().__init__(worker_id, options, events=events, clock=clock, source=source)
        self.placement = placement
        self.remote_pid: int | None = None
        self.lost_reason: str | None = None
        self._watch: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<AttachedWorkerHandle {self.id} {self.placement.describe()} {self.state.value}>"

    # -- start ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Reach the worker (starting it where the placement can) and ask for its tools.

        Raises:
            WorkerAuthenticationError: the worker refused the pool's token.
            WorkerStartupError: it could not be placed, reached or described within
                ``startup_timeout``, or it serves another adapter than the pool's.
        """
        o = self.options
        where = self.placement.describe()
        self._exited = asyncio.get_running_loop().create_future()
        self._starting()
        try:
            async with asyncio.timeout(o.startup_timeout):
                endpoint = await self.placement.start(self.id, o.startup_timeout)
                where = self.placement.describe()
                self._transport = GrpcTransport(
                    endpoint.address,
                    worker_id=self.id,
                    max_message_bytes=o.max_message_bytes,
                    token=endpoint.token,
                    encoding=o.encoding,
                    credentials=endpoint.credentials,
                )
                self.describe_result = await self._transport.describe(timeout=o.startup_timeout)
        except BaseException as exc:
            self.placement.kill()
            await self._end(expected=True)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self._startup_error(exc, where) from exc
        served = self.describe_result.adapter
        if served and served != o.adapter:
            self.placement.kill()
            await self._end(expected=True)
            raise WorkerStartupError(
                f"worker {self.id!r}: the {where} serves adapter {served!r}, but the pool's "
                f"adapter is {o.adapter!r}; start it with --adapter {o.adapter}",
                worker_id=self.id,
                exit_code=None,
                stderr_tail="",
            )
        self.remote_pid = self.describe_result.pid
        self._watch = self._tasks.spawn(self._watch_placement(), "placement-watch")
        self._ready(endpoint.address, pid=0)

    def _startup_error(self, exc: BaseException, where: str) -> WorkerStartupError:
        if isinstance(exc, WorkerStartupError):
            return exc
        if isinstance(exc, TransportError) and exc.code == "UNAUTHENTICATED":
            return WorkerAuthenticationError(
                f"worker {self.id!r}: the {where} refused the pool's token; give the pool "
                "the token the worker was started with (token= or token_file=, the same "
                "as the worker's --token-file)",
                worker_id=self.id,
                address=self.placement.describe(),
                exit_code=None,
                stderr_tail="",
            )
        if isinstance(exc, TimeoutError | ExecutionTimeoutError):
            reason = f"no answer within startup_timeout={self.options.startup_timeout}s"
        else:
            reason = str(exc)
        return WorkerStartupError(
            f"worker {self.id!r}: cannot reach the {where}: {reason}; check that it runs and "
            "listens there, that the address is reachable from this host, and (with TLS) "
            "that tls_ca= holds the CA that signed its certificate",
            worker_id=self.id,
            exit_code=None,
            stderr_tail="",
        )

    async def _watch_placement(self) -> None:
        reason = await self.placement.wait_lost()
        if reason is not None and self.state is WorkerState.READY:
            await self._lose(reason)

    # -- loss and end --------------------------------------------------------------------------

    def _lost(self, reason: str) -> None:
        """Record (once) that the worker was lost, and say so on the bus."""
        if self.lost_reason is not None or self._stop_requested:
            return
        self.lost_reason = reason
        self._log.warning("worker %s lost: %s: %s", self.id, self.placement.describe(), reason)
        self._events.publish(
            WorkerLost(
                source=self._source,
                at=self._clock.monotonic(),
                worker_id=self.id,
                address=self.address or "",
                reason=reason,
                restartable=self.placement.restartable,
            )
        )

    async def _lose(self, reason: str) -> None:
        self._lost(reason)
        self.placement.kill()  # whatever is left of it (an actor whose worker died) goes too
        await self._end(expected=False)

    async def _end(self, *, expected: bool) -> None:
        """Detach: no more calls, the channel closed, waiters of ``wait_exited`` released."""
        was_ready = self.state in (WorkerState.READY, WorkerState.STOPPING)
        self.state = WorkerState.EXITED
        if self._transport is not None:
            # A grace lets calls in flight end with the channel's own error (a crash).
            await self._transport.close(grace=0.5)
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(None)
            if was_ready:
                self._publish_exited(None, expected=expected)
        watch = self._watch
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
            await asyncio.wait((watch,))

    def _advice(self) -> str:
        if self.placement.restartable:
            return "the pool starts a replacement, and the call may be retried"
        return (
            "the pool cannot restart a process on another machine: restart `snakepit worker` "
            "there; the pool keeps trying to reconnect the slot with backoff"
        )

    async def _crash_error(self, exc: TransportError, tool: str) -> WorkerCrashedError:
        if exc.code != "CLOSED" and self.state is WorkerState.READY:
            grace = self.placement.loss_grace
            if grace > 0 and self._watch is not None:
                # The placement may know more (Ray: the actor or its node died).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._watch), timeout=grace)
            await self._lose(f"the channel broke during {tool!r}: {exc}")
        reason = self.lost_reason or str(exc)
        return WorkerCrashedError(
            f"worker {self.id!r} ({self.placement.describe()}) was lost during {tool!r}: "
            f"{reason}; {self._advice()}",
            worker_id=self.id,
            pid=None,
            exit_code=None,
            tool=tool,
        )

    # -- calls ---------------------------------------------------------------------------------

    async def ping(self, *, timeout: float | None = 5.0) -> PingResult:
        """A heartbeat: the worker answers, or it is lost.

        Raises:
            ExecutionTimeoutError: no answer within ``timeout`` (the worker is lost).
            WorkerCrashedError: the channel broke (the worker is lost).
        """
        try:
            return await super().ping(timeout=timeout)
        except ExecutionTimeoutError:
            if self.state is WorkerState.READY:
                await self._lose(f"no answer to a heartbeat within {timeout}s")
            raise

    # -- stop ----------------------------------------------------------------------------------

    def kill(self) -> None:
        """Stop using the worker now (a Ray actor is killed; a remote one is only left)."""
        self._stop_requested = True
        if self.state is WorkerState.EXITED:
            return
        self.state = WorkerState.STOPPING
        self.placement.kill()
        self._tasks.spawn(self._end(expected=True), "end")

    async def kill_and_wait(self) -> int | None:
        """Stop using the worker now and wait until the handle has ended."""
        self.kill()
        code = await self.wait_exited()
        await self._tasks.join()
        return code

    async def stop(self, grace: float | None = None) -> int | None:
        """End the worker where possible (Ray), else detach from it; idempotent."""
        grace = self.options.shutdown_grace if grace is None else grace
        self._stop_requested = True
        if self.state is not WorkerState.EXITED:
            self.state = WorkerState.STOPPING
            await self.placement.stop(grace)
        await self._end(expected=True)
        await self._tasks.join()  # an end that kill() started
        return None
