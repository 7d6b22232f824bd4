"""The wire-format models, the topic/kind/table registry and the examples
(debug_sink.wire.events)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from pydantic import ValidationError

from debug_sink.wire.events import (
    DEFAULT_TOPICS,
    INT4_MAX,
    MAX_RECOVERS,
    MODELS,
    TABLES,
    ErrorEvent,
    EventBase,
    EventKind,
    HookEvent,
    SnapshotEvent,
    StepEvent,
    SuccessEvent,
    TransformationEvent,
)
from debug_sink.wire.examples import EXAMPLES
from debug_sink.wire.validation import Accepted, ValidationConfig, decode

WORKFLOW = uuid4()


def example(topic: str, **changes: Any) -> dict[str, Any]:
    """A copy of the topic's example with ``changes`` applied (``None`` deletes a key)."""
    message = dict(EXAMPLES[topic])
    for key, value in changes.items():
        if value is None:
            message.pop(key, None)
        else:
            message[key] = value
    return message


class TestRegistry:
    """Every kind has exactly one model, table and default topic."""

    def test_kinds_models_tables_topics_are_one_to_one(self) -> None:
        """Six kinds, each with its model, its table and one default topic."""
        assert set(MODELS) == set(EventKind) == set(TABLES)
        assert sorted(DEFAULT_TOPICS.values()) == sorted(EventKind)
        for kind in EventKind:
            assert kind.model.KIND is kind
            assert DEFAULT_TOPICS[kind.default_topic] is kind
            assert kind.table == TABLES[kind]

    def test_default_topics(self) -> None:
        """The default topic names are the ones the SQL schema and README document."""
        assert dict(DEFAULT_TOPICS) == {
            "debug.state_snapshots": EventKind.SNAPSHOT,
            "debug.error_events": EventKind.ERROR,
            "debug.success_events": EventKind.SUCCESS,
            "debug.workflow_steps": EventKind.STEP,
            "debug.transformation_events": EventKind.TRANSFORMATION,
            "debug.hook_events": EventKind.HOOK,
        }

    def test_kind_values_are_stable_strings(self) -> None:
        """EventKind is a StrEnum whose values are the short kind names."""
        assert [str(kind) for kind in EventKind] == [
            "snapshot",
            "error",
            "success",
            "step",
            "transformation",
            "hook",
        ]

    def test_json_fields_exist_on_their_models(self) -> None:
        """Each declared free-form JSON field is a field of its model."""
        for model in MODELS.values():
            assert set(model.JSON_FIELDS) <= set(model.model_fields)
            assert model.RECORD_TIME_FIELD is None or model.RECORD_TIME_FIELD in model.model_fields


class TestExamples:
    """EXAMPLES holds one realistic, valid message per default topic."""

    def test_one_example_per_topic(self) -> None:
        """The README can show an example for every topic."""
        assert set(EXAMPLES) == set(DEFAULT_TOPICS)

    @pytest.mark.parametrize("topic", sorted(EXAMPLES))
    def test_example_validates_as_model(self, topic: str) -> None:
        """Every example is a valid instance of its topic's model."""
        event = DEFAULT_TOPICS[topic].model.model_validate(EXAMPLES[topic])
        assert event.schema_version == 1

    @pytest.mark.parametrize("topic", sorted(EXAMPLES))
    def test_example_is_accepted_unchanged_by_decode(self, topic: str) -> None:
        """The examples pass the sink's decode without redaction or hash replacement."""
        result = decode(
            topic, orjson.dumps(EXAMPLES[topic]), timestamp_ms=0, config=ValidationConfig()
        )
        assert isinstance(result, Accepted), result
        assert (result.redacted, result.hash_replaced) == (False, False)


class TestModelContract:
    """Models are frozen, reject unknown fields and mirror the column types."""

    def test_frozen(self) -> None:
        """An event cannot be changed after construction."""
        event = ErrorEvent.model_validate(EXAMPLES["debug.error_events"])
        with pytest.raises(ValidationError, match="frozen"):
            event.error_type = "other"  # type: ignore[misc]

    @pytest.mark.parametrize("model", list(MODELS.values()), ids=lambda m: m.__name__)
    def test_extra_fields_forbidden(self, model: type[EventBase]) -> None:
        """A field the model does not know is an error, not silently dropped."""
        message = dict(EXAMPLES[model.KIND.default_topic], unexpected=1)
        with pytest.raises(ValidationError, match="unexpected"):
            model.model_validate(message)

    def test_snapshot_rejects_derived_columns(self) -> None:
        """state_size_bytes and variables_count are derived by the sink, not sent."""
        for column in ("state_size_bytes", "variables_count"):
            with pytest.raises(ValidationError, match=column):
                SnapshotEvent.model_validate(example("debug.state_snapshots", **{column: 1}))

    def test_schema_version_defaults_to_1_and_only_1(self) -> None:
        """schema_version may be omitted; any other version is invalid."""
        event = HookEvent.model_validate(example("debug.hook_events", schema_version=None))
        assert event.schema_version == 1
        with pytest.raises(ValidationError, match="schema_version"):
            HookEvent.model_validate(example("debug.hook_events", schema_version=2))

    def test_sdk_can_build_with_python_objects(self) -> None:
        """The SDK constructs models from UUID and aware datetime objects directly."""
        event = SnapshotEvent(
            id=uuid4(),
            correlation_id=WORKFLOW,
            snapshot_type="checkpoint",
            agent_name="a",
            agent_state={"k": 1},
            captured_at=datetime.now(UTC),
        )
        assert isinstance(event.id, UUID)

    def test_naive_datetime_rejected(self) -> None:
        """A timestamp without an offset is ambiguous and rejected, as string or object."""
        with pytest.raises(ValidationError, match="timezone"):
            ErrorEvent.model_validate(
                example("debug.error_events", occurred_at="2025-10-11T14:03:27")
            )
        with pytest.raises(ValidationError, match="timezone"):
            ErrorEvent.model_validate(
                example("debug.error_events", occurred_at=datetime(2025, 10, 11, 14, 3))
            )

    def test_numeric_timestamp_rejected(self) -> None:
        """Epoch numbers are not accepted (seconds or milliseconds would be a guess)."""
        with pytest.raises(ValidationError, match="ISO 8601"):
            ErrorEvent.model_validate(example("debug.error_events", occurred_at=1760191407))

    @pytest.mark.parametrize("value", ["1760191407", "1760191407000", "-1", "0", "1e9"])
    def test_numbers_written_as_strings_rejected(self, value: str) -> None:
        """The lax parser would read them as epoch seconds or milliseconds."""
        with pytest.raises(ValidationError, match="ISO 8601"):
            ErrorEvent.model_validate(example("debug.error_events", occurred_at=value))

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("execution_step", "3"),
            ("execution_step", 3.5),
            ("execution_step", True),
            ("is_recoverable", 1),
            ("is_recoverable", "true"),
            ("error_message", 42),
        ],
    )
    def test_strict_scalars(self, field: str, value: object) -> None:
        """Numbers, booleans and strings must have their JSON type; nothing is coerced."""
        with pytest.raises(ValidationError, match=field):
            ErrorEvent.model_validate(example("debug.error_events", **{field: value}))

    def test_integral_floats_are_integers(self) -> None:
        """JSON Schema's integer includes 3.0: the model takes it as the int 3 (the SDK's
        models and the sink's alike), and schema_version 1.0 as 1."""
        event = ErrorEvent.model_validate(
            example("debug.error_events", execution_step=3.0, schema_version=1.0)
        )
        assert (event.execution_step, event.schema_version) == (3, 1)
        assert type(event.execution_step) is int

    @pytest.mark.parametrize(
        "when",
        ["9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z", "9999-01-01T00:00:00+05:00"],
    )
    def test_edge_years_rejected_with_the_range(self, when: str) -> None:
        """Years 1 and 9999 (datetime.min/max are PostgreSQL's -infinity/infinity) are
        outside the accepted range, and the error says which range."""
        with pytest.raises(ValidationError, match="years 0002 through 9998"):
            ErrorEvent.model_validate(example("debug.error_events", occurred_at=when))

    @pytest.mark.parametrize(
        ("value", "ok"), [(INT4_MAX, True), (INT4_MAX + 1, False), (-1, False)]
    )
    def test_integers_fit_int4(self, value: int, ok: bool) -> None:
        """INTEGER columns take 0..2147483647 (counts and durations are never negative)."""
        message = example("debug.workflow_steps", duration_ms=value)
        if ok:
            assert StepEvent.model_validate(message).duration_ms == value
        else:
            with pytest.raises(ValidationError, match="duration_ms"):
                StepEvent.model_validate(message)

    @pytest.mark.parametrize(
        ("value", "ok"), [(0, True), (1, True), (0.5, True), (1.0001, False), (-0.1, False)]
    )
    def test_scores_in_unit_interval(self, value: float, ok: bool) -> None:
        """quality_score and confidence_score are DECIMAL(5,4) in [0, 1]."""
        success = example("debug.success_events", quality_score=value)
        transformation = example("debug.transformation_events", confidence_score=value)
        if ok:
            SuccessEvent.model_validate(success)
            TransformationEvent.model_validate(transformation)
        else:
            with pytest.raises(ValidationError, match="quality_score"):
                SuccessEvent.model_validate(success)
            with pytest.raises(ValidationError, match="confidence_score"):
                TransformationEvent.model_validate(transformation)

    @pytest.mark.parametrize(
        ("topic", "field", "limit"),
        [
            ("debug.error_events", "error_type", 255),
            ("debug.error_events", "error_code", 50),
            ("debug.error_events", "recovery_strategy", 100),
            ("debug.success_events", "success_type", 100),
            ("debug.workflow_steps", "step_type", 100),
            ("debug.hook_events", "resource_id", 255),
            ("debug.state_snapshots", "agent_name", 255),
        ],
    )
    def test_varchar_limits(self, topic: str, field: str, limit: int) -> None:
        """A string may be as long as its VARCHAR column, not longer."""
        model = DEFAULT_TOPICS[topic].model
        model.model_validate(example(topic, **{field: "x" * limit}))
        with pytest.raises(ValidationError, match=f"at most {limit} characters"):
            model.model_validate(example(topic, **{field: "x" * (limit + 1)}))

    @pytest.mark.parametrize(
        ("topic", "field", "value"),
        [
            ("debug.state_snapshots", "snapshot_type", "crash"),
            ("debug.error_events", "error_category", "network"),
            ("debug.error_events", "error_severity", "fatal"),
            ("debug.workflow_steps", "status", "running"),
        ],
    )
    def test_check_enums(self, topic: str, field: str, value: str) -> None:
        """Values outside the CHECK constraints are rejected."""
        with pytest.raises(ValidationError, match=field):
            DEFAULT_TOPICS[topic].model.model_validate(example(topic, **{field: value}))

    def test_memory_fits_decimal_10_2(self) -> None:
        """memory_usage_mb is DECIMAL(10,2): at most 99,999,999.99."""
        SnapshotEvent.model_validate(
            example("debug.state_snapshots", memory_usage_mb=99_999_999.99)
        )
        with pytest.raises(ValidationError, match="memory_usage_mb"):
            SnapshotEvent.model_validate(example("debug.state_snapshots", memory_usage_mb=1e8))

    def test_state_hash_must_look_like_sha256(self) -> None:
        """A model built directly only takes a 64-character lower-case hex state_hash."""
        with pytest.raises(ValidationError, match="state_hash"):
            SnapshotEvent.model_validate(example("debug.state_snapshots", state_hash="ABC"))

    def test_step_attempt_and_dependencies(self) -> None:
        """attempt starts at 1; depends_on_steps holds non-negative step numbers."""
        assert StepEvent.model_validate(example("debug.workflow_steps", attempt=None)).attempt == 1
        with pytest.raises(ValidationError, match="attempt"):
            StepEvent.model_validate(example("debug.workflow_steps", attempt=0))
        with pytest.raises(ValidationError, match=r"depends_on_steps\.1"):
            StepEvent.model_validate(example("debug.workflow_steps", depends_on_steps=[1, -2]))

    def test_defaults(self) -> None:
        """Column defaults of the schema are model defaults."""
        error = ErrorEvent.model_validate(
            example("debug.error_events", is_recoverable=None, recovery_attempted=None)
        )
        assert (error.is_recoverable, error.recovery_attempted) == (False, False)
        success = SuccessEvent.model_validate(
            example("debug.success_events", validation_passed=None, retry_count=None)
        )
        assert (success.validation_passed, success.retry_count) == (True, 0)
        transformation = TransformationEvent.model_validate(
            example("debug.transformation_events", transformation_type=None)
        )
        assert transformation.transformation_type == "delegation"

    @pytest.mark.parametrize("topic", sorted(EXAMPLES))
    def test_sdk_serialisation_round_trips_through_decode(self, topic: str) -> None:
        """What the SDK sends (model_dump_json) decodes to an equal event in the sink."""
        model = DEFAULT_TOPICS[topic].model
        sent = model.model_validate(EXAMPLES[topic])
        result = decode(
            topic, sent.model_dump_json().encode(), timestamp_ms=0, config=ValidationConfig()
        )
        assert isinstance(result, Accepted), result
        received = result.event.model_dump(exclude={"state_hash", "metadata"})
        assert received == sent.model_dump(exclude={"state_hash", "metadata"})


class TestRecoveredErrors:
    """A success's recovers_error_ids: at most MAX_RECOVERS ids; empty is absent."""

    def test_bounds_and_empty(self) -> None:
        base = {
            "id": uuid4(),
            "correlation_id": uuid4(),
            "success_type": "recovery_success",
            "operation_name": "fetch",
            "agent_name": "planner",
        }
        ids = [uuid4() for _ in range(MAX_RECOVERS)]
        assert SuccessEvent(**base, recovers_error_ids=ids).recovers_error_ids == ids
        assert SuccessEvent(**base, recovers_error_ids=[]).recovers_error_ids is None
        assert SuccessEvent(**base).recovers_error_ids is None
        with pytest.raises(ValidationError):
            SuccessEvent(**base, recovers_error_ids=[*ids, uuid4()])
        with pytest.raises(ValidationError):
            SuccessEvent(**base, recovers_error_ids=["not a uuid"])
