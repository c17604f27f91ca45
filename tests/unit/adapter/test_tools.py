"""Tool binding in the worker, without a worker: specs from signatures, arguments to
parameters, the session context injected, and the typed errors for what does not fit."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._wire import to_payload
from snakepit.adapter import Adapter, SessionContext, tool
from snakepit.adapter._core import describe_response, lookup, prepare
from snakepit.adapter._tools import collect_tools
from snakepit.errors import InvalidArgumentsError, SerializationError, ToolNotFoundError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


class Tools(Adapter):
    @tool
    def add(self, a: int, b: int = 2) -> int:
        """Add two numbers.

        The second paragraph is not part of the description.
        """
        return a + b

    @tool(name="who.am.i", idempotent=True)
    def whoami(self, ctx: SessionContext, greeting: str = "hi") -> dict[str, Any]:
        return {
            "greeting": greeting,
            "session": ctx.session_id,
            "request": ctx.request_id,
            "worker": ctx.worker_id,
            "tool": ctx.tool,
        }

    @tool(description="ratio of two floats")
    async def ratio(self, x: float, *, y: float) -> float:
        return x / y

    @tool
    def count(self, n: int) -> Iterator[int]:
        yield from range(n)

    @tool
    async def acount(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @tool
    def anything(self, **options: Any) -> dict[str, Any]:
        return options

    def not_a_tool(self) -> None:
        raise AssertionError("never collected")


TOOLS = collect_tools(Tools)


def _request(
    tool_name: str, args: Any, *, session: str = "", request_id: int = 0
) -> pb.ExecuteRequest:
    return pb.ExecuteRequest(
        tool=tool_name, args=to_payload(args, "args"), session_id=session, request_id=request_id
    )


def _call(tool_name: str, args: Any, **request: Any) -> Any:
    call = prepare(
        Tools(),
        TOOLS[tool_name],
        _request(tool_name, args, **request),
        worker_id="w7",
        allow_pickle=False,
    )
    return call()


class TestSpecs:
    def test_only_marked_methods_are_tools_by_their_public_names(self) -> None:
        assert sorted(TOOLS) == ["acount", "add", "anything", "count", "ratio", "who.am.i"]

    def test_a_spec_comes_from_the_signature_and_the_docstring(self) -> None:
        add = TOOLS["add"]
        assert add.description == "Add two numbers."
        assert [(p.name, p.annotation, p.required, p.default_json) for p in add.params] == [
            ("a", "int", True, ""),
            ("b", "int", False, "2"),
        ]
        assert add.signature_text() == "add(a: int, b: int = 2)"
        assert (add.kind, add.streaming, add.is_async) == ("sync", False, False)

    def test_kinds_and_options(self) -> None:
        assert (TOOLS["ratio"].kind, TOOLS["ratio"].description) == ("async", "ratio of two floats")
        assert [p.kind for p in TOOLS["ratio"].params] == ["positional_or_keyword", "keyword_only"]
        assert TOOLS["count"].kind == "generator" and TOOLS["count"].streaming
        assert TOOLS["acount"].kind == "async_generator" and TOOLS["acount"].is_async
        assert TOOLS["who.am.i"].idempotent and TOOLS["who.am.i"].method_name == "whoami"
        assert TOOLS["anything"].accepts_var_kwargs

    def test_the_context_parameter_is_not_an_argument(self) -> None:
        who = TOOLS["who.am.i"]
        assert who.context_param == "ctx"
        assert [p.name for p in who.params] == ["greeting"]

    def test_the_description_sent_to_the_host_carries_every_spec(self) -> None:
        response = describe_response(TOOLS, adapter_path="m:Tools", worker_id="w7")
        by_name = {t.name: t for t in response.tools}
        assert by_name["who.am.i"].uses_context and by_name["who.am.i"].idempotent
        assert by_name["acount"].streaming and by_name["acount"].is_async
        assert [(p.name, p.type, p.required) for p in by_name["add"].params] == [
            ("a", "int", True),
            ("b", "int", False),
        ]
        assert (response.adapter, response.worker_id) == ("m:Tools", "w7")

    def test_inherited_tools_count_and_two_tools_may_not_share_a_name(self) -> None:
        class More(Tools):
            @tool
            def extra(self) -> int:
                return 1

        assert {"add", "extra"} <= set(collect_tools(More))

        with pytest.raises(TypeError, match="two tools are named 'same'"):

            class Twice(Adapter):  # checked when the class is made
                @tool(name="same")
                def one(self) -> None: ...

                @tool(name="same")
                def two(self) -> None: ...

    def test_positional_only_parameters_and_bad_names_are_refused(self) -> None:
        with pytest.raises(TypeError, match="positional-only or \\*args"):

            class Positional(Adapter):
                @tool
                def f(self, a: int, /) -> int:
                    return a

        with pytest.raises(ValueError, match="tool names must match"):
            tool(name="has space")(Tools.add)


class TestBinding:
    def test_arguments_reach_their_parameters_and_defaults_fill_the_rest(self) -> None:
        assert _call("add", {"a": 1}) == 3
        assert _call("add", {"a": 1, "b": 10}) == 11
        assert asyncio.run(_call("ratio", {"x": 3, "y": 2.0})) == 1.5

    def test_var_kwargs_take_any_argument(self) -> None:
        assert _call("anything", {"p": 1, "q": [2]}) == {"p": 1, "q": [2]}

    def test_a_context_parameter_gets_the_call_s_session_context(self) -> None:
        got = _call("who.am.i", {"greeting": "yo"}, session="s1", request_id=42)
        assert got == {
            "greeting": "yo",
            "session": "s1",
            "request": 42,
            "worker": "w7",
            "tool": "who.am.i",
        }
        assert _call("who.am.i", {})["session"] is None  # outside a session

    @pytest.mark.parametrize(
        ("args", "argument", "words"),
        [
            ({"a": 1, "c": 3}, "c", "unknown argument(s) 'c'; it takes add(a: int, b: int = 2)"),
            ({"b": 3}, "a", "missing required argument 'a'"),
            ({"a": "1"}, "a", "argument 'a' expects int, got str '1'"),
            ({"a": True}, "a", "argument 'a' expects int, got bool"),
            ([1, 2], None, "takes keyword arguments as a dict, got list"),
        ],
    )
    def test_what_does_not_fit_is_invalid_arguments_naming_tool_and_argument(
        self, args: Any, argument: str | None, words: str
    ) -> None:
        with pytest.raises(InvalidArgumentsError) as caught:
            _call("add", args)
        assert words in str(caught.value)
        assert caught.value.details["tool"] == "add"
        assert caught.value.details["argument"] == argument

    def test_an_int_is_a_float_and_none_passes_unchecked(self) -> None:
        assert TOOLS["ratio"].bind({"x": 1, "y": 2}) == {"x": 1, "y": 2}
        assert TOOLS["add"].bind({"a": None}) == {"a": None}
        assert TOOLS["anything"].bind(None) == {}  # no arguments at all: an empty dict
        with pytest.raises(InvalidArgumentsError, match="missing required argument 'a'"):
            TOOLS["add"].bind(None)

    def test_arguments_that_do_not_decode_are_a_serialization_error(self) -> None:
        request = pb.ExecuteRequest(tool="add", args=pb.Payload(document=b"{nope"))
        with pytest.raises(SerializationError):
            prepare(Tools(), TOOLS["add"], request, worker_id="w7", allow_pickle=False)


class TestLookup:
    def test_an_unknown_tool_names_the_tools_there_are(self) -> None:
        with pytest.raises(ToolNotFoundError) as caught:
            lookup(TOOLS, "sub", adapter_path="m:Tools", worker_id="w7")
        message = str(caught.value)
        assert "worker 'w7' (m:Tools) has no tool 'sub'" in message
        assert "available: acount, add, anything, count, ratio, who.am.i" in message
        assert caught.value.details["available"] == sorted(TOOLS)

    def test_a_known_tool_is_found(self) -> None:
        assert lookup(TOOLS, "add", adapter_path="m:Tools", worker_id="w7") is TOOLS["add"]
