"""The codec: JSON values plus bytes round-trip exactly; anything else is a clear SerializationError."""

from __future__ import annotations

import math
from typing import Any

import pytest

from snakepit.codec import Encoding, decode, encode
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

    def test_non_finite_floats_round_trip(self) -> None:
        """NaN and infinities survive (Python workers read them back)."""
        result = roundtrip([math.inf, -math.inf])
        assert result == [math.inf, -math.inf]
        assert math.isnan(roundtrip(math.nan))

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
            ({"a": bytearray(b"x")}, "args['a']", "bytearray", "bytes(args['a'])"),
            ({"a": memoryview(b"x")}, "args['a']", "memoryview", "pass bytes"),
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

    def test_self_referencing_value_is_refused(self) -> None:
        """A value that contains itself is a SerializationError, not a crash."""
        value: list[Any] = []
        value.append(value)
        with pytest.raises(SerializationError, match="contains itself"):
            encode(value)
