"""Canonical JSON and the state hash (debug_sink.wire.canonical)."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from debug_sink.wire.canonical import NumberOutOfRange, canonical_json, parse_json, state_hash

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=8)


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's keys inserted in a random order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: shuffled(child, rng) for key, child in items}
    if isinstance(value, list):
        return [shuffled(child, rng) for child in value]
    return value


class TestCanonicalJson:
    """canonical_json: sorted keys at every depth, no whitespace, raw UTF-8."""

    def test_sorts_keys_at_every_depth_and_is_compact(self) -> None:
        """Keys are sorted inside nested objects and lists; no spaces are emitted."""
        value = {"b": 1, "a": {"d": [{"z": 1, "y": 2}], "c": None}}
        assert canonical_json(value) == b'{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}'

    def test_non_ascii_is_utf8_not_escaped(self) -> None:
        """Non-ASCII text is written as UTF-8 bytes, not as \\u escapes."""
        assert canonical_json({"name": "Zoë 😀"}) == '{"name":"Zoë 😀"}'.encode()

    @given(json_objects, st.randoms(use_true_random=False))
    def test_hash_ignores_key_order(self, value: dict[str, Any], rng: random.Random) -> None:
        """The same object with its keys in any order has the same bytes and hash."""
        other = shuffled(value, rng)
        assert canonical_json(other) == canonical_json(value)
        assert state_hash(other) == state_hash(value)

    @given(json_objects)
    def test_round_trip_is_a_fixed_point(self, value: dict[str, Any]) -> None:
        """Parsing canonical JSON and canonicalising it again gives the same bytes."""
        once = canonical_json(value)
        assert canonical_json(orjson.loads(once)) == once

    @pytest.mark.parametrize(
        ("value", "written"),
        [
            (1.5e-07, b"0.00000015"),
            (-1.2e-07, b"-0.00000012"),
            (1e16, b"10000000000000000"),
            (1.2345678901234568e17, b"123456789012345680"),
            (2e-05, b"0.00002"),
            (-0.0, b"0.0"),
        ],
    )
    def test_numbers_are_written_as_jsonb_prints_them(self, value: float, written: bytes) -> None:
        """No exponent (jsonb's numeric has none), no negative zero: the stored state reads
        back to the same bytes, and SQL's debug_canonical_json agrees."""
        assert canonical_json({"x": value}) == b'{"x":' + written + b"}"
        assert canonical_json({"s": "1e+16 in a string"}) == b'{"s":"1e+16 in a string"}'


class TestStateHash:
    """state_hash: SHA-256 hex of the canonical JSON."""

    def test_known_value(self) -> None:
        """The hash is pinned, so a change of format is noticed (stored hashes would break)."""
        value = {"b": [1, 2], "a": "x"}
        expected = hashlib.sha256(b'{"a":"x","b":[1,2]}').hexdigest()
        assert state_hash(value) == expected
        assert expected == "721ef82f2d6c0997bffb7a8ab3f40f8fb45b0b52ce2af3afa6b0f05efbdc317f"

    def test_is_64_lowercase_hex(self) -> None:
        """The digest fits VARCHAR(64) and is lower-case hex."""
        digest = state_hash({})
        assert len(digest) == 64
        assert digest == digest.lower()
        int(digest, 16)


class TestParseJson:
    """parse_json: orjson's values, but every number as jsonb keeps it."""

    @given(json_objects)
    def test_same_as_orjson_within_its_range(self, value: dict[str, Any]) -> None:
        """Where orjson is exact, parse_json gives what orjson.loads gives."""
        text = orjson.dumps(value)
        assert parse_json(text) == orjson.loads(text)

    @pytest.mark.parametrize(
        ("literal", "printed"),
        [
            (b"18446744073709551616", b"18446744073709551616"),
            (b"-9223372036854775809", b"-9223372036854775809"),
            (b"1e400", b"1" + b"0" * 400),
            (b"1.50E+400", b"15" + b"0" * 399),
            (b"-2.5e308", b"-25" + b"0" * 307),
        ],
    )
    def test_numbers_orjson_cannot_hold_are_kept_as_printed(
        self, literal: bytes, printed: bytes
    ) -> None:
        """Such a number comes back from canonical_json (and orjson.dumps) as jsonb prints
        it, so the stored bytes and SQL's debug_canonical_json agree; anything else in the
        message is parsed as usual."""
        value = parse_json(b'{"b":' + literal + b',"a":[1.5,"x",18446744073709551615]}')
        assert isinstance(value["b"], orjson.Fragment)
        expected = b'{"a":[1.5,"x",18446744073709551615],"b":' + printed + b"}"
        assert canonical_json(value) == expected
        assert canonical_json(parse_json(canonical_json(value))) == expected

    def test_digits_in_strings_change_nothing(self) -> None:
        """A long run of digits inside a string takes the exact path and parses the same."""
        text = b'{"order":"12345678901234567890123","n":3.0}'
        assert parse_json(text) == orjson.loads(text)

    @pytest.mark.parametrize("literal", [b"1e131072", b"-1.5e200000", b"1" * 131073])
    def test_numbers_jsonb_cannot_store_raise(self, literal: bytes) -> None:
        """Beyond numeric's limits: NumberOutOfRange, before any huge string is built."""
        with pytest.raises(NumberOutOfRange):
            parse_json(b"[" + literal + b", 1e400]")
