"""Mailbox: selective, bounded receives that say what was awaited and what was seen."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from supertester import Mailbox, SupertesterTimeout

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@dataclass(frozen=True)
class Ready:
    worker: str


@dataclass(frozen=True)
class Exited:
    worker: str
    code: int


class TestReceive:
    async def test_returns_the_first_match_and_leaves_the_others_pending(self) -> None:
        mb: Mailbox[object] = Mailbox()
        mb.put(Ready("a"))
        mb.put(Exited("a", 1))
        mb.put(Ready("b"))
        assert await mb.receive(Exited) == Exited("a", 1)
        assert mb.pending == [Ready("a"), Ready("b")]
        assert await mb.receive() == Ready("a")

    async def test_matches_by_predicate_and_by_tuple_of_types(self) -> None:
        mb: Mailbox[object] = Mailbox()
        for item in (Ready("a"), Ready("b"), Exited("b", 0)):
            mb.put(item)
        assert await mb.receive(lambda e: isinstance(e, Ready) and e.worker == "b") == Ready("b")
        assert await mb.receive((Exited, int)) == Exited("b", 0)

    async def test_waits_for_an_item_put_later_by_a_task(self) -> None:
        mb: Mailbox[int] = Mailbox()
        asyncio.get_running_loop().call_soon(mb.put, 7)
        assert await mb.receive(timeout=5) == 7

    async def test_an_item_put_from_another_thread_wakes_the_receiver(self) -> None:
        mb: Mailbox[str] = Mailbox()
        started = asyncio.Event()
        loop = asyncio.get_running_loop()
        thread = threading.Thread(
            target=lambda: (loop.call_soon_threadsafe(started.set), mb.put("hi"))
        )
        receiving = asyncio.create_task(mb.receive(str))
        thread.start()
        assert await receiving == "hi"
        await started.wait()
        thread.join()

    async def test_concurrent_receivers_each_get_a_distinct_item(self) -> None:
        mb: Mailbox[int] = Mailbox()
        receivers = [asyncio.create_task(mb.receive()) for _ in range(3)]
        for i in range(3):
            mb.put(i)
        assert sorted(await asyncio.gather(*receivers)) == [0, 1, 2]
        assert mb.pending == []

    async def test_the_mailbox_is_itself_a_listener_callback(self) -> None:
        mb: Mailbox[str] = Mailbox()
        listener = mb
        listener("event")
        assert await mb.receive() == "event"

    async def test_a_value_that_is_not_a_match_is_a_type_error_with_advice(self) -> None:
        mb: Mailbox[int] = Mailbox()
        with pytest.raises(TypeError, match="lambda item: item == value"):
            await mb.receive(5)  # type: ignore[call-overload]


class TestAssertReceive:
    async def test_returns_the_matching_item(self) -> None:
        mb: Mailbox[object] = Mailbox()
        mb.put(Ready("a"))
        assert await mb.assert_receive(Ready, timeout=1) == Ready("a")

    async def test_timeout_names_what_was_awaited_and_prints_the_history(self) -> None:
        mb: Mailbox[object] = Mailbox("events")
        mb.put(Ready("a"))
        mb.put(Ready("b"))
        await mb.receive(Ready)
        with pytest.raises(SupertesterTimeout) as info:
            await mb.assert_receive(Exited, timeout=0.01)
        message = str(info.value)
        assert "expected an instance of Exited in events within 0.01s" in message
        assert "events history (2 items, oldest first)" in message
        assert "#0    received Ready(worker='a')" in message
        assert "#1    pending  Ready(worker='b')" in message
        assert isinstance(info.value, AssertionError)
        assert info.value.timeout == 0.01

    async def test_timeout_names_a_lambda_by_its_place_and_an_empty_history(self) -> None:
        mb: Mailbox[int] = Mailbox()
        with pytest.raises(SupertesterTimeout, match=r"lambda at test_st_mailbox.py:\d+") as info:
            await mb.assert_receive(lambda n: n > 3, timeout=0.01)
        assert "nothing was ever put" in str(info.value)

    async def test_what_overrides_the_description(self) -> None:
        mb: Mailbox[int] = Mailbox()
        with pytest.raises(SupertesterTimeout, match="expected worker w1 ready in mailbox"):
            await mb.assert_receive(int, 0.01, what="worker w1 ready")

    async def test_a_long_history_is_shortened_in_the_message(self) -> None:
        mb: Mailbox[int] = Mailbox()
        for i in range(205):
            mb.put(i)
        assert "5 earlier items not shown" in mb.format_history()


class TestRefuteReceive:
    async def test_passes_when_nothing_matching_arrives(self) -> None:
        mb: Mailbox[object] = Mailbox()
        mb.put(Ready("a"))
        await mb.refute_receive(Exited, within=0.01)
        assert mb.pending == [Ready("a")]

    async def test_fails_at_once_when_a_matching_item_is_pending(self) -> None:
        mb: Mailbox[object] = Mailbox()
        mb.put(Exited("a", 1))
        with pytest.raises(
            AssertionError, match=r"expected an instance of Exited not to arrive.*#0"
        ):
            await mb.refute_receive(Exited, within=5)

    async def test_fails_when_a_matching_item_arrives_within_the_window(self) -> None:
        mb: Mailbox[object] = Mailbox()
        asyncio.get_running_loop().call_soon(mb.put, Exited("a", 9))
        with pytest.raises(
            AssertionError, match=r"but received item #0: Exited\(worker='a', code=9\)"
        ):
            await mb.refute_receive(Exited, within=5)


class TestState:
    async def test_history_keeps_everything_and_flush_empties_pending(self) -> None:
        mb: Mailbox[int] = Mailbox("box")
        for i in range(3):
            mb.put(i)
        await mb.receive()
        assert mb.history == [0, 1, 2]
        assert len(mb) == 2
        assert repr(mb) == "<Mailbox box [pending 2 | seen 3]>"
        assert mb.flush() == [1, 2]
        assert mb.pending == []
        assert mb.history == [0, 1, 2]


class TestSubscribeTo:
    async def test_feeds_items_from_an_async_iterable(self) -> None:
        async def source() -> AsyncIterator[int]:
            for i in range(3):
                yield i

        async with Mailbox[int]() as mb:
            mb.subscribe_to(source())
            assert [await mb.receive() for _ in range(3)] == [0, 1, 2]

    async def test_close_cancels_a_source_that_never_ends(self) -> None:
        blocked = asyncio.Event()
        cleaned_up = asyncio.Event()

        async def endless() -> AsyncIterator[str]:
            try:
                yield "first"
                await blocked.wait()
                yield "never"
            finally:
                cleaned_up.set()

        mb: Mailbox[str] = Mailbox()
        task = mb.subscribe_to(endless(), name="endless")
        assert await mb.receive() == "first"
        await mb.close()
        assert task.cancelled()
        assert cleaned_up.is_set()

    async def test_a_failing_source_is_named_in_the_timeout_message(self) -> None:
        async def broken() -> AsyncIterator[int]:
            yield 1
            raise ConnectionError("bus gone")

        async with Mailbox[int]() as mb:
            task = mb.subscribe_to(broken(), name="bus")
            with pytest.raises(ConnectionError):
                await task
            with pytest.raises(
                SupertesterTimeout, match=r"source bus failed: ConnectionError\('bus gone'\)"
            ):
                await mb.assert_receive(lambda n: n > 1, timeout=0.01)


class TestFixture:
    async def test_mailbox_fixture_is_a_fresh_mailbox(self, mailbox: Mailbox[Any]) -> None:
        mailbox.put("x")
        assert await mailbox.receive() == "x"
