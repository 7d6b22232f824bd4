"""OTLP traces messages: bytes in, flat bounded spans out (or one precise rejection).

Owns reading what the OpenTelemetry Collector's Kafka exporter writes: one
``ExportTraceServiceRequest`` per message, ``otlp_proto`` (protobuf, the exporter's default)
or ``otlp_json`` (the OTLP/JSON encoding: lowerCamelCase names, trace and span ids as hex,
64-bit integers as strings). :func:`decode_request` detects the encoding per message
(``auto``: a JSON message starts with ``{``, which no protobuf request can) or takes the one
configured for the topic, and flattens the request into :class:`Span` objects that know
their resource and scope.

Bounded, whatever a producer sends (:class:`Limits`): at most ``max_attributes`` attributes
are kept per span (the keys the mapping reads -- ``keep`` -- are kept whatever their
position), strings are cut at ``max_value_chars`` with a ``…[truncated N chars]`` marker
(``io_keys``, the inputs and outputs, at ``max_io_chars``; ``raw_keys``, state attributes, not
at all: their size is checked as a state), nested arrays and maps at ``max_items`` entries and
``max_depth`` levels, events at ``max_events``. What was left out is counted in the span's
``dropped_attributes`` / ``dropped_events``. NUL characters (PostgreSQL cannot store them)
become U+FFFD. Before parsing, values nested past 20 levels are cut (protobuf's parsers
refuse a request nested past 100 levels): in OTLP/JSON always; in protobuf, when the parser
refused the request, by :mod:`debug_sink.otlp.protowire`, which also replaces what is not
UTF-8 (another cause of refusal) and parses once more.

Pure and synchronous, no I/O; never raises for bad input. Not checked here: whether ids and
times make sense (:mod:`debug_sink.otlp.mapping` rejects such spans one by one).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from debug_sink.otlp import protowire
from debug_sink.wire.validation import Rejected

__all__ = [
    "Encoding",
    "ErrorClass",
    "Limits",
    "Span",
    "SpanEvent",
    "decode_request",
    "parse_proto",
]

_HAS_IS_REMOTE: Final = 0x100
_IS_REMOTE: Final = 0x200
_MAX_REASON: Final = 500
_QUOTED: Final = re.compile(r"'[^']*'|\"[^\"]*\"")
#: Resource attributes kept on every span's metadata.
RESOURCE_KEYS: Final = frozenset(
    {
        "service.name",
        "service.namespace",
        "service.version",
        "deployment.environment",
        "deployment.environment.name",
        "telemetry.sdk.language",
        "telemetry.sdk.name",
    }
)


class Encoding(StrEnum):
    """How a topic's messages are encoded; ``auto`` tells them apart per message."""

    AUTO = "auto"
    PROTO = "otlp_proto"
    JSON = "otlp_json"


class ErrorClass(StrEnum):
    """Why an OTLP message, or a span of it, is a dead letter (next to
    :class:`debug_sink.wire.validation.ErrorClass`)."""

    #: The value is empty or a tombstone: nothing to read.
    EMPTY = "empty"
    #: Not an ExportTraceServiceRequest in the expected encoding (corrupt, truncated, other).
    NOT_OTLP = "not_otlp"
    #: A valid request without a single span.
    NO_SPANS = "no_spans"
    #: Spans of the message that cannot become events (no trace id, absurd times, ...).
    SPAN = "otlp_span"


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a span is kept (see the module doc)."""

    max_attributes: int = 128
    max_value_chars: int = 4096
    max_io_chars: int = 32768
    max_items: int = 64
    max_depth: int = 6
    max_events: int = 32
    max_key_chars: int = 256


@dataclass(frozen=True, slots=True)
class SpanEvent:
    """A span event (``exception``, ``gen_ai.evaluation.result``, ...)."""

    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Span:
    """One span, flattened out of its request, its attributes bounded."""

    #: Position of the span in its request (0-based), for rejection reasons.
    index: int
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    #: Whether the parent is in another process (None: the producer does not say).
    parent_is_remote: bool | None
    name: str
    #: OTLP SpanKind (0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: tuple[SpanEvent, ...]
    #: OTLP StatusCode (0 unset, 1 ok, 2 error) and its message.
    status_code: int
    status_message: str
    resource: Mapping[str, Any]
    scope: str
    dropped_attributes: int = 0
    dropped_events: int = 0
    links: int = 0


@dataclass(frozen=True, slots=True)
class _Reader:
    limits: Limits
    keep: frozenset[str]
    io_keys: frozenset[str]
    raw_keys: frozenset[str]

    def text(self, value: str, limit: int) -> str:
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        if len(value) > limit:
            return f"{value[:limit]}…[truncated {len(value) - limit} chars]"
        return value

    def value(self, any_value: Any, depth: int = 0, limit: int | None = None) -> Any:
        """An AnyValue as JSON-able Python, bounded (``limit=-1``: strings not cut)."""
        limits = self.limits
        chars = limits.max_value_chars if limit is None else limit
        which = any_value.WhichOneof("value")
        if which == "string_value":
            text: str = any_value.string_value
            return self.text(text, chars) if chars >= 0 else text.replace("\x00", "\ufffd")
        if which == "int_value":
            return int(any_value.int_value)
        if which == "bool_value":
            return bool(any_value.bool_value)
        if which == "double_value":
            number = float(any_value.double_value)
            return number if math.isfinite(number) else str(number)
        if which == "bytes_value":
            encoded = base64.b64encode(any_value.bytes_value).decode()
            return self.text(encoded, chars) if chars >= 0 else encoded
        if which is None:
            return None
        if depth >= limits.max_depth and chars >= 0:
            return "…[nested too deep]"
        items = limits.max_items if chars >= 0 else None
        if which == "array_value":
            values = any_value.array_value.values
            out: list[Any] = [self.value(v, depth + 1, limit) for v in values[:items]]
            if items is not None and len(values) > items:
                out.append(f"…[{len(values) - items} more items]")
            return out
        entries = any_value.kvlist_value.values
        mapping: dict[str, Any] = {}
        for kv in entries[:items]:
            key = self.text(kv.key, limits.max_key_chars)
            mapping[key] = self.value(kv.value, depth + 1, limit)
        if items is not None and len(entries) > items:
            mapping["…"] = f"[{len(entries) - items} more entries]"
        return mapping

    def attributes(self, pairs: Iterable[Any], room: int) -> tuple[dict[str, Any], int]:
        """Up to ``room`` attributes (and every key in ``keep``); (kept, left out)."""
        kept: dict[str, Any] = {}
        dropped = 0
        limits = self.limits
        for kv in pairs:
            key = kv.key
            if key in self.raw_keys:
                kept[key] = self.value(kv.value, limit=-1)
            elif key in self.keep:
                chars = limits.max_io_chars if key in self.io_keys else None
                kept[key] = self.value(kv.value, limit=chars)
            elif len(kept) < room:
                kept[self.text(key, limits.max_key_chars)] = self.value(kv.value)
            else:
                dropped += 1
        return kept, dropped


def decode_request(
    value: bytes | None,
    *,
    encoding: Encoding = Encoding.AUTO,
    limits: Limits = Limits(),
    keep: frozenset[str] = frozenset(),
    io_keys: frozenset[str] = frozenset(),
    raw_keys: frozenset[str] = frozenset(),
) -> list[Span] | Rejected:
    """The spans of one message, or why there are none to read. ``keep``: attribute keys
    kept whatever the limit; ``io_keys`` (among them) cut at ``max_io_chars``; ``raw_keys``
    never cut (see the module doc)."""
    if not value:
        what = "null (a tombstone)" if value is None else "empty"
        return Rejected(ErrorClass.EMPTY, f"the message value is {what}")
    if encoding is Encoding.AUTO:
        encoding = Encoding.JSON if value.lstrip()[:1] == b"{" else Encoding.PROTO
    request = ExportTraceServiceRequest()
    if encoding is Encoding.PROTO:
        if not parse_proto(value, request):
            return Rejected(
                ErrorClass.NOT_OTLP,
                f"not an OTLP ExportTraceServiceRequest (otlp_proto): the {len(value)} bytes "
                "are not valid protobuf of that message (corrupt, truncated or another "
                "format), even with its strings made UTF-8 and its values nested past "
                f"{_MAX_VALUE_DEPTH} levels cut",
            )
    else:
        rejected = _parse_json(value, request)
        if rejected is not None:
            return rejected
    reader = _Reader(limits, keep | raw_keys, io_keys, raw_keys)
    spans = list(_spans(request, reader))
    if not spans:
        return Rejected(ErrorClass.NO_SPANS, f"the OTLP request ({encoding.value}) holds no spans")
    return spans


def _parse_json(value: bytes, request: ExportTraceServiceRequest) -> Rejected | None:
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejected(ErrorClass.NOT_OTLP, f"not OTLP/JSON: the message is not JSON ({exc})")
    if type(obj) is not dict:
        return Rejected(ErrorClass.NOT_OTLP, "not OTLP/JSON: the message is not a JSON object")
    try:
        _ids_to_base64(obj)
        _cut_deep_values(obj)
        json_format.ParseDict(obj, request, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        # ParseError quotes the offending value: keep the path, never the value. It nests
        # "Failed to parse X field: " per level, with the cause at the end: keep both ends.
        reason = _QUOTED.sub("<value>", str(exc).replace("\n", " "))
        if len(reason) > _MAX_REASON:
            half = _MAX_REASON // 2
            reason = f"{reason[:half]} … {reason[-half:]}"
        return Rejected(
            ErrorClass.NOT_OTLP, f"not an OTLP/JSON ExportTraceServiceRequest: {reason}"
        )
    return None


#: AnyValue levels kept before protobuf's parsers see the request: they refuse a message
#: nested past 100 levels (about three per AnyValue level), which would lose every span of
#: the request for one attribute. The reader cuts deeper at ``Limits.max_depth`` anyway.
_MAX_VALUE_DEPTH: Final = 20
_TOO_DEEP: Final = "…[nested too deep]"
_TOO_DEEP_VALUE: Final = AnyValue(string_value=_TOO_DEEP).SerializeToString()


def parse_proto(value: bytes, request: ExportTraceServiceRequest) -> bool:
    """Parse ``value`` into ``request``; whether it is one. The parser refuses a request
    whole for a string that is not UTF-8 or values nested past its 100 levels: then the
    bytes are repaired (:func:`debug_sink.otlp.protowire.repair`: U+FFFD, values past
    :data:`_MAX_VALUE_DEPTH` levels cut, like the JSON path's) and parsed once more."""
    try:
        request.ParseFromString(value)
    except DecodeError:
        pass
    else:
        return True
    repaired = protowire.repair(
        value,
        ExportTraceServiceRequest.DESCRIPTOR,
        deep=AnyValue.DESCRIPTOR,
        max_depth=_MAX_VALUE_DEPTH,
        placeholder=_TOO_DEEP_VALUE,
    )
    if repaired is None or repaired is value:
        return False  # malformed, or nothing to repair: it would be refused again
    try:
        request.ParseFromString(repaired)
    except DecodeError:
        return False
    return True


def _cut_deep_values(obj: dict[str, Any]) -> None:
    """Attribute values nested deeper than :data:`_MAX_VALUE_DEPTH`, replaced in place
    by a string saying so (the rest of the span, and the other spans, are kept)."""
    for resource in _list(obj, "resourceSpans", "resource_spans"):
        _cut_attributes(resource.get("resource"))
        for scope in _list(resource, "scopeSpans", "scope_spans"):
            _cut_attributes(scope.get("scope"))
            for span in _list(scope, "spans"):
                _cut_attributes(span)
                for item in (*_list(span, "events"), *_list(span, "links")):
                    _cut_attributes(item)


def _cut_attributes(owner: Any) -> None:
    for kv in _list(owner, "attributes"):
        if type(kv) is dict:
            _cut_value(kv, "value", 0)


def _cut_value(parent: dict[str, Any], name: str, depth: int) -> None:
    value = parent.get(name)
    if type(value) is not dict:
        return
    for kind in ("arrayValue", "array_value", "kvlistValue", "kvlist_value"):
        inner = value.get(kind)
        if type(inner) is not dict:
            continue
        if depth >= _MAX_VALUE_DEPTH:
            parent[name] = {"stringValue": _TOO_DEEP}
            return
        for item in _list(inner, "values"):
            if type(item) is dict and kind.startswith("kvlist"):
                _cut_value(item, "value", depth + 1)
            elif type(item) is dict:
                holder = {"value": item}
                _cut_value(holder, "value", depth + 1)
                if holder["value"] is not item:
                    item.clear()
                    item.update(holder["value"])


_ID_KEYS: Final = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


def _ids_to_base64(obj: dict[str, Any]) -> None:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping (which parses the rest) reads
    bytes as base64. Rewritten in place; an id that is not hex is left as it is (some
    exporters send protobuf's base64 mapping)."""
    for resource in _list(obj, "resourceSpans", "resource_spans"):
        for scope in _list(resource, "scopeSpans", "scope_spans"):
            for span in _list(scope, "spans"):
                _rewrite(span)
                for link in _list(span, "links"):
                    _rewrite(link)


def _list(obj: Any, *names: str) -> list[Any]:
    if type(obj) is not dict:
        return []
    for name in names:
        value = obj.get(name)
        if type(value) is list:
            return value
    return []


def _rewrite(obj: Any) -> None:
    if type(obj) is not dict:
        return
    for key in _ID_KEYS:
        text = obj.get(key)
        if type(text) is str and len(text) in (16, 32):
            with contextlib.suppress(ValueError):  # not hex: left to the base64 mapping
                obj[key] = base64.b64encode(bytes.fromhex(text)).decode()
        elif text == "":
            obj[key] = ""


def _spans(request: ExportTraceServiceRequest, reader: _Reader) -> Iterable[Span]:
    limits = reader.limits
    index = 0
    for resource_spans in request.resource_spans:
        resource, _ = reader.attributes(
            (kv for kv in resource_spans.resource.attributes if kv.key in RESOURCE_KEYS),
            len(RESOURCE_KEYS),
        )
        for scope_spans in resource_spans.scope_spans:
            scope = reader.text(scope_spans.scope.name, limits.max_key_chars)
            for span in scope_spans.spans:
                attributes, dropped = reader.attributes(span.attributes, limits.max_attributes)
                events: list[SpanEvent] = []
                for event in span.events:
                    if len(events) >= limits.max_events:
                        break
                    event_attributes, _ = reader.attributes(event.attributes, limits.max_attributes)
                    events.append(
                        SpanEvent(
                            reader.text(event.name, limits.max_key_chars),
                            int(event.time_unix_nano),
                            event_attributes,
                        )
                    )
                flags = int(span.flags)
                remote = bool(flags & _IS_REMOTE) if flags & _HAS_IS_REMOTE else None
                yield Span(
                    index=index,
                    trace_id=bytes(span.trace_id),
                    span_id=bytes(span.span_id),
                    parent_span_id=bytes(span.parent_span_id),
                    parent_is_remote=remote,
                    name=reader.text(span.name, 1024),
                    kind=int(span.kind),
                    start_ns=int(span.start_time_unix_nano),
                    end_ns=int(span.end_time_unix_nano),
                    attributes=attributes,
                    events=tuple(events),
                    status_code=int(span.status.code),
                    status_message=reader.text(span.status.message, limits.max_value_chars),
                    resource=resource,
                    scope=scope,
                    dropped_attributes=dropped + int(span.dropped_attributes_count),
                    dropped_events=len(span.events) - len(events) + int(span.dropped_events_count),
                    links=len(span.links),
                )
                index += 1


def hex_id(value: bytes) -> str:
    """An id as OTLP/JSON and every tracing UI shows it."""
    return binascii.hexlify(value).decode()
