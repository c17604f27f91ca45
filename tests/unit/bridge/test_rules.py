"""The store's rules as pure functions: what every backend decides, checked without I/O."""

from __future__ import annotations

import math
from typing import Any

import pytest

from snakepit import Variable
from snakepit.bridge import _plans as plans
from snakepit.bridge import _rules as rules
from snakepit.errors import (
    SessionNotFoundError,
    SessionQuotaError,
    VariableNotFoundError,
    VariableValidationError,
    VersionConflictError,
)
from snakepit.events import VariableUpdated

NOW = 1_700_000_000.0


def var(version: int = 1, value: Any = 0, **kw: Any) -> Variable:
    kw.setdefault("constraints", {"min": 0})
    return Variable(
        name=kw.pop("name", "n"),
        type=kw.pop("type", "integer"),
        value=value,
        version=version,
        created_at=NOW,
        updated_at=NOW,
        **kw,
    )


class TestSessions:
    @pytest.mark.parametrize("good", ["a", "A0_.:-", "x" * 128])
    def test_a_good_id_passes(self, good: str) -> None:
        assert rules.is_session_id(good)
        assert rules.validate_session_id(good) == good

    @pytest.mark.parametrize("bad", ["", "a b", "x" * 129, "a{b}", "a/b", "sé", None, 7])
    def test_a_bad_id_is_a_value_error(self, bad: Any) -> None:
        assert not rules.is_session_id(bad)
        with pytest.raises(ValueError, match="invalid session id"):
            rules.validate_session_id(bad)

    def test_a_new_session_gets_the_given_id_checked_or_a_fresh_one(self) -> None:
        assert rules.new_session_id("mine") == "mine"
        fresh = {rules.new_session_id(None) for _ in range(3)}
        assert len(fresh) == 3
        assert all(rules.is_session_id(i) for i in fresh)
        with pytest.raises(ValueError, match="invalid session id"):
            rules.new_session_id("a b")

    def test_a_session_expires_at_its_deadline_exactly(self) -> None:
        assert not rules.is_expired(NOW, 10.0, NOW + 9.999)
        assert rules.is_expired(NOW, 10.0, NOW + 10.0)
        assert not rules.is_expired(NOW, math.inf, NOW + 1e300)
        assert rules.expires_at(NOW, 10.0) == NOW + 10.0

    @pytest.mark.parametrize("bad", [0, -1, math.nan, True, "60", None])
    def test_a_ttl_must_be_a_positive_number(self, bad: Any) -> None:
        with pytest.raises(ValueError, match="ttl"):
            rules.check_ttl(bad)
        assert rules.check_ttl(5) == 5.0
        assert rules.check_ttl(math.inf) == math.inf

    @pytest.mark.parametrize(
        ("settings", "named"),
        [
            ({"max_sessions": 0}, "max_sessions"),
            ({"max_sessions": True}, "max_sessions"),
            ({"history_limit": 0}, "history_limit"),
            ({"history_limit": 2.5}, "history_limit"),
            ({"ttl": -1}, "ttl"),
        ],
    )
    def test_settings_out_of_range_are_named(self, settings: dict[str, Any], named: str) -> None:
        values: dict[str, Any] = {"ttl": 60.0, "max_sessions": None, "history_limit": 100}
        values.update(settings)
        with pytest.raises(ValueError, match=named):
            rules.check_settings(**values)

    def test_the_quota_counts_live_sessions_against_the_limit(self) -> None:
        assert not rules.quota_full(1, 2)
        assert rules.quota_full(2, 2)
        assert not rules.quota_full(10**9, None)
        error = rules.quota_error("st", "s9", 2)
        assert isinstance(error, SessionQuotaError)
        assert (error.session_id, error.max_sessions) == ("s9", 2)
        assert "max_sessions=2" in str(error)

    def test_the_errors_name_the_store_and_the_session(self) -> None:
        missing = rules.session_not_found("st", "s1")
        assert isinstance(missing, SessionNotFoundError)
        assert "'s1' not found in store 'st'" in str(missing)
        assert "get_or_create" in str(rules.session_exists_error("st", "s1"))


class TestRegister:
    def test_a_new_name_gets_version_1_with_the_normalized_value(self) -> None:
        variable, created = plans.plan_register(
            "s", "lr", "float", 1, {"min": 0}, {"doc": "x"}, None, NOW
        )
        assert created
        assert variable == Variable(
            name="lr",
            type="float",
            value=1.0,
            version=1,
            constraints={"min": 0},
            metadata={"doc": "x"},
            created_at=NOW,
            updated_at=NOW,
        )

    def test_the_same_definition_again_returns_the_existing_variable(self) -> None:
        existing = var(version=4, value=9)
        again, created = plans.plan_register(
            "s", "n", "integer", 1, {"min": 0}, None, existing, NOW
        )
        assert (again, created) == (existing, False)

    def test_another_definition_of_an_existing_name_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match=r"'n'.*already registered as integer"):
            plans.plan_register("s", "n", "integer", 1, {"min": 1}, None, var(), NOW)

    def test_the_value_is_checked_even_when_the_variable_exists(self) -> None:
        with pytest.raises(VariableValidationError, match="'min'"):
            plans.plan_register("s", "n", "integer", -1, {"min": 0}, None, var(), NOW)

    @pytest.mark.parametrize("bad", ["1x", "a#1", "a{b}", "", "x" * 129])
    def test_a_name_that_could_leave_its_session_is_rejected(self, bad: str) -> None:
        assert not rules.is_variable_name(bad)
        with pytest.raises(VariableValidationError, match="'name'"):
            plans.plan_register("s", bad, "integer", 1, None, None, None, NOW)


class TestWrite:
    def test_a_write_makes_the_next_version_and_keeps_the_definition(self) -> None:
        current = var(version=3, value=1, metadata={"doc": "d"})
        new = plans.plan_write("s", "n", current, 5.0, None, NOW + 7)
        assert new == Variable(
            name="n",
            type="integer",
            value=5,
            version=4,
            constraints={"min": 0},
            metadata={"doc": "d"},
            created_at=NOW,
            updated_at=NOW + 7,
        )
        assert type(new.value) is int

    def test_a_missing_variable_is_not_found_before_anything_else(self) -> None:
        with pytest.raises(VariableNotFoundError, match="register it first"):
            plans.plan_write("s", "ghost", None, "not even an int", 99, NOW)

    def test_a_stale_expected_version_conflicts_before_the_value_is_checked(self) -> None:
        with pytest.raises(VersionConflictError, match="version 3, not the expected 2") as info:
            plans.plan_write("s", "n", var(version=3), "not an int", 2, NOW)
        assert (info.value.expected_version, info.value.actual_version) == (2, 3)

    def test_the_current_expected_version_passes(self) -> None:
        assert plans.plan_write("s", "n", var(version=3), 1, 3, NOW).version == 4


class TestBatch:
    def test_a_non_atomic_batch_plans_the_valid_writes_and_keeps_the_failures(self) -> None:
        current = {"a": var(name="a"), "b": var(name="b"), "ghost": None}
        plan = plans.plan_batch(
            "s",
            current,
            {"a": 1, "b": -1, "ghost": 2},
            atomic=False,
            expected_versions=None,
            now=NOW,
        )
        assert {n: (v.version, v.value) for n, v in plan.writes.items()} == {"a": (2, 1)}
        assert isinstance(plan.errors["b"], VariableValidationError)
        assert isinstance(plan.errors["ghost"], VariableNotFoundError)

    def test_an_atomic_batch_raises_the_first_failure_naming_the_others(self) -> None:
        current = {"a": var(name="a"), "b": var(name="b", version=2)}
        with pytest.raises(VersionConflictError) as info:
            plans.plan_batch(
                "s",
                current,
                {"b": 5, "ghost": 1, "a": 1},
                atomic=True,
                expected_versions={"b": 1},
                now=NOW,
            )
        assert info.value.__notes__ == [
            "atomic set_many wrote nothing; 2 of 3 values failed (also: ghost)"
        ]

    def test_an_atomic_batch_of_names_that_are_not_strings_fails_typed(self) -> None:
        """Keys that cannot be names (NaN, ints) fail as missing variables, and the note that
        lists them still renders (the fuzz test found a raw TypeError here)."""
        with pytest.raises(VariableNotFoundError) as info:
            plans.plan_batch(
                "s", {}, {float("nan"): 1, 7: 2}, atomic=True, expected_versions=None, now=NOW
            )
        assert info.value.__notes__ == [
            "atomic set_many wrote nothing; 2 of 2 values failed (also: 7)"
        ]

    def test_a_valid_atomic_batch_plans_every_write(self) -> None:
        current = {"a": var(name="a"), "b": var(name="b")}
        plan = plans.plan_batch(
            "s", current, {"a": 1, "b": 2}, atomic=True, expected_versions={"a": 1}, now=NOW
        )
        assert [(v.name, v.version) for v in plan.writes.values()] == [("a", 2), ("b", 2)]
        assert not plan.errors


class TestHistory:
    @pytest.mark.parametrize("limit", [1, 2, 3, 7])
    def test_appending_keeps_exactly_the_versions_the_window_names(self, limit: int) -> None:
        history: list[Variable] = []
        for version in range(1, 12):
            history = plans.append_history(history, var(version=version), limit)
            assert [v.version for v in history] == list(plans.kept_versions(version, limit))
            dropped = plans.dropped_version(version, limit)
            assert dropped == (version - limit if version > limit else None)
            assert dropped not in plans.kept_versions(version, limit)

    def test_a_rollback_finds_a_kept_version(self) -> None:
        history = [var(version=v, value=v * 10) for v in (3, 4, 5)]
        assert plans.rollback_target("s", "n", history, 4, 3).value == 40

    def test_a_rollback_to_a_version_no_longer_kept_names_the_kept_range(self) -> None:
        history = [var(version=v) for v in (3, 4, 5)]
        with pytest.raises(VariableNotFoundError, match=r"no version 1 .*kept: 3\.\.5") as info:
            plans.rollback_target("s", "n", history, 1, 3)
        assert info.value.available_versions == [3, 4, 5]


class TestListingAndEvents:
    def test_names_match_a_case_sensitive_wildcard_sorted(self) -> None:
        names = ["temp_2", "seed", "model.lr", "Seed"]
        assert rules.match_names(names, "*e*") == ["Seed", "model.lr", "seed", "temp_2"]
        assert rules.match_names(names, "seed") == ["seed"]

    def test_updates_carry_the_version_and_deletion_carries_the_last_one(self) -> None:
        current = var(version=3, value=7)
        assert plans.update_event("st", "s", current) == VariableUpdated(
            session_id="s", name="n", version=3, value=7, source="st", at=NOW
        )
        assert plans.deleted_event("st", "s", current, NOW + 1) == VariableUpdated(
            session_id="s", name="n", version=3, value=None, deleted=True, source="st", at=NOW + 1
        )
