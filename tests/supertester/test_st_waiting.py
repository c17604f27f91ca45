"""Bounded waits: call_with_timeout, assert_responsive and (last resort) eventually."""

from __future__ import annotations

import asyncio

import pytest

from supertester import SupertesterTimeout, assert_responsive, call_with_timeout, eventually


async def _answer(value: int) -> int:
    return value


async def _hang(forever: asyncio.Event) -> None:
    await forever.wait()


class TestCallWithTimeout:
    async def test_returns_the_result(self) -> None:
        assert await call_with_timeout(_answer(42), 1) == 42

    async def test_a_hang_fails_naming_what_and_the_bound(self) -> None:
        with pytest.raises(
            SupertesterTimeout, match=r"expected pool shutdown to complete within 0.01s"
        ):
            await call_with_timeout(_hang(asyncio.Event()), 0.01, what="pool shutdown")

    async def test_without_what_it_names_the_coroutine(self) -> None:
        with pytest.raises(SupertesterTimeout, match=r"expected _hang\(\) to complete"):
            await call_with_timeout(_hang(asyncio.Event()), 0.01)

    async def test_a_task_that_times_out_is_cancelled_and_named(self) -> None:
        task = asyncio.create_task(_hang(asyncio.Event()), name="stuck")
        with pytest.raises(SupertesterTimeout, match=r"task 'stuck' \(_hang\(\)\)"):
            await call_with_timeout(task, 0.01)
        assert task.cancelled()

    async def test_errors_of_the_awaitable_pass_through(self) -> None:
        async def boom() -> None:
            raise KeyError("x")

        with pytest.raises(KeyError):
            await call_with_timeout(boom(), 1)


class TestAssertResponsive:
    async def test_returns_the_answer_of_a_probe_callable(self) -> None:
        assert await assert_responsive(lambda: _answer(1), 1) == 1

    async def test_accepts_an_awaitable(self) -> None:
        assert await assert_responsive(_answer(2)) == 2

    async def test_a_probe_that_does_not_answer_fails(self) -> None:
        forever = asyncio.Event()
        with pytest.raises(SupertesterTimeout, match="expected the worker to complete within"):
            await assert_responsive(lambda: _hang(forever), 0.01, what="the worker")


class TestEventually:
    async def test_returns_the_first_truthy_value(self) -> None:
        calls = []

        def ready() -> str | None:
            calls.append(1)
            return "yes" if len(calls) >= 3 else None

        assert await eventually(ready, timeout=5) == "yes"
        assert len(calls) == 3

    async def test_accepts_an_async_predicate_and_retries_assertions(self) -> None:
        calls = []

        async def check() -> bool:
            calls.append(1)
            assert len(calls) > 2, "not yet"
            return True

        assert await eventually(check, timeout=5) is True

    async def test_fails_with_the_number_of_checks_and_the_last_result(self) -> None:
        with pytest.raises(SupertesterTimeout) as info:
            await eventually(lambda: 0, timeout=0.02, what="the queue to drain")
        message = str(info.value)
        assert "expected the queue to drain within 0.02s" in message
        assert "the last check returned 0" in message
        assert "await that instead of polling" in message

    async def test_the_last_assertion_is_reported(self) -> None:
        def check() -> bool:
            raise AssertionError("3 workers, wanted 4")

        with pytest.raises(SupertesterTimeout, match="the last check failed: 3 workers, wanted 4"):
            await eventually(check, timeout=0.01)

    async def test_other_errors_are_not_retried(self) -> None:
        def check() -> bool:
            raise KeyError("bug")

        with pytest.raises(KeyError):
            await eventually(check, timeout=5)
