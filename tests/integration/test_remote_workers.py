"""Workers served by hand (`snakepit worker`) and attached by a pool over TCP, with TLS.

Real processes on loopback: the worker is the CLI in a subprocess, the pool attaches it
with the token (and over TLS with a CA made in the test), and a killed worker fails the
calls it ran with WorkerCrashedError and is reported lost, then reconnected.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

import snakepit
from snakepit.cli import main as cli_main
from snakepit.events import RequestDispatched, WorkerLost, WorkerReady
from snakepit.worker import WorkerOptions, WorkerState
from snakepit.worker._attached import AttachedWorkerHandle
from snakepit.worker._remote import RemotePlacement
from tests.support.remote_worker import SHOWCASE, Tls, make_tls, serve, served

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("s3cret-token\n")
    return path


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    return make_tls(tmp_path)


class TestAttach:
    async def test_a_pool_serves_calls_streams_and_sessions_over_tls(
        self, token_file: Path, tls: Tls
    ) -> None:
        """Calls, a stream and a session run on a worker the pool attached over TLS; the
        pool holds no local pid for it, and closing the pool leaves the worker serving."""
        with served(token_file, tls=tls) as worker:
            async with snakepit.Pool(
                adapter=SHOWCASE,
                remote_workers=[worker.address],
                token_file=str(token_file),
                tls_ca=str(tls.ca),
            ) as pool:
                assert await pool.execute("add", {"a": 2, "b": 3}) == 5
                chunks = [c async for c in pool.stream("count", {"n": 5})]
                assert chunks == [{"i": i} for i in range(5)]
                async with pool.session("remote-1") as session:
                    await session.execute("remember", {"key": "k", "value": [1, 2]})
                    assert await session.execute("recall", {"key": "k"}) == [1, 2]
                assert await pool.execute("pid") == worker.proc.pid
                (info,) = pool.workers()
                assert info.pid is None and info.address == worker.address
            assert worker.proc.poll() is None  # the pool only detached

    async def test_a_wrong_token_is_refused_typed(self, token_file: Path, tls: Tls) -> None:
        """A pool with another token gets WorkerAuthenticationError naming the fix."""
        with served(token_file, tls=tls) as worker:
            pool = snakepit.Pool(
                adapter=SHOWCASE,
                remote_workers=[worker.address],
                token="not-the-token",
                tls_ca=str(tls.ca),
            )
            with pytest.raises(
                snakepit.WorkerAuthenticationError, match="refused the pool's token"
            ):
                await pool.start()
            assert pool.state == "closed"

    async def test_a_certificate_from_another_ca_is_not_trusted(
        self, token_file: Path, tls: Tls, tmp_path: Path
    ) -> None:
        """A worker whose certificate the pool's CA did not sign cannot be attached."""
        other = make_tls(tmp_path, "other")
        with served(token_file, tls=tls) as worker:
            pool = snakepit.Pool(
                adapter=SHOWCASE,
                remote_workers=[worker.address],
                token_file=str(token_file),
                tls_ca=str(other.ca),
                startup_timeout=5.0,
            )
            with pytest.raises(snakepit.WorkerStartupError, match="tls_ca"):
                await pool.start()


class TestLoss:
    async def test_a_killed_worker_fails_its_call_is_reported_lost_and_reconnected(
        self, token_file: Path
    ) -> None:
        """Killing the worker mid-call: the call fails with WorkerCrashedError saying the
        pool cannot restart it, WorkerLost is published, and once the worker is served
        again at the same address the slot reconnects and serves."""
        worker = serve(token_file)
        try:
            async with snakepit.Pool(
                adapter=SHOWCASE,
                remote_workers=[worker.address],
                token_file=str(token_file),
                backoff_initial=0.01,
                backoff_max=0.05,
                max_restarts=1000,
            ) as pool:
                lost = pool.events.subscribe(WorkerLost)
                ready = pool.events.subscribe(WorkerReady)
                dispatched = pool.events.subscribe(RequestDispatched)
                call = asyncio.ensure_future(pool.execute("hang", timeout=30))
                await asyncio.wait_for(dispatched.get(), 10)
                worker.kill()
                with pytest.raises(snakepit.WorkerCrashedError, match="cannot restart") as info:
                    await call
                assert info.value.worker_id == "w1"
                event = await asyncio.wait_for(lost.get(), 10)
                assert event.worker_id == "w1" and event.restartable is False
                assert event.address == worker.address

                worker = serve(token_file, listen=worker.address)
                again = await asyncio.wait_for(ready.get(), 20)
                assert again.address == worker.address
                assert await pool.execute("add", {"a": 1, "b": 1}) == 2
                assert pool.stats().crashes == 1
        finally:
            worker.kill()

    async def test_an_idle_worker_that_dies_is_found_by_heartbeat(self, token_file: Path) -> None:
        """With no call running, the heartbeat finds the dead worker and reports it lost."""
        with served(token_file) as worker:
            async with snakepit.Pool(
                adapter=SHOWCASE,
                remote_workers=[worker.address],
                token_file=str(token_file),
                heartbeat_interval=0.05,
                heartbeat_timeout=2.0,
            ) as pool:
                lost = pool.events.subscribe(WorkerLost)
                worker.kill()
                event = await asyncio.wait_for(lost.get(), 10)
                assert event.worker_id == "w1" and "Ping" in event.reason


class TestRefusals:
    def test_the_cli_refuses_a_public_address_without_tls(
        self, token_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`snakepit worker --listen 0.0.0.0:...` without TLS or --insecure is refused."""
        argv = ["worker", "--adapter", SHOWCASE, "--listen", "0.0.0.0:7000"]
        assert cli_main([*argv, "--token-file", str(token_file)]) == 2
        assert "--tls-cert" in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("extra", "needle"),
        [
            (["--listen", "127.0.0.1"], "HOST:PORT"),
            (["--listen", "127.0.0.1:0", "--tls-cert", "c.pem"], "go together"),
            (["--listen", "127.0.0.1:0", "--token-file", "/nonexistent/token"], "cannot read"),
        ],
    )
    def test_the_cli_names_what_is_wrong(
        self, token_file: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
    ) -> None:
        argv = ["worker", "--adapter", SHOWCASE, "--token-file", str(token_file), *extra]
        assert cli_main(argv) == 2
        assert needle in capsys.readouterr().err

    def test_the_cli_refuses_an_empty_token_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "empty").write_text("\n")
        argv = ["worker", "--adapter", SHOWCASE, "--listen", "127.0.0.1:0"]
        assert cli_main([*argv, "--token-file", str(tmp_path / "empty")]) == 2
        assert "must hold one token" in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("options", "needle"),
        [
            ({"remote_workers": ["10.1.2.3:7000"], "token": "t"}, "tls_ca"),
            ({"remote_workers": ["127.0.0.1:7000"]}, "exactly one of token"),
            (
                {"remote_workers": ["127.0.0.1:7000"], "token": "t", "token_file": "f"},
                "exactly one",
            ),
            ({"remote_workers": ["127.0.0.1"], "token": "t"}, "host:port"),
            ({"remote_workers": "127.0.0.1:7000", "token": "t"}, "list"),
            ({"remote_workers": ["127.0.0.1:1", "127.0.0.1:1"], "token": "t"}, "distinct"),
            ({"remote_workers": ["127.0.0.1:1"], "token": "t", "size": 2}, "size"),
            ({"token": "t"}, "remote_workers"),
            (
                {"remote_workers": ["127.0.0.1:1"], "token": "t", "tls_ca": "/nonexistent"},
                "readable",
            ),
        ],
    )
    def test_pool_options_for_remote_workers_are_checked(
        self, options: dict[str, object], needle: str
    ) -> None:
        with pytest.raises(snakepit.InvalidValueError, match=needle):
            snakepit.Pool(adapter=SHOWCASE, **options)

    def test_size_defaults_to_the_number_of_remote_workers(self) -> None:
        """One slot per remote worker, and the token never shows in the config's repr."""
        addresses = ["[::1]:1", "localhost:2"]
        pool = snakepit.Pool(adapter=SHOWCASE, remote_workers=addresses, token="tok-4f9a")
        assert pool.config.size == 2 and pool.config.remote_workers == tuple(addresses)
        assert "tok-4f9a" not in repr(pool.config)


class TestRayOptions:
    @pytest.mark.parametrize(
        ("options", "needle"),
        [
            ({"launcher": "kubernetes"}, "launcher"),
            ({"ray_options": {"num_cpus": 1}}, "launcher='ray'"),
            ({"launcher": "ray", "ray_options": {"num_cpu": 1}}, "num_cpus"),
            ({"launcher": "ray", "ray_options": [("num_cpus", 1)]}, "dict"),
            ({"launcher": "ray", "token": "t"}, "remote_workers"),
            ({"launcher": "ray", "remote_workers": ["127.0.0.1:1"], "token": "t"}, "by hand"),
        ],
    )
    def test_ray_options_are_checked(self, options: dict[str, object], needle: str) -> None:
        """What launcher='ray' takes is checked when the pool is built, naming the option."""
        with pytest.raises(snakepit.InvalidValueError, match=needle):
            snakepit.Pool(adapter=SHOWCASE, **options)


class _WatchedPlacement(RemotePlacement):
    """A placement that can tell of a loss (as Ray's can): its watch runs until the handle ends."""

    async def wait_lost(self) -> str | None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_future()
        finally:
            # Its clean-up takes a turn of the loop (as a real watch's would): a handle that
            # cancels the watch without joining it returns while the watch still runs.
            turn = loop.create_future()
            loop.call_soon(turn.set_result, None)
            await turn
        return None


class TestHandleTasks:
    @pytest.mark.parametrize("ending", ["stop", "kill_and_wait"])
    async def test_ending_an_attached_handle_joins_its_tasks(
        self, token_file: Path, tmp_path: Path, ending: str
    ) -> None:
        """The placement watch (and the end that kill() starts) are over once the handle
        has stopped: nothing of the handle runs on after it."""
        with served(token_file) as worker:
            placement = _WatchedPlacement(worker.address, token="s3cret-token", credentials=None)
            options = WorkerOptions(adapter=SHOWCASE, runtime_dir=tmp_path)
            handle = AttachedWorkerHandle(f"att-{ending}", options, placement)
            await handle.start()
            mine = {t for t in asyncio.all_tasks() if t.get_name().startswith(f"att-{ending}:")}
            assert {t.get_name() for t in mine} == {f"att-{ending}:placement-watch"}
            await getattr(handle, ending)()
            assert handle.state is WorkerState.EXITED
            mine |= {t for t in asyncio.all_tasks() if t.get_name().startswith(f"att-{ending}:")}
            assert all(t.done() for t in mine), mine
