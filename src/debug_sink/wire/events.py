"""The wire format: one frozen pydantic model per Kafka topic, shared by the sink and the SDK.

Owns what a debug event *is*: its fields, their types and limits (taken from the table
columns of ``debug-loop-schema.md``: ``VARCHAR(n)`` -> ``max_length=n``, ``CHECK (... IN
...)`` -> ``Literal``, ``INTEGER`` -> the int4 range, ``DECIMAL(5,4)`` scores -> [0, 1]), the
topic <-> kind <-> table registry. Its examples and JSON Schemas are
:mod:`debug_sink.wire.examples`.

Every message is one JSON object (UTF-8, Kafka key = ``correlation_id``) with:

- ``id`` -- a UUID the producer generates; the row id and the idempotency key, so a re-sent
  or replayed message is a no-op;
- ``schema_version`` -- ``1`` (the default when absent);
- ``correlation_id`` -- the UUID of the workflow.

Typing is strict for numbers, booleans and strings (``"5"`` is not an integer, ``1`` is not a
boolean; ``3.0`` and ``3e0`` are the integer 3, as in JSON Schema, ``3.5`` is no integer) and
lax where JSON has no native type: UUIDs and timestamps are strings. Timestamps are ISO 8601
with a UTC offset (``2025-10-11T14:03:27.512Z``) in the years 0002 through 9998 as sent
(:data:`MIN_YEAR`, :data:`MAX_YEAR`); a timestamp without an offset, given as a number or in
year 0001 or 9999 is rejected. An event's own timestamp (``captured_at``, ``occurred_at``,
``created_at``, a step's ``started_at``/``completed_at``) may be omitted: the sink fills it from
the Kafka record timestamp, which is the same on every replay.

Not here: decoding bytes, redaction, hashing and the checks that need the raw message (NUL
characters, nesting depth, state size) live in :mod:`debug_sink.wire.validation` and
:mod:`debug_sink.wire.canonical`. A model built directly (as the SDK does) is type-checked but not
redacted or hashed until it goes through those.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Final, Literal, get_args
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
)

__all__ = [
    "DEFAULT_TOPICS",
    "INT4_MAX",
    "INT4_MIN",
    "MAX_RECOVERS",
    "MAX_YEAR",
    "MIN_YEAR",
    "MODELS",
    "SCHEMA_VERSION",
    "TABLES",
    "TIMESTAMP_PATTERN",
    "ErrorEvent",
    "Event",
    "EventBase",
    "EventKind",
    "HookEvent",
    "SnapshotEvent",
    "StepEvent",
    "SuccessEvent",
    "TransformationEvent",
]

SCHEMA_VERSION: Final = 1
#: At most this many error ids in a success's ``recovers_error_ids``: a retry loop's failed
#: attempts, or the errors one fallback answers; more is a bug in the producer, not a recovery.
MAX_RECOVERS: Final = 32
INT4_MIN: Final = -(2**31)
INT4_MAX: Final = 2**31 - 1
#: The years a timestamp may have, as sent (with its offset): Python's and PostgreSQL's common
#: range without its edge years (see ``_storable``).
MIN_YEAR: Final = 2
MAX_YEAR: Final = 9998
#: What the JSON Schemas say of that range (ECMA-262): a date-time not in year 0000, 0001 or
#: 9999; ``format: date-time`` says the rest.
TIMESTAMP_PATTERN: Final = "^(?!0000|0001|9999)[0-9]{4}-"


class EventKind(StrEnum):
    """What an event describes; one kind per topic and per table."""

    SNAPSHOT = "snapshot"
    ERROR = "error"
    SUCCESS = "success"
    STEP = "step"
    TRANSFORMATION = "transformation"
    HOOK = "hook"

    @property
    def model(self) -> type[EventBase]:
        """The pydantic model of this kind's events."""
        return MODELS[self]

    @property
    def table(self) -> str:
        """The table this kind's events are written to."""
        return TABLES[self]

    @property
    def default_topic(self) -> str:
        """The topic this kind is consumed from unless configured otherwise."""
        return _DEFAULT_TOPIC_BY_KIND[self]


# -- field types ----------------------------------------------------------------------------


def _timestamp_input(value: object) -> object:
    # Lax datetime parsing would also take numbers, guessing seconds or milliseconds -- and
    # numbers written as strings ("1760191407"): a date-time starts with its year and "-".
    if isinstance(value, datetime) or (
        isinstance(value, str) and value[4:5] == "-" and value[:4].isdigit()
    ):
        return value
    raise ValueError(
        "must be an ISO 8601 date-time string with a UTC offset, e.g. 2025-10-11T14:03:27.512Z"
    )


def _none_when_empty(value: list[UUID] | None) -> list[UUID] | None:
    # An empty list states nothing, like an absent one: one representation in the table.
    return value or None


def _storable(value: datetime) -> datetime:
    # Years 1 and 9999 are refused as sent (before any conversion): Python's range ends
    # there, so an offset can push them past it, and asyncpg writes exactly datetime.min /
    # datetime.max as PostgreSQL -infinity / infinity, which no interval arithmetic (the
    # correlator's, the readers') survives. Within 0002-9998 a UTC offset (less than a day)
    # cannot leave the range, so no conversion is needed here.
    if MIN_YEAR <= value.year <= MAX_YEAR:
        return value
    raise ValueError(
        f"is outside the accepted range: years {MIN_YEAR:04d} through {MAX_YEAR:04d}, as sent"
    )


def _integral(value: object) -> object:
    # JSON has one number type: 3.0 and 3e0 are integers to JSON Schema (and to the
    # producers that write every number as a double). Only such floats become ints; bools,
    # strings and fractions still fail the strict check that follows.
    if type(value) is float and value.is_integer():
        return int(value)
    return value


#: An aware date-time, sent as an ISO 8601 string with an offset.
Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_timestamp_input),
    AfterValidator(_storable),
    Field(json_schema_extra={"pattern": TIMESTAMP_PATTERN}),
]
#: A PostgreSQL ``INTEGER`` in [ge, le]; an integral float (``3.0``, ``3e0``) is that integer.
Count = Annotated[int, Strict(), Field(ge=0, le=INT4_MAX), BeforeValidator(_integral)]
#: A ``DECIMAL(5,4)`` score in [0, 1].
Score = Annotated[float, Strict(), Field(ge=0.0, le=1.0)]
#: A ``DECIMAL(10,2)`` amount of megabytes.
Megabytes = Annotated[float, Strict(), Field(ge=0.0, le=99_999_999.99)]
Flag = Annotated[bool, Strict()]
#: A required, non-empty ``VARCHAR(n)``.
Name255 = Annotated[str, Strict(), Field(min_length=1, max_length=255)]
Name100 = Annotated[str, Strict(), Field(min_length=1, max_length=100)]
Str255 = Annotated[str, Strict(), Field(max_length=255)]
Str100 = Annotated[str, Strict(), Field(max_length=100)]
Str50 = Annotated[str, Strict(), Field(max_length=50)]
Text = Annotated[str, Strict()]
#: A JSON object (``jsonb``), free-form; redacted by the sink.
JsonObject = dict[str, Any]
#: A 64-character lower-case hex SHA-256 digest.
Sha256Hex = Annotated[str, Strict(), Field(pattern=r"^[0-9a-f]{64}$")]

SnapshotType = Literal["error", "success", "checkpoint", "pre_transform", "post_transform"]
ErrorCategory = Literal["agent", "framework", "external", "user"]
ErrorSeverity = Literal["low", "medium", "high", "critical"]
StepStatus = Literal["started", "completed", "failed", "skipped"]
#: The statuses that end a step (all of :data:`StepStatus` but ``started``).
TerminalStepStatus = Literal["completed", "failed", "skipped"]
TERMINAL_STEP_STATUSES: Final[frozenset[str]] = frozenset(get_args(TerminalStepStatus))


# -- models ---------------------------------------------------------------------------------


class EventBase(BaseModel):
    """Fields every debug event carries. Frozen; unknown fields are rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    #: The kind of this model's events.
    KIND: ClassVar[EventKind]
    #: Free-form JSON fields: redacted by the sink, checked for NUL characters and depth.
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("metadata",)
    #: The field filled from the Kafka record timestamp when absent (steps: see StepEvent).
    RECORD_TIME_FIELD: ClassVar[str | None] = None

    id: UUID
    """Producer-generated UUID: the row id and the idempotency key (re-sending is a no-op)."""
    schema_version: Annotated[Literal[1], BeforeValidator(_integral)] = SCHEMA_VERSION
    """Version of this wire format; only 1 exists."""
    correlation_id: UUID
    """The workflow this event belongs to; also the Kafka message key."""


class SnapshotEvent(EventBase):
    """Agent state captured at a critical point (topic debug.state_snapshots).

    The sink redacts ``agent_state``, computes ``state_hash`` from it (a producer-sent hash
    that differs is replaced) and derives ``state_size_bytes`` (bytes of its canonical JSON)
    and ``variables_count`` (its number of top-level keys); producers do not send those two.
    """

    KIND: ClassVar[EventKind] = EventKind.SNAPSHOT
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("agent_state", "metadata")
    RECORD_TIME_FIELD: ClassVar[str | None] = "captured_at"

    snapshot_type: SnapshotType
    """Why the state was captured."""
    session_id: UUID | None = None
    """The agent session, when known."""
    agent_name: Name255
    """The agent whose state this is."""
    agent_state: JsonObject
    """The agent's state (context, variables, ...): a JSON object, at most 1 MiB canonical."""
    state_hash: Sha256Hex | None = None
    """SHA-256 hex of the canonical JSON of the redacted agent_state; optional, recomputed."""
    execution_step: Count | None = None
    """Step number in the workflow."""
    task_description: Text | None = None
    """What the agent was trying to do."""
    user_request: Text | None = None
    """The original user request."""
    context_depth: Count | None = None
    """How deep in the delegation chain the agent is."""
    memory_usage_mb: Megabytes | None = None
    """Resident memory of the agent, in MB."""
    cpu_time_ms: Count | None = None
    """CPU time used so far, in milliseconds."""
    wall_time_ms: Count | None = None
    """Wall-clock time elapsed so far, in milliseconds."""
    transformation_event_id: UUID | None = None
    """The agent transformation this snapshot belongs to."""
    parent_snapshot_id: UUID | None = None
    """The previous snapshot of this agent in the workflow."""
    captured_at: Timestamp | None = None
    """When the state was captured; defaults to the Kafka record timestamp."""
    metadata: JsonObject | None = None
    """Free-form context."""


class ErrorEvent(EventBase):
    """An error with its context (topic debug.error_events)."""

    KIND: ClassVar[EventKind] = EventKind.ERROR
    RECORD_TIME_FIELD: ClassVar[str | None] = "occurred_at"

    session_id: UUID | None = None
    """The agent session, when known."""
    error_type: Name255
    """Error class or kind, e.g. the exception's type name."""
    error_category: ErrorCategory
    """Where the error comes from."""
    error_severity: ErrorSeverity
    """How bad it is."""
    error_message: Text
    """The error message (may be empty)."""
    error_stack_trace: Text | None = None
    """The formatted stack trace."""
    error_code: Str50 | None = None
    """A code from the failing system, e.g. an HTTP status or SQLSTATE."""
    agent_name: Name255
    """The agent that hit the error."""
    operation_name: Str255 | None = None
    """The operation that failed."""
    execution_step: Count | None = None
    """Step number in the workflow."""
    state_snapshot_id: UUID | None = None
    """The snapshot of the agent's state at the error."""
    is_recoverable: Flag = False
    """Whether the agent can recover from it."""
    recovery_attempted: Flag = False
    """Whether a recovery was attempted."""
    recovery_successful: Flag | None = None
    """Whether the recovery succeeded, once known."""
    recovery_strategy: Str100 | None = None
    """How recovery was attempted: retry, fallback, skip, abort, ..."""
    metadata: JsonObject | None = None
    """Free-form context (request parameters, environment, ...)."""
    occurred_at: Timestamp | None = None
    """When the error occurred; defaults to the Kafka record timestamp."""
    resolved_at: Timestamp | None = None
    """When the error was resolved, if it was."""


class SuccessEvent(EventBase):
    """A successful operation, for recovery-pattern learning (topic debug.success_events)."""

    KIND: ClassVar[EventKind] = EventKind.SUCCESS
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("success_factors", "metadata")
    RECORD_TIME_FIELD: ClassVar[str | None] = "occurred_at"

    session_id: UUID | None = None
    """The agent session, when known."""
    success_type: Name100
    """task_completion, validation_pass, recovery_success, ..."""
    operation_name: Name255
    """The operation that succeeded."""
    agent_name: Name255
    """The agent that succeeded."""
    execution_step: Count | None = None
    """Step number in the workflow."""
    state_snapshot_id: UUID | None = None
    """The snapshot of the agent's state at the success."""
    quality_score: Score | None = None
    """Quality of the result, in [0, 1]."""
    completion_status: Str50 | None = None
    """full, partial, degraded, ..."""
    validation_passed: Flag = True
    """Whether the result passed validation."""
    execution_time_ms: Count | None = None
    """How long the operation took, in milliseconds."""
    retry_count: Count = 0
    """Retries before this success."""
    recovers_error_ids: Annotated[
        list[UUID] | None, Field(max_length=MAX_RECOVERS), AfterValidator(_none_when_empty)
    ] = None
    """Errors of this workflow that this success recovered, when the agent knows (its retry
    loop succeeded after those attempts failed, its fallback ran because of them). The
    correlator links them as *stated*, whatever their order of arrival; an id of another
    workflow, or of an error never stored, is no link. At most 32; absent or empty: the
    agent states nothing and the correlator infers."""
    success_factors: JsonObject | None = None
    """What contributed to the success."""
    metadata: JsonObject | None = None
    """Free-form context."""
    occurred_at: Timestamp | None = None
    """When it succeeded; defaults to the Kafka record timestamp."""


class StepEvent(EventBase):
    """One lifecycle event of a workflow step (topic debug.workflow_steps).

    A step is sent as ``started`` and again, with the same ``id``, as ``completed``,
    ``failed`` or ``skipped``; the sink merges them into one row in either order. A retried
    step is a new ``id`` with the same ``step_number`` and a higher ``attempt``. The fields
    that make a row (``step_number``, ``step_type``, ``agent_name``, ``operation_name``) are
    required on every lifecycle event. When absent, ``started_at`` of a ``started`` event and
    ``completed_at`` of a terminal event default to the Kafka record timestamp.
    """

    KIND: ClassVar[EventKind] = EventKind.STEP
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("input_data", "output_data", "metadata")

    session_id: UUID | None = None
    """The agent session, when known."""
    step_number: Count
    """Position of the step in the workflow (0-based or 1-based, the producer's choice)."""
    attempt: Annotated[int, Strict(), Field(ge=1, le=INT4_MAX), BeforeValidator(_integral)] = 1
    """1 for the first try; a retry is a new step id with the same step_number."""
    step_type: Name100
    """initialization, routing, execution, transformation, validation, ..."""
    agent_name: Name255
    """The agent running the step."""
    operation_name: Name255
    """The operation the step performs."""
    step_description: Text | None = None
    """What the step does."""
    status: StepStatus
    """Lifecycle status this event reports."""
    pre_state_snapshot_id: UUID | None = None
    """Snapshot taken before the step."""
    post_state_snapshot_id: UUID | None = None
    """Snapshot taken after the step."""
    error_event_id: UUID | None = None
    """The error that failed the step."""
    success_event_id: UUID | None = None
    """The success the step produced."""
    duration_ms: Count | None = None
    """How long the step took, in milliseconds."""
    parent_step_id: UUID | None = None
    """The step this one is part of."""
    depends_on_steps: list[Count] | None = None
    """step_numbers this step depends on."""
    input_data: Any = None
    """The step's input: any JSON value."""
    output_data: Any = None
    """The step's output: any JSON value."""
    metadata: JsonObject | None = None
    """Free-form context."""
    started_at: Timestamp | None = None
    """When the step started; a started event defaults it to the Kafka record timestamp."""
    completed_at: Timestamp | None = None
    """When the step ended; a terminal event defaults it to the Kafka record timestamp."""


class TransformationEvent(EventBase):
    """An agent handing work to another agent (topic debug.transformation_events)."""

    KIND: ClassVar[EventKind] = EventKind.TRANSFORMATION
    RECORD_TIME_FIELD: ClassVar[str | None] = "created_at"

    source_agent: Name255
    """The agent handing over."""
    target_agent: Name255
    """The agent taking over."""
    transformation_type: Name100 = "delegation"
    """delegation, escalation, handoff, ..."""
    session_id: UUID | None = None
    """The agent session, when known."""
    reason: Text | None = None
    """Why the work was handed over."""
    confidence_score: Score | None = None
    """Confidence in the routing decision, in [0, 1]."""
    state_snapshot_id: UUID | None = None
    """Snapshot of the state at the transformation (usually pre_transform)."""
    error_event_id: UUID | None = None
    """The error that caused the transformation, if any."""
    success_event_id: UUID | None = None
    """The success that followed, if any."""
    metadata: JsonObject | None = None
    """Free-form context."""
    created_at: Timestamp | None = None
    """When it happened; defaults to the Kafka record timestamp."""


class HookEvent(EventBase):
    """A hook event, e.g. an LLM or tool call (topic debug.hook_events).

    The ``debug_llm_call_summary`` view reads ``PostToolUse`` events and takes the
    correlation and session ids from ``metadata``: the sink copies the top-level
    ``correlation_id`` (and ``session_id`` when given) into ``metadata``, overwriting values
    the producer may have put there.
    """

    KIND: ClassVar[EventKind] = EventKind.HOOK
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("payload", "metadata")
    RECORD_TIME_FIELD: ClassVar[str | None] = "created_at"

    source: Name255
    """The hook, e.g. PreToolUse, PostToolUse, UserPromptSubmit."""
    resource_id: Str255 | None = None
    """What the hook is about, e.g. the tool or model name."""
    session_id: UUID | None = None
    """The agent session, when known; copied into metadata.session_id."""
    payload: JsonObject
    """The hook's data; for LLM calls quality_metrics.quality_score and
    success_classification."""
    metadata: JsonObject | None = None
    """Free-form context; the sink adds correlation_id and session_id."""
    created_at: Timestamp | None = None
    """When the hook fired; defaults to the Kafka record timestamp."""


#: Any event model instance.
Event = SnapshotEvent | ErrorEvent | SuccessEvent | StepEvent | TransformationEvent | HookEvent

#: Model per kind.
MODELS: Final[Mapping[EventKind, type[EventBase]]] = MappingProxyType(
    {
        model.KIND: model
        for model in (
            SnapshotEvent,
            ErrorEvent,
            SuccessEvent,
            StepEvent,
            TransformationEvent,
            HookEvent,
        )
    }
)

#: Table per kind.
TABLES: Final[Mapping[EventKind, str]] = MappingProxyType(
    {
        EventKind.SNAPSHOT: "debug_state_snapshots",
        EventKind.ERROR: "debug_error_events",
        EventKind.SUCCESS: "debug_success_events",
        EventKind.STEP: "debug_workflow_steps",
        EventKind.TRANSFORMATION: "agent_transformation_events",
        EventKind.HOOK: "hook_events",
    }
)

#: Default topic -> kind; the sink's topics are configurable.
DEFAULT_TOPICS: Final[Mapping[str, EventKind]] = MappingProxyType(
    {
        "debug.state_snapshots": EventKind.SNAPSHOT,
        "debug.error_events": EventKind.ERROR,
        "debug.success_events": EventKind.SUCCESS,
        "debug.workflow_steps": EventKind.STEP,
        "debug.transformation_events": EventKind.TRANSFORMATION,
        "debug.hook_events": EventKind.HOOK,
    }
)
_DEFAULT_TOPIC_BY_KIND: Final = {kind: topic for topic, kind in DEFAULT_TOPICS.items()}
