"""The Redis store's data forms and watch delivery rules, checked without a Redis server."""

from __future__ import annotations

from typing import Any

import pytest

from snakepit import Variable
from snakepit.bridge import VariableWatch
from snakepit.bridge import _redis_wire as wire
from snakepit.bridge._redis_watch import Follower, Subscriptions
from snakepit.errors import SerializationError, SessionStoreUnavailableError
from snakepit.events import VariableUpdated

NOW = 1_700_000_000.0


def variable(version: int = 3, value: Any = 7) -> Variable:
    return Variable(
        name="n",
        type="integer",
        value=value,
        version=version,
        constraints={"min": 0},
        metadata={"doc": "count"},
        created_at=NOW,
        updated_at=NOW + version,
    )


def update(version: int, value: Any) -> str:
    """An update message body as the commit script publishes it (``U...``)."""
    event = VariableUpdated(
        session_id="", name="n", version=version, value=value, source="h1", at=NOW
    )
    return wire.update_message(event)


class TestForms:
    def test_a_value_packs_as_json_and_carries_bytes_beside_it(self) -> None:
        plain = wire.pack({"a": [1, 2.5, "x"]}, "v")
        assert plain.startswith("J")
        assert wire.unpack(plain) == {"a": [1, 2.5, "x"]}
        blob = wire.pack({"raw": b"\x00\xff", "n": 1}, "v")
        assert blob.startswith("B")
        assert wire.unpack(blob) == {"raw": b"\x00\xff", "n": 1}

    def test_a_record_reads_back_whole_and_starts_with_what_a_commit_expects(self) -> None:
        text = wire.record(variable(), "inc1")
        assert text.startswith(wire.expect(variable(), "inc1"))
        assert wire.parse_record(text) == (variable(), "inc1")

    def test_an_update_message_reads_back_as_the_event(self) -> None:
        body = update(4, {"x": 1})
        assert body.startswith("U")
        event = wire.parse_update("s1", body[1:])
        assert (event.session_id, event.name, event.version, event.value) == (
            "s1",
            "n",
            4,
            {"x": 1},
        )
        assert (event.source, event.at, event.deleted) == ("h1", NOW, False)

    @pytest.mark.parametrize("body", ["J{}", "J[1]", "Jnot json", 'J{"name": "n"}'])
    def test_a_malformed_update_raises_what_the_reader_skips(self, body: str) -> None:
        with pytest.raises((ValueError, LookupError, TypeError, SerializationError)):
            wire.parse_update("s1", body)

    def test_numbers_keep_their_precision(self) -> None:
        assert float(wire.number(NOW + 0.123456)) == NOW + 0.123456


def subscriptions() -> Subscriptions:
    async def call(operation: str, make: Any) -> Any:
        raise AssertionError("delivery needs no Redis round trip")

    def unavailable(operation: str, exc: BaseException) -> SessionStoreUnavailableError:
        return SessionStoreUnavailableError(f"{operation}: {exc}", url="redis://x", operation="x")

    def connect() -> Any:
        raise AssertionError("delivery needs no connection")

    return Subscriptions("t", connect=connect, call=call, unavailable=unavailable, timeout=1.0)


def follower() -> Follower:
    return Follower(VariableWatch("s1", None, maxsize=10))


def drained(watch: VariableWatch) -> list[tuple[int, Any]]:
    seen = []
    while (event := watch.get_nowait()) is not None:
        seen.append((event.version, event.value))
    return seen


class TestDelivery:
    def test_messages_before_the_snapshot_wait_and_only_newer_ones_arrive(self) -> None:
        subs, f = subscriptions(), follower()
        subs.deliver("c", f, "inc1", 5, update(2, "seen in snapshot"))
        subs.deliver("c", f, "inc1", 6, update(3, "new"))
        assert drained(f.watch) == []
        subs.start("c", f, "inc1", 5)
        subs.deliver("c", f, "inc1", 7, update(4, "newer"))
        subs.deliver("c", f, "inc1", 7, update(4, "again"))
        assert drained(f.watch) == [(3, "new"), (4, "newer")]

    def test_an_earlier_incarnation_of_the_session_is_ignored(self) -> None:
        subs, f = subscriptions(), follower()
        subs.start("c", f, "inc2", 0)
        subs.deliver("c", f, "inc1", 9, update(9, "old session"))
        subs.deliver("c", f, "inc1", 10, "Esession deleted")
        assert (drained(f.watch), f.watch.ended_reason) == ([], None)
        subs.deliver("c", f, "inc2", 1, update(1, "this session"))
        assert drained(f.watch) == [(1, "this session")]

    def test_an_end_message_ends_the_watch_with_its_reason(self) -> None:
        subs, f = subscriptions(), follower()
        subs.start("c", f, "inc1", 0)
        subs.deliver("c", f, "inc1", 1, "Esession expired")
        assert f.watch.ended_reason == "session expired"

    def test_a_malformed_update_is_skipped_and_the_next_one_arrives(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        subs, f = subscriptions(), follower()
        subs.start("c", f, "inc1", 0)
        subs.deliver("c", f, "inc1", 1, "Unot a packed value")
        subs.deliver("c", f, "inc1", 2, update(2, "fine"))
        assert drained(f.watch) == [(2, "fine")]
        assert "malformed update" in caplog.text
