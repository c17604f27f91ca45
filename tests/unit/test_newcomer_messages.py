"""Messages and reprs a newcomer reads: codec hints, variables, typed SyncPool sessions."""

from __future__ import annotations

import datetime

import pytest

from snakepit import Variable, codec
from snakepit.errors import SerializationError
from snakepit.events import VariableUpdated
from snakepit.pool import SyncPool
from snakepit.pool._sync_session import SyncSession, SyncSessions, SyncSessionVariables


class _Array:
    def tolist(self) -> list[int]:
        return [1]


class TestSerializationHints:
    @pytest.mark.parametrize(
        ("value", "hint"),
        [
            (_Array(), "convert it first, e.g. value.tolist() (or value.tobytes() for raw data)"),
            ({1, 2}, "pass a list instead, e.g. sorted(value)"),
            (
                datetime.datetime(2024, 1, 2, 3, 4),
                "e.g. value.isoformat(), and read it back with datetime.fromisoformat(text)",
            ),
            (datetime.date(2024, 1, 2), "date.fromisoformat(text)"),
            (datetime.timedelta(seconds=3), "e.g. value.total_seconds()"),
        ],
    )
    def test_hints_are_python_a_user_can_write(self, value: object, hint: str) -> None:
        with pytest.raises(SerializationError) as info:
            codec.validate({"x": value}, what="args of tool 'echo'")
        message = str(info.value)
        assert hint in message
        assert "['x']." not in message  # never a method call glued onto a path
        assert "args of tool 'echo'['x']" in message  # the path still says where


class TestVariableReprs:
    def test_variable_repr_shows_the_value_bounded(self) -> None:
        small = Variable(name="steps", type="integer", value=3, version=2)
        assert repr(small) == "Variable(name='steps', type='integer', value=3, version=2)"
        big = Variable(name="t", type="tensor", value=list(range(10_000)), version=1)
        assert len(repr(big)) < 160
        assert "value=[0, 1, 2" in repr(big)

    def test_watch_events_show_their_value(self) -> None:
        event = VariableUpdated(
            session_id="s", name="steps", version=3, value=7, source="x", at=0.0
        )
        assert "value=7" in repr(event)
        gone = VariableUpdated(
            session_id="s", name="steps", version=3, value=None, deleted=True, source="x", at=0.0
        )
        assert "deleted" in repr(gone)


class TestSyncSessionTypes:
    def test_sync_sessions_are_typed(self) -> None:
        """mypy sees real classes (a typo is an error), not Any."""
        assert SyncPool.session.__annotations__["return"] == "SyncSession"
        assert SyncPool.sessions.fget.__annotations__["return"] == "SyncSessions"  # type: ignore[attr-defined]
        assert SyncSession.__init__.__annotations__["sync_pool"] == "SyncPool"
        for cls in (SyncSession, SyncSessions, SyncSessionVariables):
            assert not hasattr(cls, "__getattr__"), cls
        for name in ("register", "get", "set", "list", "watch", "history", "rollback"):
            assert callable(getattr(SyncSessionVariables, name))
