"""Choosing a session store: the URL's parsing and the pool option that takes it."""

from __future__ import annotations

from typing import Any

import pytest

import snakepit
from snakepit import errors
from snakepit.bridge import InMemorySessionStore
from snakepit.bridge._store_url import check_prefix, parse_store_url
from snakepit.config import PoolConfig

ADAPTER = "snakepit.examples.showcase:Showcase"


class TestStoreUrl:
    def test_the_password_never_shows_and_the_prefix_is_taken_out(self) -> None:
        parsed = parse_store_url("redis://user:s3cret@db.example:6380/2?prefix=app.1")
        assert parsed.shown == "redis://user:***@db.example:6380/2?prefix=app.1"
        assert "s3cret" not in parsed.shown
        assert parsed.client_url == "redis://user:s3cret@db.example:6380/2"
        assert parsed.prefix == "app.1"

    def test_the_default_prefix_and_other_schemes(self) -> None:
        assert parse_store_url("redis://localhost").prefix == "snakepit"
        assert parse_store_url("rediss://:pw@h:1/0").shown == "rediss://:***@h:1/0"
        unix = parse_store_url("unix:///run/redis.sock?db=3&prefix=p")
        assert (unix.client_url, unix.prefix) == ("unix:///run/redis.sock?db=3", "p")

    @pytest.mark.parametrize(
        ("url", "says"),
        [
            ("http://localhost:6379", "must start with redis://"),
            ("redis://localhost:notaport/0", "invalid port"),
            ("redis://localhost:6379/zero", "must be a number"),
            ("redis:///0", "needs a host"),
            ("unix://", "needs a socket path"),
            ("redis://h/0?socket_timeout=1", "unknown parameter"),
            ("redis://h/0?prefix=a{b}", "invalid session store prefix"),
            ("redis://h/0?prefix=", "invalid session store prefix"),
            ("", "non-empty string"),
        ],
    )
    def test_a_bad_url_is_a_value_error_saying_what_is_wrong(self, url: str, says: str) -> None:
        with pytest.raises(ValueError, match=says):
            parse_store_url(url)

    def test_a_bad_url_names_no_password(self) -> None:
        with pytest.raises(ValueError, match=r"\*\*\*") as info:
            parse_store_url("redis://:hunter2@h:99999/0")
        assert "hunter2" not in str(info.value)

    @pytest.mark.parametrize("bad", ["", "a b", "a{b}", "x" * 65, 3])
    def test_a_prefix_cannot_reach_into_another_namespace(self, bad: Any) -> None:
        with pytest.raises(ValueError, match="prefix"):
            check_prefix(bad)


class TestPoolOption:
    def test_the_default_is_the_in_memory_store(self) -> None:
        assert PoolConfig(adapter=ADAPTER).session_store is None

    def test_a_redis_url_and_a_store_object_are_accepted(self) -> None:
        assert PoolConfig(adapter=ADAPTER, session_store="redis://h:6379/0").session_store
        store = InMemorySessionStore()
        assert PoolConfig(adapter=ADAPTER, session_store=store).session_store is store

    @pytest.mark.parametrize(
        ("value", "says"),
        [
            ("memcached://h", "session_store.*redis://"),
            ("redis://h:x/0", "session_store.*invalid port"),
            (42, "session_store=42.*SessionStore object"),
            (object(), "session_store=.*SessionStore object"),
        ],
    )
    def test_anything_else_is_a_value_error_naming_the_option(self, value: Any, says: str) -> None:
        with pytest.raises(ValueError, match=says):
            PoolConfig(adapter=ADAPTER, session_store=value)


class TestUnavailableError:
    def test_it_is_a_session_error_exported_and_rebuilt_from_the_wire_with_its_details(
        self,
    ) -> None:
        assert issubclass(errors.SessionStoreUnavailableError, errors.SessionError)
        assert snakepit.SessionStoreUnavailableError is errors.SessionStoreUnavailableError
        again = errors.from_wire(
            "SessionStoreUnavailableError", "down", {"url": "redis://h:1/0", "operation": "get"}
        )
        assert type(again) is errors.SessionStoreUnavailableError
        assert (again.url, again.operation) == ("redis://h:1/0", "get")
