"""Decoding and validating one Kafka message (debug_sink.wire.validation.decode)."""

from __future__ import annotations

from datetime import UTC, datetime
from hashlib import sha256
from typing import Any
from uuid import UUID

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from debug_sink.errors import ConfigurationError, InvalidEvent
from debug_sink.wire.canonical import canonical_json, state_hash
from debug_sink.wire.events import (
    DEFAULT_TOPICS,
    EventKind,
    HookEvent,
    SnapshotEvent,
    StepEvent,
)
from debug_sink.wire.examples import EXAMPLES
from debug_sink.wire.redact import REDACTED
from debug_sink.wire.validation import (
    MAX_DEPTH_LIMIT,
    Accepted,
    ErrorClass,
    Rejected,
    ValidationConfig,
    decode,
)

CONFIG = ValidationConfig()
RECORD_MS = 1_760_191_407_512
RECORD_TIME = datetime(2025, 10, 11, 14, 3, 27, 512_000, tzinfo=UTC)
SNAPSHOTS = "debug.state_snapshots"
ERRORS = "debug.error_events"
STEPS = "debug.workflow_steps"
HOOKS = "debug.hook_events"


def message(topic: str, **changes: Any) -> dict[str, Any]:
    """A copy of the topic's example with ``changes`` applied (``None`` deletes a key)."""
    result = dict(EXAMPLES[topic])
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def run(
    topic: str,
    value: dict[str, Any] | bytes | None,
    *,
    config: ValidationConfig = CONFIG,
    timestamp_ms: int = RECORD_MS,
) -> Accepted | Rejected:
    raw = orjson.dumps(value) if isinstance(value, dict) else value
    return decode(topic, raw, timestamp_ms=timestamp_ms, config=config)


def accepted(topic: str, value: dict[str, Any] | bytes, **kwargs: Any) -> Accepted:
    result = run(topic, value, **kwargs)
    assert isinstance(result, Accepted), result
    return result


def rejected(topic: str, value: dict[str, Any] | bytes | None, **kwargs: Any) -> Rejected:
    result = run(topic, value, **kwargs)
    assert isinstance(result, Rejected), result
    return result


class TestAccepts:
    """A valid message of every topic becomes its kind's complete model instance."""

    @pytest.mark.parametrize("topic", sorted(EXAMPLES))
    def test_example_per_topic(self, topic: str) -> None:
        """The example decodes to the topic's kind and model, ids parsed."""
        result = accepted(topic, EXAMPLES[topic])
        assert result.kind is DEFAULT_TOPICS[topic]
        assert type(result.event) is result.kind.model
        assert result.event.id == UUID(EXAMPLES[topic]["id"])

    def test_minimal_messages(self) -> None:
        """Only the required fields are needed; schema_version defaults to 1."""
        minimal = {
            "id": "0b6f3c2d-8e1a-4d5b-9c7f-3a2e1d4b6c58",
            "correlation_id": "5f0c2a8e-3b1d-4c7a-9e2f-6d8b1a4c3e21",
        }
        accepted(
            SNAPSHOTS,
            {**minimal, "snapshot_type": "checkpoint", "agent_name": "a", "agent_state": {}},
        )
        accepted(
            ERRORS,
            {
                **minimal,
                "error_type": "E",
                "error_category": "agent",
                "error_severity": "low",
                "error_message": "",
                "agent_name": "a",
            },
        )
        accepted(HOOKS, {**minimal, "source": "PostToolUse", "payload": {}})

    def test_uuid_spellings(self) -> None:
        """Hyphen-less and upper-case UUIDs are accepted and normalised."""
        result = accepted(ERRORS, message(ERRORS, id="C7E2B9A41D3F4A6E8B5C9F0D2E7A1B36"))
        assert str(result.event.id) == "c7e2b9a4-1d3f-4a6e-8b5c-9f0d2e7a1b36"

    def test_large_integers_in_json_fields(self) -> None:
        """Integers beyond int4 are fine inside JSON fields (jsonb stores any number)."""
        raw = orjson.dumps(message(SNAPSHOTS, agent_state={"big": 2**64 - 1, "neg": -(2**63)}))
        result = accepted(SNAPSHOTS, raw)
        assert result.state_json == b'{"big":18446744073709551615,"neg":-9223372036854775808}'

    def test_years_0002_and_9998_with_any_offset(self) -> None:
        """The accepted range's edge years are stored whatever their offset: in UTC they stay
        inside what Python and PostgreSQL hold as finite times."""
        for when in ("9998-12-31T23:59:59.999999-23:59", "0002-01-01T00:00:00+23:59"):
            accepted(ERRORS, message(ERRORS, occurred_at=when))

    def test_offsets_are_kept_as_instants(self) -> None:
        """A timestamp with any offset is accepted and denotes the same instant."""
        result = accepted(ERRORS, message(ERRORS, occurred_at="2025-10-11T16:03:27.512+02:00"))
        assert result.event.occurred_at == RECORD_TIME  # type: ignore[union-attr]

    @pytest.mark.parametrize("topic", sorted(EXAMPLES))
    @pytest.mark.parametrize(
        "frame",
        [
            b"\x00\x00\x00\x00\x07",  # Confluent Schema Registry: magic 0, schema id 7
            b"\x00\x7f\xff\xff\xff",
            b"\xef\xbb\xbf",  # a UTF-8 byte order mark
            b"\x00\x00\x00\x01\x00\xef\xbb\xbf",
        ],
    )
    def test_a_framed_message_is_read_as_its_json(self, topic: str, frame: bytes) -> None:
        """Producers of other ecosystems frame JSON: Schema Registry serializers put a zero
        byte and a schema id first, some encoders a byte order mark. The event is the one
        the plain JSON gives."""
        plain = accepted(topic, EXAMPLES[topic])
        framed = accepted(topic, frame + orjson.dumps(EXAMPLES[topic]))
        assert framed.event == plain.event
        assert framed.kind is plain.kind

    @pytest.mark.parametrize(
        ("value", "error_class"),
        [
            (b"\x00\x00\x00\x00\x07", ErrorClass.NOT_JSON),  # a header and nothing after it
            (b"\x00\x00\x00\x00\x07[1]", ErrorClass.NOT_OBJECT),
            (b"\xef\xbb\xbf", ErrorClass.EMPTY),
            (b"\x00{}", ErrorClass.NOT_JSON),  # too short for a header
        ],
    )
    def test_a_frame_around_no_event_is_still_rejected(
        self, value: bytes, error_class: ErrorClass
    ) -> None:
        assert rejected(ERRORS, value).error_class is error_class


class TestRecordTimestamp:
    """An event's own timestamp, when absent, is the Kafka record timestamp."""

    @pytest.mark.parametrize(
        ("topic", "field"),
        [
            (SNAPSHOTS, "captured_at"),
            (ERRORS, "occurred_at"),
            ("debug.success_events", "occurred_at"),
            ("debug.transformation_events", "created_at"),
            (HOOKS, "created_at"),
        ],
    )
    def test_filled_when_absent_or_null(self, topic: str, field: str) -> None:
        """Missing or null -> the record timestamp, in UTC, to the millisecond."""
        for value in (message(topic, **{field: None}), {**EXAMPLES[topic], field: None}):
            event = accepted(topic, value).event
            assert getattr(event, field) == RECORD_TIME

    def test_producer_timestamp_wins(self) -> None:
        """A timestamp the producer sent is kept."""
        event = accepted(SNAPSHOTS, EXAMPLES[SNAPSHOTS]).event
        assert isinstance(event, SnapshotEvent)
        assert event.captured_at == datetime(2025, 10, 11, 14, 3, 27, 512_000, tzinfo=UTC)

    def test_same_on_replay(self) -> None:
        """Decoding the same record twice gives equal events (replays are deterministic)."""
        raw = orjson.dumps(message(ERRORS, occurred_at=None))
        first = decode(ERRORS, raw, timestamp_ms=RECORD_MS, config=CONFIG)
        second = decode(ERRORS, raw, timestamp_ms=RECORD_MS, config=CONFIG)
        assert first == second

    def test_step_started_fills_started_at_only(self) -> None:
        """A started event defaults started_at; completed_at stays empty."""
        value = message(STEPS, status="started", started_at=None, completed_at=None)
        event = accepted(STEPS, value).event
        assert isinstance(event, StepEvent)
        assert (event.started_at, event.completed_at) == (RECORD_TIME, None)

    @pytest.mark.parametrize("status", ["completed", "failed", "skipped"])
    def test_step_terminal_fills_completed_at_only(self, status: str) -> None:
        """A terminal event defaults completed_at; started_at comes from the started event."""
        value = message(STEPS, status=status, started_at=None, completed_at=None)
        event = accepted(STEPS, value).event
        assert isinstance(event, StepEvent)
        assert (event.started_at, event.completed_at) == (None, RECORD_TIME)

    @pytest.mark.parametrize("timestamp_ms", [-1, 2**62])
    def test_unusable_record_timestamp(self, timestamp_ms: int) -> None:
        """No usable record timestamp and none in the event: rejected, not crashed."""
        result = rejected(ERRORS, message(ERRORS, occurred_at=None), timestamp_ms=timestamp_ms)
        assert result.error_class == ErrorClass.SCHEMA
        assert "occurred_at" in result.reason

    def test_unusable_record_timestamp_irrelevant_when_event_has_one(self) -> None:
        """The record timestamp is only read when it is needed."""
        accepted(ERRORS, EXAMPLES[ERRORS], timestamp_ms=-1)


# (topic, raw value or message, error class, fragments the reason must contain)
REJECTIONS: list[tuple[str, dict[str, Any] | bytes | None, ErrorClass, tuple[str, ...]]] = [
    (ERRORS, None, ErrorClass.EMPTY, ("null",)),
    (ERRORS, b"", ErrorClass.EMPTY, ("empty",)),
    (ERRORS, b"  \n", ErrorClass.EMPTY, ("whitespace",)),
    ("debug.unknown", EXAMPLES[ERRORS], ErrorClass.UNKNOWN_TOPIC, ("'debug.unknown'",)),
    (ERRORS, b'{"id": ', ErrorClass.NOT_JSON, ("not valid JSON",)),
    (ERRORS, b"\xff\xfe{}", ErrorClass.NOT_JSON, ("UTF-8", "0xff", "offset 0")),
    (ERRORS, b'{"a": "\xc3"}', ErrorClass.NOT_JSON, ("UTF-8", "offset 7")),
    (ERRORS, b"NaN", ErrorClass.NOT_JSON, ("not valid JSON",)),
    (ERRORS, b'{"a": "\\ud800"}', ErrorClass.NOT_JSON, ("surrogate",)),
    (ERRORS, b"[1, 2]", ErrorClass.NOT_OBJECT, ("array",)),
    (ERRORS, b'"text"', ErrorClass.NOT_OBJECT, ("string",)),
    (ERRORS, b"null", ErrorClass.NOT_OBJECT, ("null",)),
    (ERRORS, message(ERRORS, schema_version=2), ErrorClass.SCHEMA_VERSION, ("schema_version", "2")),
    (ERRORS, message(ERRORS, schema_version="1"), ErrorClass.SCHEMA_VERSION, ("a string",)),
    (ERRORS, message(ERRORS, schema_version=True), ErrorClass.SCHEMA_VERSION, ("true",)),
    (
        ERRORS,
        message(ERRORS, error_message=None),
        ErrorClass.SCHEMA,
        ("error_message: Field required",),
    ),
    (
        ERRORS,
        message(ERRORS, execution_step="3"),
        ErrorClass.SCHEMA,
        ("execution_step", "got a string of 1 characters"),
    ),
    (
        ERRORS,
        message(ERRORS, colour="red"),
        ErrorClass.SCHEMA,
        ("colour: Extra inputs are not permitted",),
    ),
    (ERRORS, message(ERRORS, id="not-a-uuid"), ErrorClass.SCHEMA, ("id:", "UUID")),
    (ERRORS, message(ERRORS, state_snapshot_id="123"), ErrorClass.SCHEMA, ("state_snapshot_id",)),
    (
        ERRORS,
        message(ERRORS, occurred_at="2025-10-11T14:03:27"),
        ErrorClass.SCHEMA,
        ("occurred_at", "timezone"),
    ),
    (ERRORS, message(ERRORS, occurred_at="yesterday"), ErrorClass.SCHEMA, ("occurred_at",)),
    *(
        (
            topic,
            message(topic, **{field: when}),
            ErrorClass.SCHEMA,
            (field, "years 0002 through 9998"),
        )
        for topic, field in (
            (ERRORS, "occurred_at"),
            (ERRORS, "resolved_at"),
            (SNAPSHOTS, "captured_at"),
            (STEPS, "started_at"),
            (STEPS, "completed_at"),
        )
        # datetime.max / datetime.min (asyncpg's +-infinity), the edge years with an offset
        # that leaves Python's range, and with one that does not
        for when in (
            "9999-12-31T23:59:59.999999Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:30:00+01:00",
            "9999-06-01T00:00:00Z",
        )
    ),
    (
        ERRORS,
        message(ERRORS, occurred_at=1760191407),
        ErrorClass.SCHEMA,
        ("occurred_at", "ISO 8601"),
    ),
    (
        ERRORS,
        message(ERRORS, error_severity="fatal"),
        ErrorClass.SCHEMA,
        ("error_severity", "'critical'", "got a string of 5 characters"),
    ),
    (ERRORS, message(ERRORS, error_category="network"), ErrorClass.SCHEMA, ("error_category",)),
    (SNAPSHOTS, message(SNAPSHOTS, snapshot_type="crash"), ErrorClass.SCHEMA, ("snapshot_type",)),
    (STEPS, message(STEPS, status="running"), ErrorClass.SCHEMA, ("status",)),
    (
        "debug.success_events",
        message("debug.success_events", quality_score=1.5),
        ErrorClass.SCHEMA,
        ("quality_score", "less than or equal to 1"),
    ),
    (
        "debug.success_events",
        message("debug.success_events", quality_score=-0.01),
        ErrorClass.SCHEMA,
        ("quality_score",),
    ),
    (
        ERRORS,
        message(ERRORS, execution_step=2**31),
        ErrorClass.SCHEMA,
        ("execution_step", "2147483647"),
    ),
    (
        STEPS,
        message(STEPS, depends_on_steps=[1, "two"]),
        ErrorClass.SCHEMA,
        ("depends_on_steps[1]",),
    ),
    (SNAPSHOTS, message(SNAPSHOTS, agent_state=[1, 2]), ErrorClass.SCHEMA, ("agent_state",)),
    (
        SNAPSHOTS,
        message(SNAPSHOTS, agent_state=None),
        ErrorClass.SCHEMA,
        ("agent_state: Field required",),
    ),
    (HOOKS, message(HOOKS, payload="text"), ErrorClass.SCHEMA, ("payload",)),
    (
        ERRORS,
        message(ERRORS, error_type="E" * 256),
        ErrorClass.TOO_LONG,
        ("error_type", "at most 255 characters", "got 256"),
    ),
    (
        ERRORS,
        message(ERRORS, error_code="C" * 51, agent_name="a" * 256),
        ErrorClass.TOO_LONG,
        ("error_code", "agent_name"),
    ),
    (
        ERRORS,
        message(ERRORS, error_code="C" * 51, is_recoverable="yes"),
        ErrorClass.SCHEMA,
        ("error_code", "is_recoverable"),
    ),
]


class TestIntegralNumbers:
    """An integer written with a fraction or exponent (3.0, 3e0: JSON Schema's integer, what
    doubles-only producers write) is that integer; any other non-integer is still refused."""

    @pytest.mark.parametrize(
        ("topic", "changes", "field", "expected"),
        [
            (ERRORS, {"execution_step": 3.0}, "execution_step", 3),
            ("debug.success_events", {"retry_count": 1.0}, "retry_count", 1),
            ("debug.success_events", {"execution_time_ms": 2.14e3}, "execution_time_ms", 2140),
            (STEPS, {"step_number": 3.0, "attempt": 2.0}, "attempt", 2),
            (STEPS, {"duration_ms": 4292.0}, "duration_ms", 4292),
            (STEPS, {"depends_on_steps": [1.0, 2]}, "depends_on_steps", [1, 2]),
            (SNAPSHOTS, {"cpu_time_ms": 840.0}, "cpu_time_ms", 840),
            (ERRORS, {"schema_version": 1.0}, "schema_version", 1),
        ],
    )
    def test_integral_float_is_the_integer(
        self, topic: str, changes: dict[str, Any], field: str, expected: Any
    ) -> None:
        """The stored value is the int, of type int."""
        value = getattr(accepted(topic, message(topic, **changes)).event, field)
        assert value == expected
        assert type(value) is type(expected)
        if isinstance(value, list):
            assert all(type(item) is int for item in value)

    def test_exponent_form(self) -> None:
        """3e0 and 3E+0, as written in the raw JSON, are 3."""
        raw = orjson.dumps(message(ERRORS, execution_step=7))
        for spelling in (b"3e0", b"3E+0", b"0.3e1"):
            result = accepted(
                ERRORS, raw.replace(b'"execution_step":7', b'"execution_step":' + spelling)
            )
            assert result.event.execution_step == 3  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        ("field", "value"),
        [("execution_step", 3.5), ("execution_step", 1e10), ("execution_step", -1.0)],
    )
    def test_fractions_and_out_of_range_floats_rejected(self, field: str, value: float) -> None:
        """A fraction is no integer; an integral float is held to the integer's range."""
        result = rejected(ERRORS, message(ERRORS, **{field: value}))
        assert result.error_class == ErrorClass.SCHEMA
        assert result.reason.startswith(f"{field}: "), result.reason

    @pytest.mark.parametrize("version", [1.5, 2.0, True, "1"])
    def test_other_schema_versions_still_rejected(self, version: object) -> None:
        """Only 1 (and 1.0) is version 1."""
        result = rejected(ERRORS, message(ERRORS, schema_version=version))
        assert result.error_class == ErrorClass.SCHEMA_VERSION


class TestExactNumbers:
    """Numbers in free-form JSON are kept as jsonb keeps them: an integer beyond 64 bits or a
    number beyond a double's range is stored with its digits, never changed or refused."""

    @pytest.mark.parametrize(
        "literal",
        [
            b"18446744073709551616",
            b"-9223372036854775809",
            b"100000000000000000000",
            b"123456789012345678901234567890",
        ],
    )
    def test_big_integer_in_metadata_and_state_keeps_its_digits(self, literal: bytes) -> None:
        """Both the stored state (and its hash) and the metadata written by COPY hold the
        literal's digits exactly."""
        raw = orjson.dumps(message(SNAPSHOTS, agent_state={"n": 0}, metadata={"n": 0}))
        raw = raw.replace(b'{"n":0}', b'{"n":' + literal + b"}")
        result = accepted(SNAPSHOTS, raw)
        assert result.state_json == b'{"n":' + literal + b"}"
        assert result.event.state_hash == sha256(result.state_json).hexdigest()  # type: ignore[union-attr]
        assert orjson.dumps(result.event.metadata) == b'{"n":' + literal + b"}"  # type: ignore[union-attr]

    def test_big_token_count_is_a_count_not_a_secret(self) -> None:
        """Redaction keeps numbers under a ``...tokens`` key, exactly kept ones too."""
        raw = orjson.dumps(message(HOOKS)).replace(
            b'"total_tokens":3532', b'"total_tokens":18446744073709551616'
        )
        payload = accepted(HOOKS, raw).event.payload  # type: ignore[union-attr]
        assert b'"total_tokens":18446744073709551616' in orjson.dumps(payload)

    def test_number_beyond_double_range_written_as_jsonb_prints_it(self) -> None:
        """1e400 is valid JSON (jsonb stores it as numeric): kept, in positional notation."""
        raw = orjson.dumps(message(ERRORS, metadata={"x": 0})).replace(b'"x":0', b'"x":-1.5e400')
        result = accepted(ERRORS, raw)
        assert orjson.dumps(result.event.metadata) == b'{"x":-15' + b"0" * 399 + b"}"  # type: ignore[union-attr]

    def test_big_integer_in_a_typed_field_rejected(self) -> None:
        """Where the column is an int4, a big integer is a schema error, not a float."""
        raw = orjson.dumps(message(ERRORS, execution_step=7))
        result = rejected(ERRORS, raw.replace(b'"execution_step":7', b'"execution_step":1e400'))
        assert result.error_class == ErrorClass.SCHEMA
        assert result.reason.startswith("execution_step: "), result.reason

    def test_number_jsonb_cannot_store_rejected(self) -> None:
        """Beyond jsonb's numeric (131072 digits before the point): a schema error, and no
        million-digit string is ever built."""
        raw = orjson.dumps(message(ERRORS, metadata={"x": 0})).replace(b'"x":0', b'"x":1e999999999')
        result = rejected(ERRORS, raw)
        assert result.error_class == ErrorClass.SCHEMA
        assert "jsonb" in result.reason

    def test_slow_path_keeps_orjsons_refusals(self) -> None:
        """A message parsed exactly is still refused for what orjson refuses (NaN, lone
        surrogates), as not JSON."""
        for tail in (b"NaN", b'"\\ud800"'):
            raw = orjson.dumps(message(ERRORS, metadata={"x": 0})).replace(
                b'{"x":0}', b'{"x":1e400,"y":' + tail + b"}"
            )
            assert rejected(ERRORS, raw).error_class == ErrorClass.NOT_JSON


class TestRejects:
    """Every kind of bad input is rejected with its class and a reason naming the problem."""

    @pytest.mark.parametrize(
        ("topic", "value", "error_class", "fragments"),
        REJECTIONS,
        ids=[f"{case[2]}-{n}" for n, case in enumerate(REJECTIONS)],
    )
    def test_rejection(
        self,
        topic: str,
        value: dict[str, Any] | bytes | None,
        error_class: ErrorClass,
        fragments: tuple[str, ...],
    ) -> None:
        """The rejection carries the stable error class and a precise reason."""
        result = rejected(topic, value)
        assert result.error_class == error_class
        for fragment in fragments:
            assert fragment in result.reason, result.reason

    def test_all_schema_errors_listed_compactly(self) -> None:
        """Several schema errors are reported together, capped, on one line."""
        value = {"id": "x", **{f"extra_{n}": n for n in range(20)}}
        result = rejected(ERRORS, value)
        assert result.error_class == ErrorClass.SCHEMA
        assert "more errors" in result.reason
        assert "\n" not in result.reason
        assert len(result.reason) <= 2000

    def test_error_classes_are_snake_case_strings(self) -> None:
        """Error classes are stable plain strings usable as metric labels and headers."""
        for error_class in ErrorClass:
            assert str(error_class) == error_class.value
            assert error_class.value.replace("_", "").isalpha()
            assert error_class.value == error_class.value.lower()

    def test_rejected_as_exception(self) -> None:
        """A rejection converts to the error tree's InvalidEvent with the same fields."""
        exc = Rejected(ErrorClass.NOT_JSON, "bad").to_exception()
        assert isinstance(exc, InvalidEvent)
        assert (exc.error_class, exc.reason) == ("not_json", "bad")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


class TestNeverRaises:
    """decode returns a result for any input; it never raises."""

    @given(st.sampled_from(sorted(EXAMPLES)), st.data())
    def test_any_field_any_json_value(self, topic: str, data: st.DataObject) -> None:
        """Replacing an example's fields with arbitrary JSON values never raises."""
        fields = sorted(DEFAULT_TOPICS[topic].model.model_fields)
        changes = data.draw(st.dictionaries(st.sampled_from(fields), json_values, max_size=4))
        value = {**EXAMPLES[topic], **changes}
        try:
            raw = orjson.dumps(value)
        except orjson.JSONEncodeError:  # integers beyond 64 bits: not JSON orjson writes
            return
        assert isinstance(run(topic, raw), Accepted | Rejected)

    @pytest.mark.parametrize("topic", sorted(EXAMPLES))
    def test_every_field_with_every_json_type(self, topic: str) -> None:
        """Each field set to a value of each JSON type gives a result (no TypeError etc.)."""
        values: list[Any] = [{}, [], {"a": [1]}, None, True, 0, -1, 1.5, "", "x"]
        for field in DEFAULT_TOPICS[topic].model.model_fields:
            for value in values:
                result = run(topic, {**EXAMPLES[topic], field: value})
                assert isinstance(result, Accepted | Rejected), (field, value)

    @given(st.binary(max_size=64))
    def test_any_bytes(self, raw: bytes) -> None:
        """Arbitrary bytes are rejected (or, rarely, accepted), never an exception."""
        assert isinstance(run(HOOKS, raw), Accepted | Rejected)


class TestNulCharacter:
    """\\u0000 anywhere (text field, JSON string, JSON key, any depth) is rejected."""

    @pytest.mark.parametrize(
        ("topic", "changes", "path"),
        [
            (ERRORS, {"error_message": "boom\x00"}, "the string at error_message"),
            (
                SNAPSHOTS,
                {"agent_state": {"a": [{"b": ["ok", "x\x00y"]}]}},
                "the string at agent_state.a[0].b[1]",
            ),
            (
                SNAPSHOTS,
                {"agent_state": {"a": {"bad\x00key": 1}}},
                'a key at agent_state.a["bad\\u0000key"]',
            ),
            (
                HOOKS,
                {"payload": {"quality_metrics": {"note": "\x00"}}},
                "payload.quality_metrics.note",
            ),
            (STEPS, {"output_data": ["\x00"]}, "output_data[0]"),
        ],
    )
    def test_rejected_with_path(self, topic: str, changes: dict[str, Any], path: str) -> None:
        """The reason names where the NUL is."""
        result = rejected(topic, message(topic, **changes))
        assert result.error_class == ErrorClass.NUL_CHARACTER
        assert path in result.reason

    def test_escaped_backslash_is_not_nul(self) -> None:
        """The six characters \\u0000 (an escaped backslash) are ordinary text."""
        value = message(ERRORS, error_message="literal \\u0000 in a log line")
        raw = orjson.dumps(value)
        assert b"\\\\u0000" in raw
        event = accepted(ERRORS, raw).event
        assert event.error_message == "literal \\u0000 in a log line"  # type: ignore[union-attr]


class TestDepth:
    """JSON nested deeper than max_depth (the message itself is level 1) is rejected."""

    @staticmethod
    def nested(levels: int) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for _ in range(levels - 1):
            value = {"n": value}
        return value

    def test_limit_is_inclusive(self) -> None:
        """agent_state at level 2 nested to exactly max_depth is fine; one more is not."""
        config = ValidationConfig(max_depth=10)
        accepted(SNAPSHOTS, message(SNAPSHOTS, agent_state=self.nested(9)), config=config)
        result = rejected(SNAPSHOTS, message(SNAPSHOTS, agent_state=self.nested(10)), config=config)
        assert result.error_class == ErrorClass.TOO_DEEP
        assert "deeper than 10" in result.reason
        assert "agent_state.n.n" in result.reason

    def test_lists_count_as_levels(self) -> None:
        """Arrays nest like objects."""
        config = ValidationConfig(max_depth=4)
        result = rejected(STEPS, message(STEPS, input_data=[[[[1]]]]), config=config)
        assert result.error_class == ErrorClass.TOO_DEEP
        assert "input_data[0][0][0]" in result.reason

    def test_many_flat_containers_are_not_deep(self) -> None:
        """More brackets than max_depth in total, but shallow: accepted."""
        config = ValidationConfig(max_depth=4)
        state = {f"k{n}": {"v": [n]} for n in range(50)}
        accepted(SNAPSHOTS, message(SNAPSHOTS, agent_state=state), config=config)

    def test_beyond_the_parsers_limit(self) -> None:
        """Nesting orjson itself refuses (over 1024) is too_deep, not a crash."""
        raw = b'{"id": ' + b"[" * 2000 + b"]" * 2000 + b"}"
        assert rejected(ERRORS, raw).error_class == ErrorClass.TOO_DEEP


class TestStateSizeAndHash:
    """agent_state is bounded, hashed after redaction, and a producer's hash is verified."""

    def test_state_too_large(self) -> None:
        """A canonical state over max_state_bytes is rejected; at the limit it is accepted."""
        state = {"blob": "x" * 1000}
        size = len(canonical_json(state))
        accepted(
            SNAPSHOTS,
            message(SNAPSHOTS, agent_state=state),
            config=ValidationConfig(max_state_bytes=size),
        )
        result = rejected(
            SNAPSHOTS,
            message(SNAPSHOTS, agent_state=state),
            config=ValidationConfig(max_state_bytes=size - 1),
        )
        assert result.error_class == ErrorClass.STATE_TOO_LARGE
        assert f"agent_state is {size} bytes" in result.reason

    def test_default_limit_is_one_mebibyte(self) -> None:
        """The default limit is 1 MiB of canonical JSON."""
        assert CONFIG.max_state_bytes == 1024 * 1024
        result = rejected(SNAPSHOTS, message(SNAPSHOTS, agent_state={"blob": "x" * 1024 * 1024}))
        assert result.error_class == ErrorClass.STATE_TOO_LARGE

    def test_hash_set_size_and_state_json(self) -> None:
        """Without a producer hash, state_hash is computed; state_json is the canonical state."""
        result = accepted(SNAPSHOTS, EXAMPLES[SNAPSHOTS])
        event = result.event
        assert isinstance(event, SnapshotEvent)
        assert event.state_hash == state_hash(EXAMPLES[SNAPSHOTS]["agent_state"])
        assert result.state_json == canonical_json(event.agent_state)
        assert result.state_size_bytes == len(result.state_json)
        assert result.hash_replaced is False

    def test_correct_producer_hash_kept(self) -> None:
        """A producer hash equal to the sink's is not reported as replaced."""
        digest = state_hash(EXAMPLES[SNAPSHOTS]["agent_state"])
        result = accepted(SNAPSHOTS, message(SNAPSHOTS, state_hash=digest))
        assert result.hash_replaced is False
        assert result.event.state_hash == digest  # type: ignore[union-attr]

    @pytest.mark.parametrize("sent", ["0" * 64, "f" * 64])
    def test_differing_producer_hash_replaced(self, sent: object) -> None:
        """A well-formed hash that differs is replaced by the right hash and flagged."""
        result = accepted(SNAPSHOTS, message(SNAPSHOTS, state_hash=sent))
        assert result.hash_replaced is True
        assert result.event.state_hash == state_hash(EXAMPLES[SNAPSHOTS]["agent_state"])  # type: ignore[union-attr]

    @pytest.mark.parametrize("sent", [123, True, "not-a-hash", "A" * 64, "0" * 63, ["0" * 64]])
    def test_malformed_producer_hash_rejected(self, sent: object) -> None:
        """A state_hash the schema forbids (not 64 lower-case hex digits) is a schema error
        naming the field, not silently replaced: typing is strict."""
        result = rejected(SNAPSHOTS, message(SNAPSHOTS, state_hash=sent))
        assert result.error_class == ErrorClass.SCHEMA
        assert result.reason.startswith("state_hash: "), result.reason

    def test_hash_is_of_the_redacted_state(self) -> None:
        """Redaction happens before hashing: the hash covers what is stored."""
        result = accepted(SNAPSHOTS, message(SNAPSHOTS, agent_state={"api_key": "sk-1", "n": 1}))
        assert result.event.state_hash == state_hash({"api_key": REDACTED, "n": 1})  # type: ignore[union-attr]

    def test_hash_ignores_key_order(self) -> None:
        """Two producers serialising the same state in different key orders agree."""
        a = accepted(SNAPSHOTS, message(SNAPSHOTS, agent_state={"a": 1, "b": {"c": 2, "d": 3}}))
        b = accepted(SNAPSHOTS, message(SNAPSHOTS, agent_state={"b": {"d": 3, "c": 2}, "a": 1}))
        assert a.event.state_hash == b.event.state_hash  # type: ignore[union-attr]


class TestRedaction:
    """Every free-form JSON field is redacted before hashing and storing."""

    @pytest.mark.parametrize(
        ("topic", "field"),
        [
            (SNAPSHOTS, "agent_state"),
            (SNAPSHOTS, "metadata"),
            (ERRORS, "metadata"),
            ("debug.success_events", "success_factors"),
            ("debug.success_events", "metadata"),
            (STEPS, "input_data"),
            (STEPS, "output_data"),
            (STEPS, "metadata"),
            ("debug.transformation_events", "metadata"),
            (HOOKS, "payload"),
            (HOOKS, "metadata"),
        ],
    )
    def test_json_field_redacted(self, topic: str, field: str) -> None:
        """A nested secret is replaced and the event is flagged as redacted."""
        value = {"request": {"headers": [{"Authorization": "Bearer abc"}]}, "max_tokens": 64}
        result = accepted(topic, message(topic, **{field: value}))
        assert result.redacted is True
        stored = getattr(result.event, field)
        assert stored["request"]["headers"][0]["Authorization"] == REDACTED
        assert stored["max_tokens"] == 64

    def test_clean_event_not_flagged(self) -> None:
        """Without secrets nothing is flagged."""
        assert accepted(SNAPSHOTS, EXAMPLES[SNAPSHOTS]).redacted is False

    def test_text_fields_are_not_json_fields(self) -> None:
        """Only JSON fields are redacted; a column named like a secret is not a key."""
        result = accepted(ERRORS, message(ERRORS, error_message="token expired"))
        assert result.event.error_message == "token expired"  # type: ignore[union-attr]

    def test_configured_patterns(self) -> None:
        """redact_patterns replaces the default list."""
        config = ValidationConfig(redact_patterns=["^email$"])
        result = accepted(
            ERRORS, message(ERRORS, metadata={"email": "a@b.c", "password": "p"}), config=config
        )
        assert result.event.metadata == {"email": REDACTED, "password": "p"}


class TestHookMetadata:
    """Hook events carry correlation_id and session_id in metadata, where the view reads them."""

    def test_ids_copied_into_metadata(self) -> None:
        """Both ids land in metadata as canonical UUID strings; other keys are kept."""
        value = message(HOOKS, correlation_id="5F0C2A8E3B1D4C7A9E2F6D8B1A4C3E21")
        event = accepted(HOOKS, value).event
        assert isinstance(event, HookEvent)
        assert event.metadata == {
            "agent_name": "code-reviewer",
            "correlation_id": "5f0c2a8e-3b1d-4c7a-9e2f-6d8b1a4c3e21",
            "session_id": EXAMPLES[HOOKS]["session_id"],
        }

    def test_metadata_created_when_absent(self) -> None:
        """No metadata and no session: metadata holds just the correlation id."""
        event = accepted(HOOKS, message(HOOKS, metadata=None, session_id=None)).event
        assert event.metadata == {"correlation_id": EXAMPLES[HOOKS]["correlation_id"]}

    def test_top_level_ids_win(self) -> None:
        """A different correlation id inside metadata is overwritten by the top-level one."""
        value = message(HOOKS, metadata={"correlation_id": "other", "session_id": "other"})
        event = accepted(HOOKS, value).event
        assert event.metadata is not None
        assert event.metadata["correlation_id"] == EXAMPLES[HOOKS]["correlation_id"]
        assert event.metadata["session_id"] == EXAMPLES[HOOKS]["session_id"]

    @pytest.mark.parametrize(
        "changes",
        [
            {},
            {"metadata": None},
            {"metadata": {}},
            {"session_id": None},
            {"metadata": {"correlation_id": "x", "session_id": "y", "k": [1]}},
            {"correlation_id": "5F0C2A8E-3B1D-4C7A-9E2F-6D8B1A4C3E21"},
            {"session_id": "5f0c2a8e3b1d4c7a9e2f6d8b1a4c3e21"},
            {"session_id": "5F0C2A8E-3B1D-4C7A-9E2F-6D8B1A4C3E21", "metadata": None},
        ],
        ids=repr,
    )
    def test_ids_in_metadata_whatever_their_spelling(self, changes: dict[str, Any]) -> None:
        """Canonical ids are put into metadata before validation, other spellings after it:
        either way metadata holds the producer's keys with the validated ids over them, and
        every other field is what validation alone gives."""
        value = message(HOOKS, **changes)
        event = accepted(HOOKS, value).event
        plain = HookEvent.model_validate(value)
        expected = dict(plain.metadata or {})
        expected["correlation_id"] = str(plain.correlation_id)
        if plain.session_id is not None:
            expected["session_id"] = str(plain.session_id)
        assert event.metadata == expected
        assert event.model_dump(exclude={"metadata"}) == plain.model_dump(exclude={"metadata"})

    def test_metadata_not_an_object_is_rejected(self) -> None:
        """The ids are not slipped into a metadata that is not an object: it is rejected."""
        result = rejected(HOOKS, message(HOOKS, metadata=["not", "an", "object"]))
        assert result.error_class == ErrorClass.SCHEMA
        assert result.reason.startswith("metadata: ")

    def test_other_kinds_untouched(self) -> None:
        """Only hook events get the ids added."""
        event = accepted(ERRORS, EXAMPLES[ERRORS]).event
        assert event.metadata == EXAMPLES[ERRORS]["metadata"]


class TestValidationConfig:
    """The configuration is checked when built and is immutable."""

    def test_custom_topic_names(self) -> None:
        """Topic names are configurable; the defaults then become unknown."""
        config = ValidationConfig(topics={"prod.errors": "error"})  # type: ignore[dict-item]
        assert config.topics["prod.errors"] is EventKind.ERROR
        assert accepted("prod.errors", EXAMPLES[ERRORS], config=config).kind is EventKind.ERROR
        assert rejected(ERRORS, EXAMPLES[ERRORS], config=config).error_class == "unknown_topic"

    def test_unknown_kind(self) -> None:
        """A topic mapped to a kind that does not exist is a configuration error."""
        with pytest.raises(ConfigurationError, match="topics"):
            ValidationConfig(topics={"t": "nonsense"})  # type: ignore[dict-item]

    @pytest.mark.parametrize("max_depth", [1, MAX_DEPTH_LIMIT + 1])
    def test_max_depth_bounds(self, max_depth: int) -> None:
        """max_depth must leave room for the message and stay below the recursion bound."""
        with pytest.raises(ConfigurationError, match="max_depth"):
            ValidationConfig(max_depth=max_depth)

    def test_max_state_bytes_positive(self) -> None:
        """A non-positive size limit is refused."""
        with pytest.raises(ConfigurationError, match="max_state_bytes"):
            ValidationConfig(max_state_bytes=0)

    def test_bad_pattern(self) -> None:
        """An invalid redaction regex is refused."""
        with pytest.raises(ConfigurationError, match="not a valid regex"):
            ValidationConfig(redact_patterns=["[unclosed"])

    def test_frozen(self) -> None:
        """Neither the config nor its topic map can be changed after construction."""
        with pytest.raises(AttributeError):
            CONFIG.max_depth = 3  # type: ignore[misc]
        with pytest.raises(TypeError):
            CONFIG.topics["x"] = EventKind.ERROR  # type: ignore[index]
