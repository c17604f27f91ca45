"""The in-process fake and a worker process answer every case alike: the same code answers."""

from __future__ import annotations

import asyncio
import math
import os
import re
from typing import TYPE_CHECKING, Any

from snakepit.events import RequestDispatched
from snakepit.testing import in_process_workers, isolated_pool, pool_mailbox
from tests.support.parity import PARITY

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import snakepit

BOUND = 10.0


async def _chunks(pool: snakepit.Pool, tool: str, args: dict[str, Any]) -> list[Any]:
    got: list[Any] = []
    try:
        async for chunk in pool.stream(tool, args):
            got.append(chunk)
    except Exception as exc:  # anything else than a SnakepitError is a difference too
        got.append(_error(exc))
    return got


def _error(exc: BaseException) -> tuple[str, str, str | None]:
    # The deadline left when the call was sent is measured on the host: it varies.
    message = re.sub(r"deadline of [0-9.e-]+s", "deadline of Ns", str(exc))
    return (type(exc).__name__, message, getattr(exc, "remote_type", None))


async def _stream_closed_early(pool: snakepit.Pool) -> Any:
    """A stream the caller leaves: its generator stops in the worker, which serves on."""
    before = [w.id for w in pool.workers()]
    chunks = pool.stream("count", {"n": 100_000})
    first = await anext(chunks)
    await chunks.aclose()  # type: ignore[attr-defined]
    return [
        first,
        await pool.execute("add", {"a": 1, "b": 2}),
        before == [w.id for w in pool.workers()],
    ]


async def _async_call_cancelled(pool: snakepit.Pool) -> Any:
    """An async tool whose caller is cancelled is cancelled in the worker, which stays."""
    box = pool_mailbox(pool)
    before = [w.id for w in pool.workers()]
    call = asyncio.ensure_future(pool.execute("forever", timeout=None))
    await box.assert_receive(RequestDispatched, BOUND)
    call.cancel()
    cancelled = await asyncio.gather(call, return_exceptions=True)
    after = await pool.execute("total", {"n": 4})
    return [type(cancelled[0]).__name__, after, before == [w.id for w in pool.workers()]]


async def _in_session(pool: snakepit.Pool, tool: str) -> Any:
    async with pool.session(f"parity-{tool}") as session:
        return [await session.execute(tool, {"value": 1}), await session.execute("where")]


CASES: dict[str, Callable[[snakepit.Pool], Awaitable[Any]]] = {
    "result": lambda p: p.execute("add", {"a": 1, "b": 2}),
    "values": lambda p: p.execute(
        "echo", {"value": {"b": b"\x00\xff" * 70_000, "f": math.inf, "l": [1, "x", None]}}
    ),
    "unknown tool": lambda p: p.execute("nope"),
    "bad arguments": lambda p: p.execute("add", {"a": 1}),
    "unexpected argument": lambda p: p.execute("add", {"a": 1, "b": 2, "c": 3}),
    "stream tool by execute": lambda p: p.execute("count", {"n": 2}),
    "tool raises": lambda p: p.execute("fail", {"message": "boom"}),
    "stream": lambda p: _chunks(p, "count", {"n": 600}),
    "stream fails midway": lambda p: _chunks(p, "fail_after", {"n": 3}),
    "async generator": lambda p: _chunks(p, "ticks", {"n": 5}),
    "async tool as a stream": lambda p: _chunks(p, "total", {"n": 5}),
    "plain tool as a stream": lambda p: _chunks(p, "add", {"a": 1, "b": 1}),
    "deadline": lambda p: p.execute("forever", timeout=0.05),
    "stream closed early": _stream_closed_early,
    "async call cancelled": _async_call_cancelled,
    "context outside a session": lambda p: p.execute("where"),
    "variables outside a session": lambda p: p.execute("remember", {"value": 1}),
    "variables": lambda p: _in_session(p, "remember"),
    "async variables": lambda p: _in_session(p, "aremember"),
    "host tools": lambda p: p.execute("host_tools"),
}


async def _outcomes(pool: snakepit.Pool) -> dict[str, Any]:
    pool.register_host_tool("double", lambda x: 2 * x)
    outcomes: dict[str, Any] = {}
    for name, case in CASES.items():
        try:
            outcomes[name] = await case(pool)
        except Exception as exc:  # anything else than a SnakepitError is a difference too
            outcomes[name] = _error(exc)
    return outcomes


class TestSameAnswers:
    async def test_the_fake_answers_every_case_as_a_worker_process(self) -> None:
        """Results, errors (type, message, remote type), streams, deadlines, cancellation
        and contexts reaching the host come out the same from an in-process worker as from
        a worker process of the local transport."""
        name = f"parity-{os.getpid()}"  # errors name the pool
        async with isolated_pool(PARITY, name=name, transport="local") as pool:
            real = await _outcomes(pool)
        async with isolated_pool(PARITY, name=name, worker_factory=in_process_workers()) as pool:
            fake = await _outcomes(pool)
        assert real["result"] == 3  # the cases ran (not all failed alike)
        assert real["variables"][0] == [2, 2]
        assert {k: (v, real[k]) for k, v in fake.items() if v != real[k]} == {}
