"""The worker's host calls as data: requests built, answers read, errors typed. No host."""

from __future__ import annotations

from typing import Any

import pytest

from snakepit._proto.snakepit.v1 import host_pb2 as hpb
from snakepit._wire import error_info, from_payload, to_payload
from snakepit.adapter import _host_ops as ops
from snakepit.codec import Encoding
from snakepit.errors import (
    HostToolError,
    InvalidValueError,
    SerializationError,
    SessionNotFoundError,
    VariableError,
    VersionConflictError,
)


def info(name: str, value: Any, version: int = 1, **metadata: Any) -> hpb.VariableInfo:
    return hpb.VariableInfo(
        name=name,
        type="integer",
        value=to_payload(value, name),
        version=version,
        constraints=to_payload({"min": 0}, name),
        metadata=to_payload(metadata, name),
        created_at=1.0,
        updated_at=2.0,
    )


class TestReadingAnswers:
    def test_a_variable_comes_back_whole(self) -> None:
        op = ops.get_variable("s1", "n")
        variable = op.parse(hpb.VariableResponse(variable=info("n", 3, version=2, doc="x")))
        assert (op.method, op.request.session_id, op.request.name) == ("GetVariable", "s1", "n")
        assert (variable.name, variable.value, variable.version) == ("n", 3, 2)
        assert (variable.constraints, variable.metadata) == ({"min": 0}, {"doc": "x"})
        assert (variable.created_at, variable.updated_at) == (1.0, 2.0)

    @pytest.mark.parametrize(
        ("op", "response"),
        [
            (ops.get_variable("s1", "n"), hpb.VariableResponse),
            (ops.list_variables("s1", "*"), hpb.VariablesResponse),
            (ops.delete_variable("s1", "n"), hpb.DeleteVariableResponse),
            (ops.get_many("s1", ["n"]), hpb.GetVariablesResponse),
            (ops.set_many("s1", {"n": 1}, True, None), hpb.SetVariablesResponse),
            (ops.export_variables("s1", "*"), hpb.ExportVariablesResponse),
            (ops.heartbeat("s1"), hpb.SessionResponse),
        ],
    )
    def test_every_reader_raises_the_hosts_error_with_its_kind(
        self, op: ops.Op[Any], response: Any
    ) -> None:
        sent = SessionNotFoundError("session 's1' expired", session_id="s1")
        with pytest.raises(SessionNotFoundError, match="expired") as caught:
            op.parse(response(error=error_info(sent)))
        assert caught.value.details["session_id"] == "s1"

    def test_a_batch_keeps_each_failure_as_a_variable_error(self) -> None:
        response = hpb.SetVariablesResponse(
            updated=[info("a", 1)],
            errors={
                "b": error_info(VersionConflictError("stale", variable="b")),
                "c": error_info(RuntimeError("odd")),
            },
        )
        result = ops.set_many("s1", {"a": 1, "b": 2, "c": 3}, False, {"b": 4}).parse(response)
        assert list(result.updated) == ["a"]
        assert isinstance(result.errors["b"], VersionConflictError)
        assert isinstance(result.errors["c"], VariableError)
        assert result.errors["c"].details["variable"] == "c"

    def test_found_and_missing(self) -> None:
        response = hpb.GetVariablesResponse(variables=[info("a", 1)], missing=["ghost"])
        found, missing = ops.get_many("s1", ["a", "ghost"]).parse(response)
        assert (list(found), missing) == (["a"], ["ghost"])

    def test_a_host_tool_error_keeps_the_remote_type(self) -> None:
        op = ops.host_tool(
            "add", {"x": 1}, None, worker_id="w1", encoding=Encoding.JSON, allow_pickle=False
        )
        assert (op.request.tool, op.request.session_id, op.request.worker_id) == ("add", "", "w1")
        assert from_payload(op.request.args, "args") == {"x": 1}
        raised = HostToolError("boom", tool="add", remote_type="KeyError")
        with pytest.raises(HostToolError) as caught:
            op.parse(hpb.CallHostToolResponse(error=error_info(raised)))
        assert caught.value.details["remote_type"] == "KeyError"
        assert op.parse(hpb.CallHostToolResponse(result=to_payload([1, 2], "r"))) == [1, 2]

    def test_host_tools_are_listed_sorted(self) -> None:
        response = hpb.ListHostToolsResponse()
        for name in ("b", "a"):
            response.tools.add(name=name)
        assert ops.list_host_tools().parse(response) == ["a", "b"]


class TestBuildingRequests:
    def test_metadata_that_is_not_a_mapping_is_refused_before_sending(self) -> None:
        with pytest.raises(InvalidValueError, match="must be a mapping") as caught:
            ops.variable_metadata("s1", "n", ["not", "a", "dict"], False, None)  # type: ignore[arg-type]
        assert caught.value.details["argument"] == "metadata"
        with pytest.raises(InvalidValueError, match="session s1"):
            ops.session_metadata("s1", 7, True)  # type: ignore[arg-type]

    def test_a_value_the_codec_cannot_carry_names_the_variable(self) -> None:
        with pytest.raises(SerializationError, match="'n'"):
            ops.set_variable("s1", "n", object(), None)

    def test_optional_arguments_reach_the_request(self) -> None:
        op = ops.set_variable("s1", "n", 5, expected_version=3)
        assert op.request.HasField("expected_version")
        assert op.request.expected_version == 3
        assert not ops.set_variable("s1", "n", 5, None).request.HasField("expected_version")
        watch = ops.watch_request("s1", None, include_current=True)
        assert (list(watch.names), watch.include_current) == ([], True)
