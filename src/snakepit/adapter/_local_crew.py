"""The threads of a local worker: the crew that reads and runs sync tools, and the async loop."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Coroutine

    from snakepit.adapter._local_calls import Call

__all__ = ["Crew", "Job", "LoopThread"]


class Job(NamedTuple):
    """A synchronous call to run on a crew thread."""

    call_id: int
    call: Call
    run: Callable[[], None]


class Crew:
    """The threads that read the channel and run synchronous tools: leader/followers.

    One thread at a time (the leader) reads frames. When it gets a synchronous call it
    runs the call itself, with no hop to another thread, keeping the reading duty
    *lazily*: a follower waiting with a short timeout takes the duty over if the call
    is still running at its next tick (``_TICK``), so ``PING`` is still answered while
    a tool runs or hangs, and a short call costs no thread wake-up at all. The ticking
    stops a second after the last call. At most ``limit`` threads run calls at once,
    and the crew has one thread more than that, so a reader is always available.
    """

    _TICK = 0.005
    _KEEP_TICKING = 1.0

    def __init__(self, limit: int, read: Callable[[], list[Job] | None]) -> None:
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._idle = threading.Condition(lock)
        self._jobs: collections.deque[Job] = collections.deque()
        self._leading = False  # a thread holds the reading duty (reading, or lazily)
        self._lazy = False  # ... and is running a call instead of reading
        self._lazy_seq = 0
        self._last_lazy = 0.0
        self._timed = 0  # followers in a timed wait
        self._running = 0
        self._limit = limit
        self._read = read
        self._done = False
        self._threads: list[threading.Thread] = []

    def serve(self, threads: int) -> None:
        """Run the crew on this thread and ``threads`` more; return when the channel closes."""
        for i in range(threads):
            thread = threading.Thread(target=self._follow, name=f"tool-{i}", daemon=True)
            self._threads.append(thread)
            thread.start()
        self._follow()

    def join(self, timeout: float) -> None:
        """Wait (bounded) for the crew's other threads to end, once :meth:`serve` returned."""
        until = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, until - time.monotonic()))

    def _wait(self) -> bool:
        """Wait as a follower (the condition is held); True when this thread took the
        reading duty over from a leader whose call outlived a tick."""
        now = time.monotonic()
        if not (self._lazy or now - self._last_lazy < self._KEEP_TICKING):
            self._cond.wait()
            return False
        seen = self._lazy_seq
        self._timed += 1
        try:
            self._cond.wait(self._TICK)
        finally:
            self._timed -= 1
        if self._lazy and self._lazy_seq == seen and not self._done:
            self._lazy = False  # the leader's call outlived a tick: read in its place
            return True
        return False

    def _follow(self) -> None:
        cond = self._cond
        lead = False
        while True:
            job: Job | None = None
            lazy_seq = 0  # the lazy turn this thread's call runs in, if any
            if not lead:
                with cond:
                    while True:
                        if self._done:
                            return
                        if self._jobs and self._running < self._limit:
                            job = self._jobs.popleft()
                            self._running += 1
                            break
                        if not self._leading:
                            self._leading = lead = True
                            break
                        if self._wait():
                            lead = True
                            break
            if job is None:
                try:
                    jobs = self._read()
                except BaseException:
                    jobs = None
                with cond:
                    if jobs is None:
                        self._done = True
                        self._leading = False
                        cond.notify_all()
                        return
                    if not jobs or self._running >= self._limit:
                        self._jobs.extend(jobs)
                        if jobs:
                            cond.notify(len(jobs))
                        continue  # keep reading
                    job = jobs[0]
                    self._running += 1
                    if len(jobs) > 1:
                        self._jobs.extend(jobs[1:])
                        cond.notify(len(jobs))  # takers for the others, and a new reader
                        self._leading = lead = False
                    else:
                        self._lazy = True
                        self._lazy_seq += 1
                        lazy_seq = self._lazy_seq
                        self._last_lazy = time.monotonic()
                        lead = False
                        if not self._timed:
                            cond.notify()  # a follower to tick while this call runs
            try:
                job.run()  # a cancelled job only ends its call
            finally:
                with cond:
                    self._running -= 1
                    if lazy_seq and self._lazy and self._lazy_seq == lazy_seq:
                        self._lazy = False
                        lead = True  # nobody took the reading duty over: resume it
                    if self._jobs and self._running < self._limit:
                        cond.notify()
                    if not self._running:
                        self._idle.notify_all()

    def drain(self, timeout: float) -> None:
        """Wait (bounded) until no call runs; queued ones are dropped."""
        with self._cond:
            self._jobs.clear()
            self._idle.wait_for(lambda: not self._running, timeout)


class LoopThread:
    """The event loop for ``async`` tools, started on first use."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                import asyncio  # lazily: a worker without async tools never loads it

                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    try:
                        loop.run_forever()
                    finally:
                        loop.run_until_complete(loop.shutdown_asyncgens())
                        loop.close()

                self._thread = threading.Thread(target=run, name="snakepit-async", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        import asyncio  # lazily: a worker without async tools never loads it

        return asyncio.run_coroutine_threadsafe(coro, self.get())

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None) -> Any:
        return self.submit(coro).result(timeout)

    def close(self, timeout: float) -> None:
        """Cancel what still runs on the loop, stop it and wait (bounded) for its thread.

        A worker process never needs this (its end ends the thread); a worker that runs
        inside another process (the in-process test worker) must leave no thread behind.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def cancel_all() -> None:
            import asyncio

            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)

        # A task that ignores cancellation keeps the loop: its thread stays, a daemon.
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            self.run(cancel_all(), timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
