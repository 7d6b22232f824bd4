"""An OTLP protobuf message made safe to keep as a dead letter: redacted, re-encoded.

Owns :func:`redact_request`. A dead letter keeps its whole message, so that a replay can send
it again; the text scan that covers other non-JSON messages cannot read protobuf's
attributes (``authorization`` -> ``Bearer ...`` is a key and a value in separate
length-prefixed strings). Here the message is decoded and every attribute list -- of the
resource, the scope, each span, its events and its links -- is redacted exactly as the
sink redacts JSON (:meth:`~debug_sink.wire.redact.Redactor.redact`: values under secret
names, name/value pairs, secret formats in every string, JSON inside strings), and so is
every other string a person writes (span and event names, status messages, trace states,
schema URLs, scope versions).

Guarantees: the result is a valid ``ExportTraceServiceRequest`` of the same spans; fields the
schema does not know are dropped (they cannot be redacted: nothing says what they hold);
no secret format left anywhere in it (one that no field above covers -- bytes written as an
id -- makes it None); None when the bytes are not such a request, even repaired as the sink
reads it (its strings
made UTF-8, values nested too deep cut: :func:`~debug_sink.otlp.decode.parse_proto`; the
caller falls back to
:meth:`~debug_sink.wire.redact.Redactor.redact_payload`). An attribute whose value was
changed inside an array or map is written back from its JSON form (a ``bytes`` value in it
becomes its base64 string).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from debug_sink.otlp.decode import parse_proto
from debug_sink.wire.redact import Redactor

__all__ = ["redact_request"]


def redact_request(value: bytes, redactor: Redactor) -> bytes | None:
    """``value`` (an ``otlp_proto`` message) redacted and re-encoded; None if it is not one."""
    if value.lstrip()[:1] == b"{":
        return None  # OTLP/JSON: redacted as JSON
    request = ExportTraceServiceRequest()
    if not parse_proto(value, request):
        return None
    request.DiscardUnknownFields()
    text = _Text(redactor)
    for resource_spans in request.resource_spans:
        _attributes(resource_spans.resource.attributes, redactor)
        resource_spans.schema_url = text(resource_spans.schema_url)
        for scope_spans in resource_spans.scope_spans:
            _attributes(scope_spans.scope.attributes, redactor)
            scope_spans.schema_url = text(scope_spans.schema_url)
            scope_spans.scope.name = text(scope_spans.scope.name)
            scope_spans.scope.version = text(scope_spans.scope.version)
            for span in scope_spans.spans:
                span.name = text(span.name)
                span.trace_state = text(span.trace_state)
                span.status.message = text(span.status.message)
                _attributes(span.attributes, redactor)
                for event in span.events:
                    event.name = text(event.name)
                    _attributes(event.attributes, redactor)
                for link in span.links:
                    link.trace_state = text(link.trace_state)
                    _attributes(link.attributes, redactor)
    redacted = request.SerializeToString()
    if redactor.may_contain(redacted) and redactor.redact_bytes(redacted)[1]:
        # A secret format left where no field above is redacted (an id's bytes): the scan
        # of bytes the caller falls back to finds it.
        return None
    return redacted


class _Text:
    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor

    def __call__(self, value: str) -> str:
        return self._redactor.redact_text(value)[0] if value else value


def _attributes(pairs: Iterable[Any], redactor: Redactor) -> None:
    """Each attribute redacted on its own (a key may be repeated), and the list as a whole
    for name/value pairs spread over two attributes."""
    pairs = list(pairs)
    for kv in pairs:
        original = {kv.key: _json(kv.value)}
        redacted, changed = redactor.redact(original, values=True)
        if changed:
            ((key, new),) = redacted.items()
            if key != kv.key:
                kv.key = key  # a secret written as the key
            _set(kv.value, new)
    whole = {kv.key: _json(kv.value) for kv in pairs}
    redacted, changed = redactor.redact(whole, values=True)
    if changed:
        for kv in pairs:
            if kv.key in redacted and redacted[kv.key] is not whole[kv.key]:
                _set(kv.value, redacted[kv.key])


def _json(any_value: Any) -> Any:
    """An AnyValue as the JSON the redactor walks."""
    which = any_value.WhichOneof("value")
    if which == "string_value":
        return any_value.string_value
    if which == "int_value":
        return int(any_value.int_value)
    if which == "bool_value":
        return bool(any_value.bool_value)
    if which == "double_value":
        number = float(any_value.double_value)
        return number if math.isfinite(number) else str(number)
    if which == "bytes_value":
        return base64.b64encode(any_value.bytes_value).decode()
    if which == "array_value":
        return [_json(v) for v in any_value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _json(kv.value) for kv in any_value.kvlist_value.values}
    return None


def _set(any_value: Any, value: Any) -> None:
    """Write the JSON ``value`` into ``any_value`` (replacing what it held)."""
    any_value.Clear()
    if isinstance(value, bool):
        any_value.bool_value = value
    elif isinstance(value, int) and -(2**63) <= value < 2**63:
        any_value.int_value = value
    elif isinstance(value, float):
        any_value.double_value = value
    elif isinstance(value, list):
        any_value.array_value.SetInParent()
        for item in value:
            _set(any_value.array_value.values.add(), item)
    elif isinstance(value, dict):
        any_value.kvlist_value.SetInParent()
        for key, item in value.items():
            kv = any_value.kvlist_value.values.add()
            kv.key = str(key)
            _set(kv.value, item)
    elif value is not None:
        any_value.string_value = str(value)
