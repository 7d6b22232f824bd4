"""Making agent values storable (debug_sink.sdk.sanitize): pure functions, no services."""

from __future__ import annotations

import dataclasses
import enum
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from pydantic import BaseModel
from structlog.testing import capture_logs

from debug_sink.sdk import sanitize
from debug_sink.sdk.sanitize import (
    MAX_JSON_FIELD_BYTES,
    MAX_KEY_CHARS,
    MAX_TEXT_CHARS,
    Sanitizer,
    depth,
    fit,
    free_text,
    marker,
    max_length,
    plain_json,
    without_surrogates,
)
from debug_sink.wire.canonical import canonical_json, state_hash
from debug_sink.wire.events import MODELS, ErrorEvent, EventBase, HookEvent, StepEvent
from debug_sink.wire.redact import REDACTED, Redactor


def bounded_fields() -> Iterator[tuple[type[EventBase], str, int]]:
    """Every (model, field, maxLength) the models' JSON Schemas declare for a string."""
    for model in MODELS.values():
        for name, schema in model.model_json_schema()["properties"].items():
            for option in schema.get("anyOf", [schema]):
                if "maxLength" in option:
                    yield model, name, option["maxLength"]


def nested(levels: int) -> dict[str, Any]:
    """A dict nested ``levels`` deep: ``nested(1) == {}``."""
    tree: dict[str, Any] = {}
    for _ in range(levels - 1):
        tree = {"n": tree}
    return tree


class TestMaxLength:
    """The column length of a field is read from its model, required or optional alike."""

    def test_agrees_with_the_json_schema_for_every_bounded_field(self) -> None:
        found = list(bounded_fields())
        assert {model for model, _, _ in found} == set(MODELS.values())
        for model, name, limit in found:
            assert max_length(model, name) == limit, f"{model.__name__}.{name}"

    def test_optional_and_required_fields(self) -> None:
        assert max_length(ErrorEvent, "agent_name") == 255  # Name255
        assert max_length(ErrorEvent, "operation_name") == 255  # Str255 | None
        assert max_length(ErrorEvent, "error_code") == 50  # Str50 | None
        assert max_length(StepEvent, "step_type") == 100  # Name100

    def test_a_field_without_a_length_is_a_programming_error(self) -> None:
        with pytest.raises(LookupError, match=r"ErrorEvent\.error_message"):
            max_length(ErrorEvent, "error_message")


class TestFit:
    """fit() keeps a value that fits and cuts a longer one to exactly the field's length,
    marking the cut with "…" at the end (or, keep="end", at the start); NUL becomes U+FFFD."""

    def test_short_values_and_none_are_unchanged(self) -> None:
        assert fit(ErrorEvent, "error_code", "504") == "504"
        assert fit(ErrorEvent, "error_code", "x" * 50) == "x" * 50
        assert fit(ErrorEvent, "error_code", None) is None

    def test_long_value_keeps_its_start(self) -> None:
        value = "abc" * 100
        cut = fit(HookEvent, "resource_id", value)
        assert len(cut) == 255
        assert cut == value[:254] + "…"

    def test_keep_end_keeps_the_end(self) -> None:
        value = "pkg." * 100 + "VeryLongError"
        cut = fit(ErrorEvent, "error_type", value, keep="end")
        assert len(cut) == 255
        assert cut == "…" + value[-254:]
        assert cut.endswith("VeryLongError")

    def test_nul_is_replaced(self) -> None:
        assert fit(ErrorEvent, "agent_name", "a\x00b") == "a\ufffdb"

    def test_a_fitted_value_is_accepted_by_the_model(self) -> None:
        for model, name, _ in bounded_fields():
            value = fit(model, name, "é" * 1000)
            assert len(value) == max_length(model, name)


class TestFreeText:
    """Unbounded text is cut at MAX_TEXT_CHARS with a marker that says how much was cut."""

    def test_within_the_limit_is_unchanged(self) -> None:
        assert free_text("m" * MAX_TEXT_CHARS) == "m" * MAX_TEXT_CHARS
        assert free_text(None) is None

    def test_over_the_limit_is_cut_visibly(self) -> None:
        text = free_text("m" * (MAX_TEXT_CHARS + 10))
        assert text == "m" * MAX_TEXT_CHARS + "\n…[truncated 10 characters]"

    def test_nul_is_replaced_before_measuring(self) -> None:
        assert free_text("a\x00") == "a\ufffd"


class Colour(enum.Enum):
    RED = "red"


class Point(BaseModel):
    x: int


class TestPlainJson:
    """Any value becomes plain JSON types, with the bytes that encode them; NUL characters
    become U+FFFD; what cannot be JSON at all becomes a logged _unserialisable marker."""

    def test_conversions(self) -> None:
        value = {
            "tuple": (1, 2),
            "set": {3, 1},
            "unorderable": {1, "a"},
            5: "int key",
            "decimal": Decimal("1.5"),
            "nan": Decimal("NaN"),
            "bytes": b"caf\xc3\xa9\xff",
            "enum": Colour.RED,
            "path": PurePosixPath("/tmp/x"),
            "model": Point(x=1),
            "mapping": MappingProxyType({"k": "v"}),
            "other": object,
        }
        tree, data = plain_json(value)
        assert orjson.loads(data) == tree
        assert tree["tuple"] == [1, 2]
        assert tree["set"] == [1, 3]
        assert sorted(tree["unorderable"]) == ["1", "a"]
        assert tree["5"] == "int key"
        assert tree["decimal"] == 1.5
        assert tree["nan"] == "NaN"
        assert tree["bytes"] == "café\ufffd"
        assert tree["enum"] == "red"
        assert tree["path"] == "/tmp/x"
        assert tree["model"] == {"x": 1}
        assert tree["mapping"] == {"k": "v"}
        assert tree["other"] == "<class 'object'>"

    def test_nul_in_keys_and_values(self) -> None:
        tree, data = plain_json({"k\x00": ["v\x00", {"\x00": "\x00"}]})
        assert tree == {"k\ufffd": ["v\ufffd", {"\ufffd": "\ufffd"}]}
        assert orjson.loads(data) == tree
        assert b"\\u0000" not in data

    @pytest.mark.parametrize("kind", ["cycle", "huge_int"])
    def test_unserialisable_becomes_a_logged_marker(self, kind: str) -> None:
        value: dict[str, Any] = {"n": 2**70}
        if kind == "cycle":
            value = {}
            value["self"] = value
        with capture_logs() as logs:
            tree, data = plain_json(value)
        assert tree["_unserialisable"] is True
        assert tree["_type"] == "dict"
        assert tree["_error"]
        assert orjson.loads(data) == tree
        assert [entry["event"] for entry in logs] == ["sdk_value_unserialisable"]


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")


@dataclasses.dataclass
class Record:
    text: str
    _private: int = 0


class TestKeysAndSurrogates:
    """What orjson refuses but can be mended -- keys of other types, lone surrogates -- is
    mended, on that path only, and the rest of the value kept; no entry is lost to a key
    that becomes equal to another."""

    def test_keys_of_any_type_become_strings_and_the_rest_is_kept(self) -> None:
        tree, data = plain_json(
            {
                "task": "route",
                "grid": {(0, 1): "wall", (2, 3): "door"},
                frozenset({1}): "set key",
                Unprintable(): "its type",
                ("x" * 1000,): "long",
                7: "int",
                None: "none",
                date(2026, 1, 2): "date",
                uuid.UUID(int=1): "uuid",
                Colour.RED: "enum",
            }
        )
        assert orjson.loads(data) == tree
        assert tree["task"] == "route"
        assert tree["grid"] == {"(0, 1)": "wall", "(2, 3)": "door"}
        assert tree["frozenset({1})"] == "set key"
        assert tree["<Unprintable>"] == "its type"
        (long_key,) = [k for k, v in tree.items() if v == "long"]
        assert len(long_key) == MAX_KEY_CHARS
        assert long_key.startswith("('xxx")
        assert long_key.endswith("…")
        # the keys orjson takes, as it writes them
        assert tree["7"] == "int"
        assert tree["null"] == "none"
        assert tree["2026-01-02"] == "date"
        assert tree["00000000-0000-0000-0000-000000000001"] == "uuid"
        assert tree["red"] == "enum"

    def test_a_key_made_a_string_never_takes_another_keys_place(self) -> None:
        tree, _ = plain_json({(0, 1): "tuple", "(0, 1)": "string", "(0, 1) #2": "also"})
        assert tree == {"(0, 1)": "string", "(0, 1) #2": "also", "(0, 1) #3": "tuple"}

    def test_lone_surrogates_become_replacement_characters(self) -> None:
        state: dict[str, Any] = {
            "step": 4,
            "tool_output": "emoji cut: \ud83d",
            "pair": "\ud83d\ude00",
            "nested": [("\udcff",), {"k\udcff": Record("r\ud800", 1)}],
            "k\ud800": "mended key",
        }
        state["k\ufffd"] = "clean key"  # what the key above becomes
        tree, data = plain_json(state)
        assert orjson.loads(data) == tree
        assert tree["step"] == 4
        assert tree["tool_output"] == "emoji cut: \ufffd"
        assert tree["pair"] == "\U0001f600"
        assert tree["nested"] == [["\ufffd"], {"k\ufffd": {"text": "r\ufffd"}}]
        assert tree["k\ufffd"] == "clean key"
        assert tree["k\ufffd #2"] == "mended key"

    def test_an_integer_key_equal_to_a_string_key_keeps_both(self) -> None:
        """orjson writes {1: .., "1": ..} with "1" twice (a reader keeps the last): the
        integer key gets a suffix instead, also inside objects orjson writes itself."""
        tree, data = plain_json({1: "int", "1": "str", "n": [{2: "a", "2": "b"}]})
        assert tree == {"1 #2": "int", "1": "str", "n": [{"2 #2": "a", "2": "b"}]}
        assert data.count(b'"1"') == 1

    def test_nul_keys_that_collide_keep_both(self) -> None:
        tree, _ = plain_json({"k\x00": 1, "k\ufffd": 2})
        assert tree == {"k\ufffd #2": 1, "k\ufffd": 2}

    def test_without_surrogates(self) -> None:
        assert without_surrogates("plain") == "plain"
        assert without_surrogates("café") == "café"
        assert without_surrogates("a\ud83db\udcff") == "a\ufffdb\ufffd"
        assert without_surrogates("\ud83d\ude00") == "\U0001f600"

    def test_a_value_orjson_takes_is_not_walked(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def no_walk(*args: Any) -> Any:
            raise AssertionError("walked")

        monkeypatch.setattr(sanitize, "_mended", no_walk)
        tree, _ = plain_json({"a": [1, "é", {"2": (3,)}], "when": date(2026, 1, 2)})
        assert tree == {"a": [1, "é", {"2": [3]}], "when": "2026-01-02"}

    @pytest.mark.parametrize("levels", [300, 5000])
    def test_too_deep_to_mend_is_the_marker(self, levels: int) -> None:
        value: dict[Any, Any] = {(0,): "tuple key"}
        for _ in range(levels):
            value = {"next": value}
        with capture_logs():
            tree, _ = plain_json(value)
        assert tree["_unserialisable"] is True

    def test_mending_deep_in_the_agents_stack_is_the_marker(self) -> None:
        """The walk recurses: where the agent's own stack leaves it too little room, the
        value is the marker, never a RecursionError in the agent."""
        value: dict[Any, Any] = {(0,): "tuple key"}
        for _ in range(200):
            value = {"next": value}

        def deep(frames: int) -> Any:
            return deep(frames - 1) if frames else plain_json(value)[0]

        with capture_logs():
            tree = deep(sys.getrecursionlimit() - 150)
        assert tree["_unserialisable"] is True

    def test_a_cycle_with_a_key_to_mend_is_the_marker(self) -> None:
        value: dict[Any, Any] = {(0,): "tuple key"}
        value["self"] = [value]
        with capture_logs():
            tree, _ = plain_json(value)
        assert tree["_unserialisable"] is True
        assert tree["_error"]


class TestDepth:
    """Depth counts nested containers: a scalar is 0, {} is 1, {"a": []} is 2."""

    def test_depths(self) -> None:
        assert depth(3) == 0
        assert depth({}) == 1
        assert depth({"a": []}) == 2
        assert depth([[], [[{"x": 1}]]]) == 4
        assert depth(nested(30)) == 30


class TestMarker:
    """The stand-in for a value too large or too deep keeps its size, hash, top-level keys
    and the start of its JSON, and always fits the limit it is given."""

    def test_fields(self) -> None:
        tree = {"b": 1, "a": "x" * 5000}
        stand_in = marker(tree, "too_large", 64 * 1024)
        assert stand_in["_truncated"] is True
        assert stand_in["_reason"] == "too_large"
        assert stand_in["_original_size_bytes"] == len(canonical_json(tree))
        assert stand_in["_original_state_hash"] == state_hash(tree)
        assert stand_in["_top_level_keys"] == ["a", "b"]
        assert stand_in["preview"] == canonical_json(tree).decode()[:2000]

    def test_keys_are_listed_up_to_50_of_up_to_100_characters(self) -> None:
        tree = {f"{i:03d}" + "k" * 200: i for i in range(80)}
        keys = marker(tree, "too_large", 1024 * 1024)["_top_level_keys"]
        assert len(keys) == 50
        assert all(len(k) == 100 for k in keys)

    @pytest.mark.parametrize("limit", [1024, 2048, 4096])
    def test_fits_a_small_limit(self, limit: int) -> None:
        tree = {f"key{i}": "v" * 100 for i in range(200)}
        assert len(canonical_json(marker(tree, "too_large", limit))) <= limit

    def test_a_non_object_has_no_keys(self) -> None:
        assert marker(["x"] * 10, "too_large", 4096)["_top_level_keys"] == []


class TestSanitizerState:
    """state() gives the state as sent and its hash: redacted, hash of the redacted state,
    and the marker instead of a state over max_state_bytes or deeper than max_depth allows
    (the message object is level 1, so the state itself may nest max_depth - 1 deep)."""

    def sanitizer(self, **limits: int) -> Sanitizer:
        return Sanitizer(
            Redactor(),
            max_state_bytes=limits.get("bytes", 1024 * 1024),
            max_depth=limits.get("depth", 64),
        )

    def test_redacted_and_hashed(self) -> None:
        state, digest = self.sanitizer().state({"api_key": "sk-1", "n": (1,)})
        assert state == {"api_key": REDACTED, "n": [1]}
        assert digest == state_hash(state)

    def test_too_large_becomes_the_marker(self) -> None:
        big = {"blob": "x" * 10_000, "password": "p"}
        state, digest = self.sanitizer(bytes=4096).state(big)
        assert state["_reason"] == "too_large"
        assert state["_original_state_hash"] == state_hash({**big, "password": REDACTED})
        assert len(canonical_json(state)) <= 4096
        assert digest == state_hash(state)

    def test_depth_limit(self) -> None:
        sanitizer = self.sanitizer(depth=8)
        kept, _ = sanitizer.state(nested(7))
        assert kept == nested(7)
        cut, _ = sanitizer.state(nested(8))
        assert cut["_reason"] == "too_deep"


class TestSanitizerJsonField:
    """json_field() treats other JSON fields alike, with MAX_JSON_FIELD_BYTES as the size
    limit; None stays None and a non-object value stays what it is."""

    def sanitizer(self) -> Sanitizer:
        return Sanitizer(Redactor(), max_state_bytes=1024 * 1024, max_depth=8)

    def test_plain_redacted_and_none(self) -> None:
        sanitizer = self.sanitizer()
        assert sanitizer.json_field(None) is None
        assert sanitizer.json_field([1, (2,)]) == [1, [2]]
        assert sanitizer.json_field({"headers": {"cookie": "c"}}) == {
            "headers": {"cookie": REDACTED}
        }

    def test_too_large_and_too_deep(self) -> None:
        sanitizer = self.sanitizer()
        large = sanitizer.json_field({"blob": "x" * (MAX_JSON_FIELD_BYTES + 1)})
        assert large["_reason"] == "too_large"
        assert len(canonical_json(large)) <= MAX_JSON_FIELD_BYTES
        assert sanitizer.json_field(nested(7)) == nested(7)
        assert sanitizer.json_field(nested(8))["_reason"] == "too_deep"
