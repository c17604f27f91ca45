"""An in-process worker: the real local worker code on threads of the test's process.

The worker side of the local transport (:mod:`snakepit.adapter._local_worker`:
its reader, tool crew, streams, cancellation and calls to the host) runs on
threads here, on one end of a socket pair; the host's real ``LocalTransport``
holds the other end. So a fake worker answers with the very code a worker
process runs (as grpclib's ``ChannelFor`` serves a real server over an
in-memory channel): the two cannot drift apart. What a process would do by
itself is simulated: its death (the socket shut and its threads ended), and
the test controls of :class:`~snakepit.testing.MockWorker` (a call held at a
:class:`Gate`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import socket
import threading
from typing import TYPE_CHECKING, Any

from snakepit.adapter._local import StartFailed, set_up, tear_down
from snakepit.adapter._local_crew import LoopThread
from snakepit.adapter._local_link import Conn
from snakepit.adapter._local_worker import LocalWorker
from snakepit.adapter._main import load_adapter
from snakepit.codec import Encoding

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from snakepit.adapter._local_calls import Call
    from snakepit.worker._handle import WorkerOptions

__all__ = ["THREADS_GRACE", "Gate", "Gates", "InProcessWorker", "WorkerGone"]

THREADS_GRACE = 2.0  # real seconds the worker's threads get to end once it stops
_DRAIN = 1.0  # what a worker process gives its calls in flight on a graceful stop


class WorkerGone(BaseException):
    """Raised in a call held at a gate when its worker died: the call never runs."""


class Gate(asyncio.Event):
    """An ``asyncio.Event`` that also lets a held call run in the worker once it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: concurrent.futures.Future[None] = concurrent.futures.Future()

    def set(self) -> None:
        super().set()
        if not self.opened.done():
            self.opened.set_result(None)

    def abort(self) -> None:
        """The worker died: the held call ends without running."""
        if not self.opened.done():
            self.opened.set_exception(WorkerGone())


class Gates:
    """The gates the next calls wait at, and those calls waiting now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: collections.deque[Gate] = collections.deque()
        self._waiting: set[Gate] = set()

    def add(self, gate: Gate) -> None:
        with self._lock:
            self._next.append(gate)

    def take(self) -> Gate | None:
        with self._lock:
            if not self._next:
                return None
            gate = self._next.popleft()
            self._waiting.add(gate)
            return gate

    def passed(self, gate: Gate) -> None:
        with self._lock:
            self._waiting.discard(gate)

    def pending(self) -> bool:
        """A gate is set up for a next call, or a call waits at one now."""
        with self._lock:
            return bool(self._next or self._waiting)

    def abort(self) -> None:
        with self._lock:
            gates = [*self._next, *self._waiting]
            self._next.clear()
        for gate in gates:
            gate.abort()


def _held(run: Callable[[], Any], kind: str, gate: Gate, gates: Gates) -> Callable[[], Any]:
    """``run``, of a tool of ``kind``, waiting at ``gate`` first (without blocking a loop)."""

    def wait() -> None:
        try:
            gate.opened.result()
        finally:
            gates.passed(gate)

    async def await_() -> None:
        try:
            await asyncio.wrap_future(gate.opened)
        finally:
            gates.passed(gate)

    if kind == "async":

        async def coroutine() -> Any:
            await await_()
            return await run()

        return coroutine
    if kind == "async_generator":

        async def generator() -> AsyncIterator[Any]:
            await await_()
            made = run()
            try:
                async for chunk in made:
                    yield chunk
            finally:
                await made.aclose()

        return generator

    def call() -> Any:
        wait()
        return run()

    return call


class _GatedWorker(LocalWorker):
    """The local worker, whose next calls may wait at the test's gates before they run."""

    def __init__(self, *args: Any, gates: Gates, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gates = gates

    def _prepare(self, call: Call) -> Callable[[], Any]:
        run = super()._prepare(call)
        gate = self._gates.take()
        return run if gate is None else _held(run, call.info.kind, gate, self._gates)


class InProcessWorker:
    """The worker side of one in-process worker, on its end of the socket pair.

    Args:
        options: the pool's options for the worker (adapter, threads, message limit...).
        worker_id: the worker's id.
        sock: the worker's end of the channel.
        ended: called on the worker's last thread with its exit code (3: the adapter
            could not be imported, 4: its setup raised) and the reason it gave.
        gates: where the test's gates for the next calls are.
    """

    def __init__(
        self,
        options: WorkerOptions,
        worker_id: str,
        sock: socket.socket,
        ended: Callable[[int, str], None],
        gates: Gates,
    ) -> None:
        self._args = argparse.Namespace(
            adapter=options.adapter,
            worker_id=worker_id,
            threads=options.threads,
            allow_pickle=options.encoding is Encoding.PICKLE,
            max_message_bytes=options.max_message_bytes,
        )
        self._sock = sock
        self._ended = ended
        self.gates = gates
        self._killed = False
        self._thread = threading.Thread(
            target=self._main, name=f"snakepit-inprocess-{worker_id}", daemon=True
        )

    def start(self) -> None:
        """Start serving on a thread of its own (the process's main thread, as it were)."""
        self._thread.start()

    def _main(self) -> None:
        args = self._args
        loop = LoopThread()
        code, reason = 0, ""
        adapter = None
        try:
            adapter = set_up(args.adapter, load_adapter, loop)
            worker = _GatedWorker(
                adapter,
                Conn(self._sock, args.max_message_bytes),
                adapter_path=args.adapter,
                worker_id=args.worker_id,
                threads=args.threads,
                allow_pickle=args.allow_pickle,
                loop=loop,
                gates=self.gates,
            )
            worker.announce()
            try:
                worker.run(args.threads)
            finally:
                if self.gates.pending():
                    # A call held at a gate cannot end by itself: the worker goes now, as a
                    # worker process does once its calls had their time.
                    self._cut()
                worker.drain(_DRAIN)
                worker.join(THREADS_GRACE)
        except StartFailed as failed:
            code, reason = failed.code, failed.reason
        finally:
            if adapter is not None and not self._killed:  # a killed process runs nothing more
                tear_down(adapter, args.adapter, loop)
            loop.close(THREADS_GRACE)
            # Closed only now: the host reads the channel's end as the worker's.
            self._sock.close()
            self._ended(code, reason)

    def stop(self) -> None:
        """Stop gracefully, as on SIGTERM: no more reading, calls in flight may end."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RD)

    def kill(self) -> None:
        """Die now, as on SIGKILL: the channel ends (nothing more is sent on it, so the
        host's calls in flight fail), the calls held at gates never run, and the adapter's
        ``teardown()`` does not run either."""
        self._killed = True
        self._cut()

    def _cut(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self.gates.abort()
