"""What a caller or a local process must not get: private sockets, tokens out of reach,
bounded echoes of input, and no path chosen by a pool's name."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import psutil
import pytest

import snakepit
from snakepit.testing import isolated_pool

MiB = 1024 * 1024


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


class TestPrivateChannels:
    async def test_worker_and_bridge_sockets_are_private(self) -> None:
        """Every Unix socket of a pool (each worker's, the host bridge's) is 0600, in a 0700
        directory (gRPC workers: local ones have no socket on disk)."""
        async with isolated_pool(size=2, transport="grpc") as pool:
            sockets = [w.address.removeprefix("unix:") for w in pool.workers() if w.address]
            assert len(sockets) == 2
            runtime_dir = Path(sockets[0]).parent
            assert _mode(runtime_dir) == 0o700
            assert (runtime_dir / "host.sock").exists()
            for path in [*sockets, runtime_dir / "host.sock"]:
                assert _mode(path) == 0o600, path

    async def test_tcp_tokens_are_not_in_the_workers_environment(self) -> None:
        """Over TCP neither the worker's token nor the host bridge's is in the worker's
        environment as /proc shows it to any process of the same user; both still work."""
        async with isolated_pool(transport="tcp") as pool:
            pid = await pool.execute("pid")
            assert await pool.session("s1").execute("call_host", {"name": "nope", "catch": True})
            bridge = pool._bridge
            assert bridge is not None and bridge.token
            raw = Path(f"/proc/{pid}/environ").read_bytes()
            assert b"SNAKEPIT_TOKEN" not in raw and b"SNAKEPIT_HOST_TOKEN" not in raw
            assert bridge.token.encode() not in raw
            assert "SNAKEPIT_HOST_ADDRESS" in psutil.Process(pid).environ()


class TestBoundedEchoes:
    async def test_huge_input_makes_no_huge_message(self) -> None:
        """A 1 MiB tool name, argument name or option value is echoed cut short."""
        async with isolated_pool() as pool:
            with pytest.raises(snakepit.ToolNotFoundError) as missing:
                await pool.execute("t" * MiB)
            with pytest.raises(snakepit.InvalidArgumentsError) as not_a_dict:
                await pool.execute("u" * MiB, [1])  # type: ignore[arg-type]
            with pytest.raises(snakepit.InvalidArgumentsError) as unknown:
                await pool.execute("ping", {"k" * MiB: 1})
            for err in (missing.value, not_a_dict.value, unknown.value):
                assert len(str(err)) < 1000, str(err)[:200]
            assert "ping" in str(missing.value) and "..." in str(missing.value)

    def test_a_malformed_host_tool_name_is_typed_and_echoed_cut_short(self) -> None:
        """A 1 MiB host tool name is refused with a SnakepitError (still a ValueError), and its
        message does not carry the name whole; so is a name registered twice."""
        pool = snakepit.Pool(adapter="snakepit.testing.adapters:Minimal")
        with pytest.raises(snakepit.InvalidValueError) as bad:
            pool.register_host_tool("h" * MiB, lambda: None)
        assert isinstance(bad.value, ValueError) and len(str(bad.value)) < 1000
        pool.register_host_tool("twice", lambda: None)
        with pytest.raises(snakepit.InvalidValueError, match="already registered"):
            pool.register_host_tool("twice", lambda: None)


class TestNamesChooseNoPath:
    @pytest.mark.parametrize("name", ["a:b.c-d_e", "9..9", "x" * 128])
    async def test_a_pool_writes_only_inside_its_directories(self, name: str) -> None:
        """A pool with an unusual (valid) name writes only inside its registry and runtime
        directories, and leaves them empty when closed. (Names that are not valid are refused
        before anything is written: tests/unit/pool/test_config.py.)"""
        with tempfile.TemporaryDirectory(prefix="snk-") as short:  # socket paths are short
            top = Path(short)
            registry, runtime = top / "d" / "registry", top / "d" / "run"
            runtime.mkdir(parents=True)
            async with isolated_pool(
                name=name, registry_dir=str(registry), runtime_dir=str(runtime)
            ) as pool:
                assert await pool.execute("ping") == {"status": "pong"}
                written = {p for p in top.rglob("*") if p.is_file() or p.is_socket()}
                assert written and all(
                    p.is_relative_to(registry) or p.is_relative_to(runtime) for p in written
                ), written
            assert sorted(top.rglob("*")) == sorted([top / "d", registry, runtime])
