"""COPY records: one event -> its values in COLUMNS order (pure, no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from debug_sink.sink.plan import effective_started_at
from debug_sink.sink.tables import COLUMNS, record_of
from debug_sink.wire.events import DEFAULT_TOPICS, MODELS, EventKind
from debug_sink.wire.examples import EXAMPLES
from debug_sink.wire.validation import Accepted, ValidationConfig, decode

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOPIC_OF = {kind: topic for topic, kind in DEFAULT_TOPICS.items()}


def ev(kind: EventKind, **changes: Any) -> Any:
    """The README's example event of ``kind`` with ``changes``, as the sink decodes it."""
    body = {**EXAMPLES[TOPIC_OF[kind]], **changes}
    body = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in body.items()}
    result = decode(
        TOPIC_OF[kind], orjson.dumps(body), timestamp_ms=1_767_225_600_000, config=CONFIG
    )
    assert isinstance(result, Accepted), result
    return result.event


CONFIG = ValidationConfig()


def by_column(kind: EventKind, record: tuple[object, ...]) -> dict[str, object]:
    assert len(record) == len(COLUMNS[kind])
    return dict(zip(COLUMNS[kind], record, strict=True))


class TestRecordOf:
    """record_of: every column, in order, as the staging table stores it."""

    def test_plain_columns_are_the_events_attributes(self) -> None:
        """Every column the model has is its attribute, unchanged (the same object)."""
        for kind in EventKind:
            event = ev(kind)
            record = by_column(kind, record_of(kind, event))
            for column, value in record.items():
                if column in MODELS[kind].model_fields and column not in (
                    "agent_state",
                    "started_at",
                    "duration_ms",
                    "memory_usage_mb",
                    "quality_score",
                    "confidence_score",
                ):
                    assert value is getattr(event, column), (kind, column)

    def test_numeric_columns_are_exact_decimals(self) -> None:
        """Scores and megabytes become the Decimal of their JSON number; None stays None."""
        snap = ev(EventKind.SNAPSHOT, memory_usage_mb=12.3)
        assert by_column(EventKind.SNAPSHOT, record_of(EventKind.SNAPSHOT, snap))[
            "memory_usage_mb"
        ] == Decimal("12.3")
        success = ev(EventKind.SUCCESS, quality_score=0.1)
        assert by_column(EventKind.SUCCESS, record_of(EventKind.SUCCESS, success))[
            "quality_score"
        ] == Decimal("0.1")
        plain = ev(EventKind.TRANSFORMATION, confidence_score=None)
        record = by_column(EventKind.TRANSFORMATION, record_of(EventKind.TRANSFORMATION, plain))
        assert record["confidence_score"] is None

    def test_step_start_and_duration(self) -> None:
        """A step's start is its effective start; a duration it did not send is derived
        from a start that was sent, else left NULL; one it sent is kept."""
        started = ev(
            EventKind.STEP,
            status="completed",
            started_at=T0,
            completed_at=T0 + timedelta(1),
            duration_ms=None,
        )
        record = by_column(EventKind.STEP, record_of(EventKind.STEP, started))
        assert record["started_at"] == effective_started_at(started)
        assert record["duration_ms"] == 86_400_000
        unstarted = ev(
            EventKind.STEP, status="completed", started_at=None, completed_at=T0, duration_ms=None
        )
        record = by_column(EventKind.STEP, record_of(EventKind.STEP, unstarted))
        assert record["duration_ms"] is None
        assert record["started_at"] == effective_started_at(unstarted)
        sent = ev(EventKind.STEP, status="completed", completed_at=T0, duration_ms=5)
        assert sent.duration_ms == 5
        assert by_column(EventKind.STEP, record_of(EventKind.STEP, sent))["duration_ms"] == 5

    def test_derived_duration_fits_the_integer_column(self) -> None:
        """A derived duration is clamped into [0, 2**31 - 1]: a 30-day step stores the
        longest duration INTEGER holds (not a refused row), a step that ended before it
        started (clock skew) took no time, the effective start (near the accepted range's
        first instant) is still a time."""
        cases = [
            (T0, T0 + timedelta(days=30), 2**31 - 1),
            (T0 + timedelta(seconds=5), T0, 0),
        ]
        for started_at, completed_at, expected in cases:
            step = ev(
                EventKind.STEP,
                status="completed",
                started_at=started_at,
                completed_at=completed_at,
                duration_ms=None,
            )
            assert by_column(EventKind.STEP, record_of(EventKind.STEP, step))["duration_ms"] == (
                expected
            )
        early = ev(
            EventKind.STEP,
            status="completed",
            started_at=None,
            completed_at="0002-01-01T00:00:00+23:59",
            duration_ms=2**31 - 1,
        )
        assert effective_started_at(early).year == 1

    def test_snapshot_state_size_and_count(self) -> None:
        """A snapshot stores its canonical state, its byte length and its key count."""
        snap = ev(EventKind.SNAPSHOT, id=str(uuid.uuid4()), agent_state={"b": 1, "a": [1, 2]})
        record = by_column(EventKind.SNAPSHOT, record_of(EventKind.SNAPSHOT, snap))
        assert record["agent_state"] == b'{"a":[1,2],"b":1}'
        assert record["state_size_bytes"] == len(b'{"a":[1,2],"b":1}')
        assert record["variables_count"] == 2
