"""Hangs and stranded workers: every call ends, and no worker is held by abandoned work.

Real worker processes, no sleeps: each race is driven by barriers and events, and
each wait has a bound, so a regression fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import psutil
import pytest

import snakepit
from snakepit.events import (
    WorkerExited,
    WorkerReady,
    WorkerRecycled,
    WorkerStarting,
    WorkerUnhealthy,
)
from snakepit.testing import assert_no_worker_left, isolated_pool, pool_mailbox
from supertester import FakeClock

if TYPE_CHECKING:
    from pathlib import Path

SHOWCASE = "snakepit.examples.showcase:Showcase"
STREAMS = "snakepit.testing.adapters:Streams"
BOUND = 20.0  # seconds any single wait may take before the test calls it a hang


def _sync_pool(tmp_path: Path, pids: set[int], **options: Any) -> snakepit.SyncPool:
    """A SyncPool with a private registry; the pid of every worker it starts lands in ``pids``."""
    options.setdefault("size", 1)
    pool = snakepit.SyncPool(
        adapter=SHOWCASE,
        heartbeat_interval=None,
        registry_dir=str(tmp_path),
        shutdown_grace=2.0,
        drain_timeout=2.0,
        **options,
    )
    pool.events.add_listener(lambda e: pids.add(e.pid), WorkerReady)
    return pool


def _join_all(threads: list[threading.Thread]) -> list[str]:
    """Join every thread within one shared bound; the names of those still running."""
    end = time.monotonic() + BOUND
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    return [t.name for t in threads if t.is_alive()]


class TestSyncPoolRacingClose:
    THREADS = 50
    TRIALS = 2  # the acceptance run (20 trials) is the same race, repeated

    def _race(self, tmp_path: Path, trial: int) -> Counter[str]:
        """50 threads call a started SyncPool until it refuses them while some call close();
        each ends in a result or PoolClosedError, and none is left blocked."""
        pids: set[int] = set()
        pool = _sync_pool(tmp_path / f"reg{trial}", pids).start()
        go = threading.Barrier(self.THREADS + 1)
        outcomes: list[str] = []

        def caller(role: int) -> None:
            go.wait()
            try:
                while True:  # until the pool refuses: some calls land just as the loop stops
                    if role == 0:
                        pool.execute("ping")
                    elif role == 1:
                        for _ in pool.stream("count", {"n": 3}):
                            pass
                    elif role == 2:
                        pool.start()  # already running: returns; once closing: refused
                        pool.execute("ping")
                    else:
                        pool.close()
                        outcomes.append("closed")
                        return
            except snakepit.PoolClosedError:
                outcomes.append("PoolClosedError")
            except BaseException as exc:  # pragma: no cover - reported by the assertion
                outcomes.append(repr(exc))

        threads = [
            threading.Thread(target=caller, args=(i % 5,), name=f"caller-{i}", daemon=True)
            for i in range(self.THREADS)
        ]
        for t in threads:
            t.start()
        go.wait()
        pool.close()
        hung = _join_all(threads)
        assert not hung, f"trial {trial}: {len(hung)} threads never returned: {hung[:5]}"
        counts = Counter(outcomes)
        assert set(counts) <= {"closed", "PoolClosedError"}, counts
        assert sum(counts.values()) == self.THREADS
        assert_no_worker_left(pids)
        return counts

    def test_no_thread_hangs_when_fifty_threads_race_close(self, tmp_path: Path) -> None:
        """Calls, streams, start() and close() from 50 threads, racing close(): 0 hung."""
        for trial in range(self.TRIALS):
            self._race(tmp_path, trial)

    def test_close_while_starting_stops_the_start(self, tmp_path: Path) -> None:
        """close() from another thread while start() is under way: start() fails with
        PoolClosedError, close() returns, and no worker process is left."""
        pids: set[int] = set()
        pool = _sync_pool(tmp_path, pids)
        starting = threading.Event()
        pool.events.add_listener(lambda _: starting.set(), WorkerStarting)
        outcome: list[BaseException | None] = []

        def start() -> None:
            try:
                pool.start()
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        starter = threading.Thread(target=start, daemon=True)
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        starter.start()
        assert starting.wait(BOUND)
        pool.close()
        assert not _join_all([starter])
        assert len(outcome) == 1 and isinstance(outcome[0], snakepit.PoolClosedError), outcome
        with pytest.raises(snakepit.PoolClosedError, match="closed"):
            pool.execute("ping")
        with pytest.raises(snakepit.PoolClosedError, match="closed"):
            pool.start()
        started = {p.pid for p in psutil.Process().children(recursive=True)} - before
        assert_no_worker_left(pids | started)  # waits (bounded) for each to be gone


class TestTimeoutsNoClockCanHonour:
    async def test_inf_and_huge_timeouts_mean_no_deadline_and_nan_is_refused(self) -> None:
        """execute()/stream() with math.inf, 1e308 or 1e10 run with no deadline on the same
        worker; NaN, 0, negatives and non-numbers fail typed before anything is sent."""
        async with isolated_pool(size=1) as pool:
            box = pool_mailbox(pool)
            pid = pool.workers()[0].pid
            for timeout in (math.inf, 1e308, 1e10):
                assert await pool.execute("ping", timeout=timeout) == {"status": "pong"}
                chunks = [c async for c in pool.stream("count", {"n": 2}, timeout=timeout)]
                assert chunks == [{"i": 0}, {"i": 1}]
            for bad in (math.nan, 0, -1.0, -math.inf, True, "5"):
                with pytest.raises(snakepit.RequestError, match="timeout of 'ping' must be"):
                    await pool.execute("ping", timeout=bad)
                with pytest.raises(snakepit.RequestError, match="timeout of 'count' must be"):
                    await anext(pool.stream("count", {"n": 1}, timeout=bad))
            assert [w.pid for w in pool.workers()] == [pid]
            assert not [e for e in box.history if isinstance(e, WorkerExited | WorkerUnhealthy)]
            assert pool.stats().timeouts == 0

    async def test_huge_timeouts_in_the_config_do_not_kill_healthy_workers(self) -> None:
        """A pool whose timeout and heartbeat_timeout are 1e308: calls run and a heartbeat
        passes, on the same worker. The timeout option takes math.inf too, not NaN."""
        clock = FakeClock()
        async with isolated_pool(
            timeout=1e308, heartbeat_interval=5.0, heartbeat_timeout=1e308, clock=clock
        ) as pool:
            box = pool_mailbox(pool)
            pid = pool.workers()[0].pid
            assert await pool.execute("ping") == {"status": "pong"}
            await clock.wait_for_sleepers(1)
            await clock.advance(5.0)  # one heartbeat, with a deadline no clock can honour
            await clock.wait_for_sleepers(1)  # the maintenance loop is back asleep: it is done
            assert await pool.execute("ping") == {"status": "pong"}
            assert [w.pid for w in pool.workers()] == [pid]
            assert not [e for e in box.history if isinstance(e, WorkerExited | WorkerUnhealthy)]
        assert snakepit.Pool(adapter=SHOWCASE, timeout=math.inf).config.timeout == math.inf
        with pytest.raises(ValueError, match="invalid Pool option timeout=nan"):
            snakepit.Pool(adapter=SHOWCASE, timeout=math.nan)


HOST_WITH_BAD_TOOLS = textwrap.dedent(
    """
    import asyncio, json, sys
    import snakepit

    KINDS = ("exit", "interrupt", "cancel", "close", "stop")

    def make(kind):
        return {"exit": SystemExit(3), "interrupt": KeyboardInterrupt(),
                "cancel": asyncio.CancelledError(), "close": GeneratorExit(),
                "stop": StopIteration()}[kind]

    async def main():
        async with snakepit.Pool(adapter="snakepit.examples.showcase:Showcase", size=1,
                                 registry_dir=sys.argv[1], heartbeat_interval=None,
                                 shutdown_grace=2.0) as pool:
            for kind in KINDS:
                def tool(kind=kind):
                    raise make(kind)
                async def atool(kind=kind):
                    raise make(kind)
                pool.register_host_tool(f"sync_{kind}", tool)
                pool.register_host_tool(f"async_{kind}", atool)
            pid = pool.workers()[0].pid
            for kind in KINDS:
                for name in (f"sync_{kind}", f"async_{kind}"):
                    try:
                        await pool.execute("call_host", {"name": name}, timeout=600)
                        outcome = {"error": None}
                    except BaseException as exc:
                        outcome = {"error": type(exc).__name__, "tool": getattr(exc, "tool", None),
                                   "message": str(exc).split("\\n", 1)[0]}
                    print(json.dumps(outcome), flush=True)
            print(json.dumps({"same_worker": [w.pid for w in pool.workers()] == [pid]}))

    asyncio.run(main())
    """
)


class TestHostToolsRaisingBaseException:
    def test_the_caller_gets_host_tool_error_and_the_host_exits(self, tmp_path: Path) -> None:
        """Host tools (sync and async) that raise SystemExit, KeyboardInterrupt,
        CancelledError, GeneratorExit or StopIteration: each call from worker code ends at
        once in HostToolError naming the tool and the exception, the worker stays, and the
        host process then exits cleanly."""
        host = subprocess.run(
            [sys.executable, "-c", HOST_WITH_BAD_TOOLS, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=BOUND,  # a call left unanswered (600 s deadline) or a hang on exit fails here
            check=False,
        )
        assert host.returncode == 0, host.stderr[-3000:]
        *outcomes, last = [json.loads(line) for line in host.stdout.splitlines()]
        assert last == {"same_worker": True}
        expected = {
            "exit": "SystemExit",
            "interrupt": "KeyboardInterrupt",
            "cancel": "Cancelled",
            "close": "GeneratorExit",
            "stop": "StopIteration",
        }
        assert len(outcomes) == 2 * len(expected)
        for outcome, name in zip(
            outcomes, [f"{m}_{k}" for k in expected for m in ("sync", "async")], strict=True
        ):
            assert outcome["error"] == "HostToolError", outcome
            assert outcome["message"].startswith(f"host tool {name!r} raised "), outcome
            assert expected[name.split("_")[1]] in outcome["message"], outcome


class TestAbandonedStreams:
    async def test_closed_streams_of_blocking_generators_do_not_strand_workers(self) -> None:
        """Streams whose sync generator blocks between chunks, closed early (aclose, or the
        consumer's task cancelled), on workers with one tool thread: each worker is
        recycled, and afterwards every slot serves sync generators with no deadline."""
        async with isolated_pool(STREAMS, size=2, threads=1, shutdown_grace=0.2) as pool:
            box = pool_mailbox(pool)
            closed = pool.stream("stall_after", {"n": 1}, timeout=None)
            assert await anext(closed) == 0
            first = asyncio.Event()

            async def consume() -> None:
                async for _ in pool.stream("stall_after", {"n": 1}, timeout=None):
                    first.set()

            task = asyncio.ensure_future(consume())
            await asyncio.wait_for(first.wait(), BOUND)
            await closed.aclose()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            recycled = {(await box.assert_receive(WorkerRecycled, BOUND)).worker_id for _ in "ab"}
            assert recycled == {"w1", "w2"}
            for _ in "ab":
                await box.assert_receive(WorkerReady, BOUND)

            async def collect() -> list[object]:
                return [c async for c in pool.stream("blobs", {"n": 2, "size": 1}, timeout=None)]

            results = await asyncio.wait_for(asyncio.gather(*(collect() for _ in range(4))), BOUND)
            assert results == [[b"\x00", b"\x01"]] * 4
            stats = pool.stats()
            assert (stats.recycled, stats.live_workers, stats.busy) == (2, 2, 0)

    async def test_a_cooperative_generator_closed_early_keeps_its_worker(self) -> None:
        """A generator that stops at its next chunk frees its worker when its stream is
        closed early: the worker is not replaced."""
        async with isolated_pool(size=1) as pool:
            box = pool_mailbox(pool)
            pid = pool.workers()[0].pid
            for _ in range(3):
                stream = pool.stream("count", {"n": 10**6}, timeout=None)
                assert await anext(stream) == {"i": 0}
                await stream.aclose()
            assert await pool.execute("pid", timeout=BOUND) == pid
            assert not [e for e in box.history if isinstance(e, WorkerRecycled | WorkerExited)]

    async def test_an_expired_stream_frees_its_worker_while_its_consumer_keeps_it(self) -> None:
        """A consumer reads one chunk, breaks out without aclose() and keeps the generator:
        at the stream's deadline its worker is freed (a queued call runs on it), and the
        kept generator raises ExecutionTimeoutError when read again."""
        async with isolated_pool(size=1) as pool:
            pid = pool.workers()[0].pid
            kept = pool.stream("count", {"n": 10**6}, timeout=0.3)
            async for chunk in kept:
                assert chunk == {"i": 0}
                break
            assert pool.stats().busy == 1
            assert await asyncio.wait_for(pool.execute("pid", timeout=BOUND), BOUND) == pid
            with pytest.raises(snakepit.ExecutionTimeoutError, match="held it without reading"):
                await anext(kept)
            await kept.aclose()
            stats = pool.stats()
            assert (stats.timeouts, stats.busy, stats.live_workers) == (1, 0, 1)


class TestToolsRaisingBaseException:
    async def test_each_call_ends_in_tool_error_and_the_worker_stays(self) -> None:
        """Worker tools of every kind raising SystemExit, KeyboardInterrupt, GeneratorExit,
        StopIteration or their own CancelledError: each call (with no deadline) ends at once
        in ToolError, and the worker is the same process afterwards."""
        kinds = ("SystemExit", "KeyboardInterrupt", "GeneratorExit", "StopIteration")
        async with isolated_pool("snakepit.testing.adapters:RaisesBaseExceptions") as pool:
            pid = await pool.execute("pid")
            for kind in (*kinds, "CancelledError"):
                for tool in ("sync", "coroutine"):
                    with pytest.raises(snakepit.ToolError, match=f"tool {tool!r} raised") as info:
                        await asyncio.wait_for(
                            pool.execute(tool, {"kind": kind}, timeout=None), BOUND
                        )
                    assert kind in str(info.value), info.value
                for tool in ("generator", "async_generator"):
                    got: list[object] = []

                    async def consume(
                        tool: str = tool, kind: str = kind, got: list[object] = got
                    ) -> None:
                        async for chunk in pool.stream(tool, {"kind": kind}, timeout=None):
                            got.append(chunk)

                    with pytest.raises(snakepit.ToolError, match=f"tool {tool!r} raised"):
                        await asyncio.wait_for(consume(), BOUND)
                    assert got == [0]
            assert await pool.execute("pid") == pid
            assert pool.stats().busy == 0
