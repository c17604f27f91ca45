"""FakeClock: time moves only when the test moves it, and sleepers wake in order, never early."""

from __future__ import annotations

import asyncio

import pytest

from supertester import FakeClock, SupertesterTimeout


async def _sleep_then_log(clock: FakeClock, seconds: float, log: list[str], label: str) -> None:
    await clock.sleep(seconds)
    log.append(f"{label}@{clock.monotonic():g}")


class TestReadings:
    def test_starts_where_told_and_keeps_wall_and_monotonic_in_step(self) -> None:
        clock = FakeClock(10.0, wall=1000.0)
        assert clock.monotonic() == 10.0
        assert clock.time() == 1000.0

    async def test_advance_moves_both_readings(self) -> None:
        clock = FakeClock(wall=500.0)
        await clock.advance(2.5)
        assert clock.monotonic() == 2.5
        assert clock.time() == 502.5

    async def test_advance_to_moves_to_an_absolute_reading(self) -> None:
        clock = FakeClock(5.0)
        await clock.advance_to(8.0)
        assert clock.monotonic() == 8.0

    async def test_cannot_go_back(self) -> None:
        clock = FakeClock()
        with pytest.raises(ValueError, match="cannot go back"):
            await clock.advance(-1)

    def test_repr_shows_time_and_sleepers(self) -> None:
        assert repr(FakeClock(1.0)) == "<FakeClock t=1.000 sleepers=0>"


class TestSleepers:
    async def test_sleep_of_zero_returns_without_an_advance(self) -> None:
        await FakeClock().sleep(0)

    async def test_sleepers_wake_in_deadline_order_and_ties_in_arrival_order(self) -> None:
        clock = FakeClock()
        log: list[str] = []
        tasks = [
            asyncio.create_task(_sleep_then_log(clock, 3, log, "c")),
            asyncio.create_task(_sleep_then_log(clock, 1, log, "a")),
            asyncio.create_task(_sleep_then_log(clock, 2, log, "b1")),
            asyncio.create_task(_sleep_then_log(clock, 2, log, "b2")),
        ]
        await clock.wait_for_sleepers(4)
        await clock.advance(10)
        await asyncio.gather(*tasks)
        assert log == ["a@1", "b1@2", "b2@2", "c@3"]

    async def test_a_sleeper_is_not_woken_before_its_deadline(self) -> None:
        clock = FakeClock()
        task = asyncio.create_task(clock.sleep(1.0))
        await clock.wait_for_sleepers(1)
        await clock.advance(0.999)
        assert not task.done()
        assert clock.next_deadline() == 1.0
        await clock.advance(0.001)
        assert task.done()
        assert clock.next_deadline() is None

    async def test_a_periodic_sleeper_sees_every_tick_it_is_due(self) -> None:
        clock = FakeClock()
        ticks: list[float] = []

        async def heartbeat() -> None:
            while True:
                await clock.sleep(1)
                ticks.append(clock.monotonic())

        task = asyncio.create_task(heartbeat())
        await clock.wait_for_sleepers(1)
        await clock.advance(5)
        assert ticks == [1, 2, 3, 4, 5]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def test_a_cancelled_sleeper_is_forgotten(self) -> None:
        clock = FakeClock()
        task = asyncio.create_task(clock.sleep(5))
        await clock.wait_for_sleepers(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert clock.sleepers == 0
        assert clock.next_deadline() is None


class TestWaitForSleepers:
    async def test_several_waiters_are_all_released(self) -> None:
        clock = FakeClock()
        waiters = [asyncio.create_task(clock.wait_for_sleepers(2)) for _ in range(3)]
        sleepers = [asyncio.create_task(clock.sleep(1)) for _ in range(2)]
        await asyncio.gather(*waiters)
        await clock.advance(1)
        await asyncio.gather(*sleepers)

    async def test_times_out_naming_the_count_and_what_it_saw(self) -> None:
        clock = FakeClock()
        with pytest.raises(SupertesterTimeout, match=r"expected 2 sleeper\(s\).*saw 0") as info:
            await clock.wait_for_sleepers(2, timeout=0.01)
        assert isinstance(info.value, TimeoutError)


class TestFixture:
    async def test_fake_clock_fixture_gives_a_fresh_clock(self, fake_clock: FakeClock) -> None:
        assert fake_clock.monotonic() == 0.0
        assert fake_clock.sleepers == 0
