"""The codec: JSON values plus bytes round-trip exactly; anything else is a clear SerializationError."""

from __future__ import annotations

import array
import json
import math
import mmap
from typing import Any

import pytest

from snakepit.codec import MAX_DEPTH, Encoding, decode, encode, validate
from snakepit.errors import SerializationError


def roundtrip(value: Any) -> Any:
    document, blobs = encode(value)
    return decode(document, blobs)


class TestRoundTrip:
    @pytest.mark.parametrize(
        "value",
        [
            None,
            True,
            False,
            0,
            -(2**70),
            1.5,
            "",
            "ünïcødé \x00 nul",
            b"",
            b"\x00\xff" * 10,
            [],
            {},
            [1, "a", None, [b"x", {"k": b"y"}]],
            {"nested": {"deep": [{"b": b"\x01"}]}, "n": 3.25},
            {"\x00b": 1},
            {"\x00d": {"\x00b": b"z"}},
            {"\x00b": b"raw"},
        ],
    )
    def test_values_come_back_exactly(self, value: Any) -> None:
        """Every JSON value, bytes anywhere, and dicts using the marker keys round-trip unchanged."""
        result = roundtrip(value)
        assert result == value
        assert type(result) is type(value)

    def test_bytes_travel_as_blobs_not_in_the_document(self) -> None:
        """A bytes value is sent raw beside the JSON document, not encoded inside it."""
        payload = b"\xab" * 1000
        document, blobs = encode({"data": payload})
        assert blobs == [payload]
        assert len(document) < 100

    def test_tuples_arrive_as_lists(self) -> None:
        """A tuple is accepted and arrives as a list (JSON has no tuple)."""
        assert roundtrip((1, (2, b"3"))) == [1, [2, b"3"]]

    def test_non_finite_floats_round_trip_as_standard_json(self) -> None:
        """NaN and infinities travel as tagged markers in standard JSON and come back exactly."""
        value = {"x": [math.inf, -math.inf, 1.5], "n": math.nan, "\x00f": "nan"}
        document, blobs = encode(value)

        def strict(token: str) -> None:
            raise AssertionError(f"non-standard JSON token {token} on the wire")

        json.loads(document, parse_constant=strict)  # what any other language can read
        result = decode(document, blobs)
        assert result["x"] == [math.inf, -math.inf, 1.5]
        assert math.isnan(result["n"])
        assert result["\x00f"] == "nan"  # a user dict using the marker key is escaped

    def test_bare_nan_tokens_are_refused_on_decode(self) -> None:
        """The non-standard NaN/Infinity tokens are not part of the contract."""
        for document in (b"NaN", b"[Infinity]", b'{"a": -Infinity}'):
            with pytest.raises(SerializationError, match="non-standard JSON token"):
                decode(document)

    @pytest.mark.parametrize(
        "value",
        [
            bytearray(b"\x00ab"),
            memoryview(b"\x00abcd"),
            memoryview(b"\x00abcd")[::2],  # not contiguous
            memoryview(array.array("d", [1.5])),  # a view of wider items: its raw bytes
            array.array("B", [0, 1, 255]),
            array.array("b", [-1, 2]),
        ],
        ids=["bytearray", "memoryview", "strided", "double-view", "array-B", "array-b"],
    )
    def test_bytes_like_values_travel_as_bytes(self, value: Any) -> None:
        """Every bytes-like value (buffer of single bytes, or any memoryview) arrives as bytes."""
        document, blobs = encode({"v": [value]})
        assert blobs == [bytes(memoryview(value).tobytes())]
        assert decode(document, blobs) == {"v": [memoryview(value).tobytes()]}

    def test_mmap_travels_as_bytes(self) -> None:
        """An anonymous mmap is a buffer of bytes, so it travels as one."""
        with mmap.mmap(-1, 16) as mapped:
            mapped.write(b"snake")
            assert roundtrip(mapped)[:5] == b"snake"

    def test_values_nested_to_the_limit_round_trip(self) -> None:
        """MAX_DEPTH containers deep still travels, with bytes and markers at the bottom."""
        value: Any = [b"x", math.inf]
        for _ in range(MAX_DEPTH - 1):
            value = {"k": value}
        assert roundtrip(value) == value

    def test_pickle_is_opt_in_on_both_ends(self) -> None:
        """Pickle encodes anything picklable, and decoding refuses it unless allowed."""
        document, blobs = encode({1, 2}, encoding=Encoding.PICKLE)
        assert decode(document, blobs, encoding=Encoding.PICKLE, allow_pickle=True) == {1, 2}
        with pytest.raises(SerializationError, match="pickle was not enabled"):
            decode(document, blobs, encoding=Encoding.PICKLE)


class TestErrors:
    @pytest.mark.parametrize(
        ("value", "path", "type_name", "hint"),
        [
            ({"a": {1, 2}}, "args['a']", "set", "sorted("),
            ({"a": [object()]}, "args['a'][0]", "object", "not supported"),
            ({"a": {1: "x"}}, "args['a']", "int", "dict keys must be str"),
            ({"a": array.array("d", [1.0])}, "args['a']", "array", ".tolist()"),
        ],
    )
    def test_unsupported_values_name_path_and_type(
        self, value: Any, path: str, type_name: str, hint: str
    ) -> None:
        """An unsupported value is a SerializationError naming where it sits, its type and a fix."""
        with pytest.raises(SerializationError) as info:
            encode(value, what="args")
        err = info.value
        assert err.path == path
        assert err.type_name == type_name
        assert hint in err.message

    def test_subclass_of_a_plain_type_is_named(self) -> None:
        """A str subclass is refused with a hint to pass a plain str."""

        class Name(str):
            pass

        with pytest.raises(SerializationError, match="plain str instead of the subclass Name"):
            encode(Name("x"))

    def test_object_with_tolist_gets_a_conversion_hint(self) -> None:
        """An array-like (with .tolist) is refused with the conversion to use."""

        class ArrayLike:
            def tolist(self) -> list[int]:
                return [1]

        with pytest.raises(SerializationError, match=r"\.tolist\(\)"):
            encode(ArrayLike(), what="result")

    def test_malformed_payload_is_a_serialization_error(self) -> None:
        """A document that is not JSON, or that points at a missing blob, is rejected clearly."""
        with pytest.raises(SerializationError, match="malformed payload"):
            decode(b"{not json")
        with pytest.raises(SerializationError, match="bad blob reference"):
            decode(b'{"\\u0000b": 3}', [])

    def test_too_deep_a_value_is_refused_on_encode_naming_the_path(self) -> None:
        """A value nested ~500 deep is a SerializationError naming where, not a RecursionError."""
        value: Any = b"x"
        for _ in range(500):
            value = [value]
        with pytest.raises(SerializationError, match=f"more than {MAX_DEPTH} deep") as info:
            validate(value, what="result")
        assert info.value.path == "result" + "[0]" * MAX_DEPTH
        with pytest.raises(SerializationError, match=f"more than {MAX_DEPTH} deep"):
            encode(value, what="result")

    def test_too_deep_a_payload_is_refused_on_decode(self) -> None:
        """A peer that sends a deeper document (bytes at the bottom, or none) gets a typed error."""
        with_blob = b"[" * 500 + b'{"\\u0000b":0}' + b"]" * 500
        with pytest.raises(SerializationError, match=f"more than {MAX_DEPTH} deep"):
            decode(with_blob, [b"x"], what="result")
        with pytest.raises(SerializationError, match="malformed payload"):
            decode(b"[" * 100_000 + b"]" * 100_000, [], what="result")

    @pytest.mark.parametrize(
        "document",
        [b'{"\\u0000b": -1}', b'{"\\u0000b": true}', b'{"\\u0000b": "0"}', b'{"\\u0000d": 3}'],
    )
    def test_bad_markers_are_malformed_payloads(self, document: bytes) -> None:
        """A marker that points nowhere (a negative or boolean index) never picks a blob."""
        with pytest.raises(SerializationError, match="malformed payload"):
            decode(document, [b"only"])

    def test_huge_int_is_a_serialization_error(self) -> None:
        """An int beyond the interpreter's digit limit is a typed error, not a ValueError."""
        with pytest.raises(SerializationError, match="Exceeds the limit"):
            encode({"n": 10**5000}, what="args")

    def test_self_referencing_value_is_refused(self) -> None:
        """A value that contains itself is a SerializationError, not a crash."""
        value: list[Any] = []
        value.append(value)
        with pytest.raises(SerializationError, match="contains itself"):
            encode(value)
