"""Decode and validate one Kafka message: bytes in, a complete event or a precise rejection out.

Owns the step between the consumer and the batch: :func:`decode` turns a record's value into
:class:`Accepted` (the event model, redacted, its timestamps filled, its state hash set) or
:class:`Rejected` (a stable ``error_class`` and a human-readable ``reason`` naming the field).
Pure and synchronous: no I/O, no clock (the Kafka record timestamp is passed in), no logging;
it never raises for bad input.

The order of the checks, cheapest and most fundamental first::

    topic known -> value not empty -> JSON (orjson) -> an object -> schema_version
    -> nesting depth -> no NUL -> redact JSON fields -> state size, state hash
    -> fill timestamps -> model validation -> hook metadata

Numbers are kept as PostgreSQL's jsonb keeps them (:func:`~debug_sink.wire.canonical.
parse_json`): in free-form JSON an integer beyond 64 bits or a number beyond a double's range
is an ``orjson.Fragment`` of its digits; in a typed field it is no valid value (``schema``).
A present ``state_hash`` must be what the schema allows (64 lower-case hex digits): one that
is not is a ``schema`` rejection, one that differs from the computed hash is replaced.

A message is parsed once; the depth and NUL walks only run when a cheap scan of the raw bytes
says they could fail (more ``{``/``[`` than ``max_depth``, a ``\\u0000`` escape present).

Error classes (:class:`ErrorClass`): ``empty``, ``unknown_topic``, ``not_json`` (also invalid
UTF-8), ``not_object``, ``schema_version``, ``too_deep``, ``nul_character``, ``schema``,
``too_long`` (every schema error is a string over its column's length), ``state_too_large``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

import orjson
from pydantic import ValidationError

from debug_sink.errors import ConfigurationError, InvalidEvent
from debug_sink.wire.canonical import NumberOutOfRange, canonical_json, format_path, parse_json
from debug_sink.wire.events import (
    DEFAULT_TOPICS,
    MODELS,
    SCHEMA_VERSION,
    TERMINAL_STEP_STATUSES,
    Event,
    EventBase,
    EventKind,
    HookEvent,
)
from debug_sink.wire.redact import DEFAULT_REDACT_PATTERNS, Redactor

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_STATE_BYTES",
    "MAX_DEPTH_LIMIT",
    "Accepted",
    "ErrorClass",
    "Rejected",
    "ValidationConfig",
    "decode",
    "unframed",
    "validate_object",
]

DEFAULT_MAX_STATE_BYTES: Final = 1024 * 1024
DEFAULT_MAX_DEPTH: Final = 64
#: Highest configurable ``max_depth``: orjson writes JSON nested at most 254 levels deep
#: (the sink serialises states, events and dead letters again), and a message's JSON fields
#: sit one or two levels below the message itself; 200 leaves room for both.
MAX_DEPTH_LIMIT: Final = 200

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NUL_ESCAPE: Final = b"\\u0000"
#: How a UUID reads once validated (``str(UUID)``).
_CANONICAL_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: A state_hash as the schema allows it (the model's pattern).
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")
_MAX_ERRORS_LISTED: Final = 8
_MAX_REASON_CHARS: Final = 2000


class ErrorClass(StrEnum):
    """Why a message was rejected; stable identifiers for dead-letter headers and metrics."""

    EMPTY = "empty"
    UNKNOWN_TOPIC = "unknown_topic"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    SCHEMA_VERSION = "schema_version"
    TOO_DEEP = "too_deep"
    NUL_CHARACTER = "nul_character"
    SCHEMA = "schema"
    TOO_LONG = "too_long"
    STATE_TOO_LARGE = "state_too_large"
    #: Set by the sink, not by decode: the Kafka client could not decode the record itself.
    UNDECODABLE = "undecodable"


@dataclass(frozen=True, slots=True)
class ValidationConfig:
    """What :func:`decode` accepts. Immutable; build it once and share it.

    ``topics`` maps each consumed topic to its event kind (unknown topics are rejected);
    ``max_state_bytes`` bounds the canonical JSON of a redacted ``agent_state``;
    ``max_depth`` bounds JSON nesting (the message object itself is depth 1);
    ``redact_patterns`` are :class:`~debug_sink.wire.redact.Redactor` key patterns,
    ``redact_value_patterns`` extra regexes of secret values.
    Invalid values raise :class:`~debug_sink.errors.ConfigurationError`.
    """

    topics: Mapping[str, EventKind] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    max_state_bytes: int = DEFAULT_MAX_STATE_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    redact_patterns: Sequence[str] = DEFAULT_REDACT_PATTERNS
    redact_value_patterns: Sequence[str] = ()
    redactor: Redactor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            topics = {str(topic): EventKind(kind) for topic, kind in self.topics.items()}
        except ValueError as exc:
            raise ConfigurationError(f"topics: {exc}") from exc
        if self.max_state_bytes < 1:
            raise ConfigurationError(f"max_state_bytes must be >= 1, got {self.max_state_bytes}")
        if not 2 <= self.max_depth <= MAX_DEPTH_LIMIT:
            raise ConfigurationError(
                f"max_depth must be between 2 and {MAX_DEPTH_LIMIT}, got {self.max_depth}"
            )
        object.__setattr__(self, "topics", MappingProxyType(topics))
        object.__setattr__(self, "redact_patterns", tuple(self.redact_patterns))
        object.__setattr__(self, "redact_value_patterns", tuple(self.redact_value_patterns))
        object.__setattr__(
            self, "redactor", Redactor(self.redact_patterns, self.redact_value_patterns)
        )


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid event, ready to be written.

    ``event`` is complete: its JSON fields are redacted, its own timestamp is filled from
    the record timestamp when the producer left it out, a snapshot's ``state_hash`` is the
    hash of its (redacted) ``agent_state``, a hook's ``metadata`` carries ``correlation_id``
    (and ``session_id``). ``hash_replaced``: the producer sent a different ``state_hash``.
    ``redacted``: at least one value was replaced by ``"[REDACTED]"``. ``state_json``: for
    snapshots, the canonical JSON of ``agent_state`` (its length is ``state_size_bytes``;
    it can be stored as is), else ``None``.
    """

    kind: EventKind
    event: Event
    hash_replaced: bool = False
    redacted: bool = False
    state_json: bytes | None = None

    @property
    def state_size_bytes(self) -> int | None:
        """Bytes of the canonical JSON of a snapshot's agent_state."""
        return None if self.state_json is None else len(self.state_json)


@dataclass(frozen=True, slots=True)
class Rejected:
    """An invalid message: ``error_class`` (an :class:`ErrorClass` value) and why."""

    error_class: str
    reason: str

    def to_exception(self) -> InvalidEvent:
        """The same rejection as an :class:`~debug_sink.errors.InvalidEvent`."""
        return InvalidEvent(self.error_class, self.reason)


def decode(
    topic: str, value: bytes | None, *, timestamp_ms: int, config: ValidationConfig
) -> Accepted | Rejected:
    """Decode and validate one Kafka record value from ``topic``.

    ``timestamp_ms`` is the record's timestamp (milliseconds since the epoch); it fills the
    event's own timestamp when absent, so a replay decodes to the same event. Never raises
    for bad input: every problem is a :class:`Rejected`.
    """
    kind = config.topics.get(topic)
    if kind is None:
        known = ", ".join(sorted(config.topics))
        return Rejected(
            ErrorClass.UNKNOWN_TOPIC, f"topic {topic!r} is not a configured topic ({known})"
        )
    if not value:
        what = "null (a tombstone)" if value is None else "empty"
        return Rejected(ErrorClass.EMPTY, f"the message value is {what}")

    value = unframed(value)
    try:
        obj = parse_json(value)
    except orjson.JSONDecodeError as exc:
        return _not_json(value, exc, config)
    except NumberOutOfRange as exc:
        return Rejected(
            ErrorClass.SCHEMA,
            f"the message holds {exc}: beyond what PostgreSQL's jsonb stores (at most 131072 "
            "digits before the decimal point and 16383 after it)",
        )
    if type(obj) is not dict:
        return Rejected(
            ErrorClass.NOT_OBJECT, f"the message is a JSON {_json_type(obj)}, not an object"
        )
    return validate_object(kind, obj, value, timestamp_ms=timestamp_ms, config=config)


def validate_object(
    kind: EventKind,
    obj: dict[str, Any],
    value: bytes,
    *,
    timestamp_ms: int,
    config: ValidationConfig,
) -> Accepted | Rejected:
    """Validate one event of ``kind`` given as a JSON object (``obj``, changed in place) and
    its JSON text (``value``): every check of :func:`decode` after parsing. For events that
    do not arrive as one JSON message each (:mod:`debug_sink.otlp` maps spans to them).
    Never raises for bad input."""
    version = obj.get("schema_version", SCHEMA_VERSION)
    if type(version) is float and version == SCHEMA_VERSION:
        obj["schema_version"] = version = SCHEMA_VERSION  # 1.0 is 1, as in JSON Schema
    if type(version) is not int or version != SCHEMA_VERSION:
        return Rejected(
            ErrorClass.SCHEMA_VERSION,
            f"schema_version: unsupported version (got {_show(version)}); this sink reads "
            f"version {SCHEMA_VERSION}",
        )

    max_depth = config.max_depth
    if value.count(b"{") + value.count(b"[") > max_depth:
        deep = _too_deep(obj, max_depth)
        if deep is not None:
            return Rejected(
                ErrorClass.TOO_DEEP,
                f"JSON nesting deeper than {max_depth} levels at {_path(deep)}",
            )
    if _NUL_ESCAPE in value:
        nul = _find_nul(obj)
        if nul is not None:
            where, in_key = nul
            return Rejected(
                ErrorClass.NUL_CHARACTER,
                f"NUL character (\\u0000) in {'a key at' if in_key else 'the string at'} "
                f"{_path(where)}; PostgreSQL text and jsonb cannot store it",
            )

    model = MODELS[kind]
    redacted = _redact(obj, model, value, config.redactor)

    hash_replaced = False
    state_json: bytes | None = None
    if kind is EventKind.SNAPSHOT:
        state = obj.get("agent_state")
        if type(state) is dict:
            try:
                canonical = canonical_json(state)
            except TypeError as exc:  # orjson.JSONEncodeError: nested past its limit
                return Rejected(ErrorClass.TOO_DEEP, f"agent_state cannot be serialised: {exc}")
            if len(canonical) > config.max_state_bytes:
                return Rejected(
                    ErrorClass.STATE_TOO_LARGE,
                    f"agent_state is {len(canonical)} bytes of canonical JSON; the limit "
                    f"(max_state_bytes) is {config.max_state_bytes}",
                )
            # An exact-size copy: orjson hands out its output in a buffer of up to ~4x its
            # length (RSS), and this one lives as long as its batch (it is stored as is).
            state_json = bytes(memoryview(canonical))
            digest = hashlib.sha256(state_json).hexdigest()
            sent = obj.get("state_hash")
            # A malformed hash is left for model validation to reject, as the schema does;
            # a well-formed one that differs is replaced (and counted).
            if sent is None or (type(sent) is str and _SHA256_HEX.fullmatch(sent)):
                hash_replaced = sent is not None and sent != digest
                obj["state_hash"] = digest

    time_field = model.RECORD_TIME_FIELD
    if kind is EventKind.STEP:
        status = obj.get("status")
        if status == "started":
            time_field = "started_at"
        elif type(status) is str and status in TERMINAL_STEP_STATUSES:
            time_field = "completed_at"
    if time_field is not None and obj.get(time_field) is None:
        try:
            if timestamp_ms < 0:
                raise OverflowError
            obj[time_field] = _EPOCH + timedelta(milliseconds=timestamp_ms)
        except OverflowError:
            return Rejected(
                ErrorClass.SCHEMA,
                f"{time_field} is absent and the record timestamp ({timestamp_ms} ms) is not "
                "a usable date to default it from",
            )

    ids_added = kind is EventKind.HOOK and _put_ids_in_metadata(obj)
    try:
        event: Any = model.model_validate(obj)
    except ValidationError as exc:
        return _schema_rejection(exc, config.redactor)

    if kind is EventKind.HOOK and not ids_added:
        event = _with_ids_in_metadata(event)
    return Accepted(kind, event, hash_replaced, redacted, state_json)


# -- helpers --------------------------------------------------------------------------------


def _redact(obj: dict[str, Any], model: type[EventBase], raw: bytes, redactor: Redactor) -> bool:
    """Redact ``obj`` (a decoded message) in place: its JSON fields by key and, when the raw
    message may hold one (one linear-time pass), every string by secret format -- free-text
    fields (error messages, stack traces, descriptions) included. True if anything changed."""
    scan = redactor.may_contain(raw)
    redacted = False
    for name in model.JSON_FIELDS:
        original = obj.get(name)
        if original is not None:
            cleaned, changed = redactor.redact(original, values=scan)
            if changed:
                obj[name] = cleaned
                redacted = True
    if scan:
        for name, original in obj.items():
            if type(original) is str and name not in model.JSON_FIELDS:
                cleaned, changed = redactor.redact_text(original)
                if changed:
                    obj[name] = cleaned
                    redacted = True
    return redacted


def _put_ids_in_metadata(obj: dict[str, Any]) -> bool:
    """A hook's ids copied into its ``metadata`` before validation, when they are already in
    the form validation gives them (canonical UUID strings, as producers send them): then no
    copy of the validated model is needed (``model_copy`` was ~10 us of a hook's ~60).
    False when they are not (another UUID spelling, a wrong type, ``metadata`` not an
    object): :func:`_with_ids_in_metadata` adds them after validation, or validation fails."""
    correlation_id = obj.get("correlation_id")
    session_id = obj.get("session_id")
    metadata = obj.get("metadata")
    if (
        type(correlation_id) is not str
        or _CANONICAL_UUID.fullmatch(correlation_id) is None
        or (
            session_id is not None
            and (type(session_id) is not str or _CANONICAL_UUID.fullmatch(session_id) is None)
        )
        or (metadata is not None and type(metadata) is not dict)
    ):
        return False
    obj["metadata"] = _metadata_with_ids(metadata, correlation_id, session_id)
    return True


def _with_ids_in_metadata(event: HookEvent) -> HookEvent:
    session_id = None if event.session_id is None else str(event.session_id)
    metadata = _metadata_with_ids(event.metadata, str(event.correlation_id), session_id)
    return event.model_copy(update={"metadata": metadata})


def _metadata_with_ids(
    metadata: dict[str, Any] | None, correlation_id: str, session_id: str | None
) -> dict[str, Any]:
    """A copy of a hook's ``metadata`` with its ids over the producer's keys."""
    result = dict(metadata) if metadata else {}
    result["correlation_id"] = correlation_id
    if session_id is not None:
        result["session_id"] = session_id
    return result


#: A UTF-8 byte order mark, which some encoders write first (.NET's UTF8Encoding(true),
#: Windows tools); JSON allows a reader to ignore it (RFC 8259, 8.1), orjson refuses it.
_BOM: Final = b"\xef\xbb\xbf"
#: Confluent Schema Registry's framing: a zero magic byte and a 4-byte schema id before the
#: JSON (what its JSON Schema serializers produce, in every language).
_SCHEMA_REGISTRY_HEADER: Final = 5


def unframed(value: bytes) -> bytes:
    """The JSON of a message: without a Schema Registry header or a byte order mark. Valid
    JSON starts with neither a zero byte nor a BOM's, so no message is read differently."""
    if value[:1] == b"\x00" and len(value) > _SCHEMA_REGISTRY_HEADER:
        value = value[_SCHEMA_REGISTRY_HEADER:]
    if value[:3] == _BOM:
        value = value[3:]
    return value


def _not_json(value: bytes, exc: orjson.JSONDecodeError, config: ValidationConfig) -> Rejected:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Rejected(
            ErrorClass.NOT_JSON,
            f"the message is not valid UTF-8: byte 0x{value[bad.start]:02x} at offset "
            f"{bad.start} ({bad.reason})",
        )
    if not text.strip():
        return Rejected(ErrorClass.EMPTY, "the message value is only whitespace")
    if "depth limit" in exc.msg or "recursion" in exc.msg.lower():
        return Rejected(
            ErrorClass.TOO_DEEP,
            f"JSON nesting deeper than {config.max_depth} levels ({exc.msg}, at char {exc.pos})",
        )
    return Rejected(ErrorClass.NOT_JSON, f"the message is not valid JSON: {exc}")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | orjson.Fragment):  # a Fragment: a number, exactly
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: object) -> str:
    """What an offending input value is, never what a string says (it may be a secret): a
    string's length, a container's JSON type; numbers, booleans and null as they are."""
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    if isinstance(value, bool | int | float) or value is None:
        text = orjson.dumps(value).decode() if type(value) is not int else str(value)
        return text if len(text) <= 24 else f"a JSON {_json_type(value)}"
    return f"a JSON {_json_type(value)}"


JsonPath = tuple[str | int, ...]


def _path(path: Sequence[str | int]) -> str:
    return format_path(path, root="the top level", shorten=True)


def _too_deep(obj: dict[str, Any], max_depth: int) -> JsonPath | None:
    """The path of the first container nested deeper than ``max_depth`` (top level = 1)."""
    stack: list[tuple[Any, int, JsonPath]] = [(obj, 1, ())]
    while stack:
        container, depth, path = stack.pop()
        if depth > max_depth:
            return path
        items = container.items() if type(container) is dict else enumerate(container)
        for key, child in items:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1, (*path, key)))
    return None


def _find_nul(obj: dict[str, Any]) -> tuple[JsonPath, bool] | None:
    """The path of the first string (or key, then ``True``) holding a NUL character."""
    stack: list[tuple[Any, JsonPath]] = [(obj, ())]
    while stack:
        container, path = stack.pop()
        # Children are pushed in reverse so that the first NUL in document order is found.
        if type(container) is dict:
            for key in container:
                if "\x00" in key:
                    return (*path, key), True
            stack.extend((child, (*path, key)) for key, child in reversed(container.items()))
        elif type(container) is list:
            stack.extend((container[i], (*path, i)) for i in range(len(container) - 1, -1, -1))
        elif type(container) is str and "\x00" in container:
            return path, False
    return None


def _schema_rejection(exc: ValidationError, redactor: Redactor) -> Rejected:
    errors = exc.errors(include_url=False, include_context=False)
    messages = [_format_error(error) for error in errors[:_MAX_ERRORS_LISTED]]
    if len(errors) > _MAX_ERRORS_LISTED:
        messages.append(f"and {len(errors) - _MAX_ERRORS_LISTED} more errors")
    # Keys are quoted in paths; a key can be a credential pasted in the wrong place.
    reason, _ = redactor.redact_text("; ".join(messages))
    if len(reason) > _MAX_REASON_CHARS:
        reason = reason[: _MAX_REASON_CHARS - 3] + "..."
    too_long = all(error["type"] == "string_too_long" for error in errors)
    return Rejected(ErrorClass.TOO_LONG if too_long else ErrorClass.SCHEMA, reason)


def _format_error(error: Any) -> str:
    kind = error["type"]
    message = error["msg"].removeprefix("Value error, ")
    text = f"{_path(error['loc'])}: {message}"
    if kind == "missing":
        return text
    value = error.get("input")
    if kind == "string_too_long" and isinstance(value, str):
        return f"{text} (got {len(value)})"
    return f"{text} (got {_show(value)})"
