"""One OTLP traces message -> the validated events it carries, and one rejection for the rest.

Owns :func:`expand`, what the sink calls per message of an OTLP topic: decode
(:mod:`.decode`), map (:mod:`.mapping`), then validate every object exactly as a JSON
message's event is validated -- redaction of every JSON field and every free-text field,
NUL, nesting depth, state size and hash, field types and lengths
(:func:`debug_sink.wire.validation.validate_object`).

Guarantees: never raises for bad input; the list it returns is never empty (the message's
offset is stored only with its events, so even a message of nothing must be an item);
accepted events come first, in dependency order per span (snapshots, errors, success, LLM
call, step); everything that could not become an event is in ONE trailing
:class:`~debug_sink.wire.validation.Rejected` (the message's dead letter: the whole
message, which a replay can send again -- its accepted events are no-ops the second time),
whose reason lists the spans and why, never a value. An event whose reference was
rejected (a state too large for its snapshot) loses that reference instead of waiting for a
row that will never come.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from debug_sink.otlp.decode import Encoding, ErrorClass, Limits, decode_request
from debug_sink.otlp.mapping import DEFAULT_STATE_ATTRIBUTES, LONG_KEYS, READ_KEYS, map_spans
from debug_sink.wire.events import EventKind
from debug_sink.wire.validation import Accepted, Rejected, ValidationConfig, validate_object

__all__ = ["OtlpConfig", "expand"]

#: Span problems listed in a rejection's reason; the rest are counted.
_LISTED: Final = 10
#: References an event may lose when the referenced object was rejected.
_REFERENCES: Final = (
    "state_snapshot_id",
    "post_state_snapshot_id",
    "error_event_id",
    "success_event_id",
)


@dataclass(frozen=True, slots=True)
class OtlpConfig:
    """How OTLP messages are read. ``validation``: the sink's validation settings (redaction,
    state size, depth); ``state_attributes``: span attributes that hold the agent's state
    (-> snapshots); ``limits``: how much of a span is kept."""

    validation: ValidationConfig = field(default_factory=ValidationConfig)
    state_attributes: tuple[str, ...] = DEFAULT_STATE_ATTRIBUTES
    limits: Limits = field(default_factory=Limits)


def expand(
    value: bytes | None,
    *,
    encoding: Encoding = Encoding.AUTO,
    timestamp_ms: int,
    config: OtlpConfig,
) -> list[Accepted | Rejected]:
    """The events of one message and, last, the rejection of what is not (see the module
    doc). ``timestamp_ms``: the Kafka record's timestamp."""
    spans = decode_request(
        value,
        encoding=encoding,
        limits=config.limits,
        keep=READ_KEYS,
        io_keys=LONG_KEYS,
        raw_keys=frozenset(config.state_attributes),
    )
    if isinstance(spans, Rejected):
        return [spans]
    mapped = map_spans(spans, record_ms=timestamp_ms, state_attributes=config.state_attributes)
    results: list[Accepted | Rejected] = []
    problems = list(mapped.rejected)
    # Ids of the events validation refused, in this message: what refers to them refers to
    # nothing (a child span's step names no parent step then, as for a span that could not
    # be mapped), rather than waiting in the parked table for a parent that never comes.
    dropped: set[Any] = set()
    for span in mapped.spans:
        for kind, obj in span.objects():
            for name in _REFERENCES:
                if obj.get(name) in dropped:
                    obj[name] = None
            if obj.get("parent_step_id") in dropped:
                obj["parent_step_id"] = None
                otel = (obj.get("metadata") or {}).get("otel")
                if isinstance(otel, dict):
                    otel["parent_rejected"] = True
            result = _validate(kind, obj, timestamp_ms, config.validation)
            if isinstance(result, Rejected):
                dropped.add(obj["id"])
                problems.append(
                    f"span #{span.index} (span id {span.span_id}): its {kind.value} event: "
                    f"{result.reason}"
                )
            else:
                results.append(result)
    if problems:
        results.append(Rejected(ErrorClass.SPAN, _summary(problems, len(spans))))
    return results


def _validate(
    kind: EventKind, obj: dict[str, Any], timestamp_ms: int, config: ValidationConfig
) -> Accepted | Rejected:
    try:
        raw = orjson.dumps(obj)
    except TypeError as exc:  # nested past orjson's limit: the depth check's business
        return Rejected("too_deep", f"cannot be serialised as JSON: {exc}")
    return validate_object(kind, obj, raw, timestamp_ms=timestamp_ms, config=config)


def _summary(problems: Sequence[str], spans: int) -> str:
    listed = "; ".join(problems[:_LISTED])
    more = len(problems) - _LISTED
    tail = f"; and {more} more" if more > 0 else ""
    return f"{len(problems)} problem(s) in {spans} span(s) of this OTLP message: {listed}{tail}"
