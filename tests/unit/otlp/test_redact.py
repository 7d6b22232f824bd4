"""otlp.redact.redact_request: a protobuf request as its dead letter keeps it -- every
attribute list and free-text field redacted like JSON, still a request of the same spans."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from debug_sink.otlp.redact import redact_request
from debug_sink.wire.redact import Redactor
from tests import otlp_support as o

REDACTOR = Redactor()
BEARER = "Bearer abcdefghijklmnopqrstuvwxyz0123456789"


def _request() -> bytes:
    span = o.raw_span(
        1,
        name="call sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
        attributes={"api_key": "Mauve-Otter", "gen_ai.system": "anthropic"},
    )
    span.attributes.append(
        KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=1234))
    )
    nested = KeyValueList(
        values=[
            KeyValue(key="password", value=AnyValue(string_value="Tr0ubadour")),
            KeyValue(key="user", value=AnyValue(string_value="alice")),
        ]
    )
    span.attributes.append(KeyValue(key="config", value=AnyValue(kvlist_value=nested)))
    span.attributes.append(KeyValue(key="note", value=AnyValue(string_value=f"sent {BEARER}")))
    span.status.message = f"401 for {BEARER}"
    event = Span.Event(name="login")
    event.attributes.append(KeyValue(key="client_secret", value=AnyValue(string_value="Cob")))
    span.events.append(event)
    link = Span.Link(trace_id=bytes(range(1, 17)), span_id=(9).to_bytes(8, "big"))
    link.attributes.append(KeyValue(key="authorization", value=AnyValue(string_value="Zeb")))
    span.links.append(link)
    return o.raw_message(span, o.raw_span(2))


def test_redacted_and_still_a_request() -> None:
    out = redact_request(_request(), REDACTOR)
    assert out is not None
    request = ExportTraceServiceRequest.FromString(out)
    first, second = request.resource_spans[0].scope_spans[0].spans
    attributes = {kv.key: kv.value for kv in first.attributes}
    assert attributes["api_key"].string_value == "[REDACTED]"
    assert attributes["gen_ai.system"].string_value == "anthropic"
    assert attributes["gen_ai.usage.input_tokens"].int_value == 1234  # a count, kept
    config = {kv.key: kv.value.string_value for kv in attributes["config"].kvlist_value.values}
    assert config == {"password": "[REDACTED]", "user": "alice"}
    assert "abcdefghijklmnopqrstuvwxyz0123456789" not in attributes["note"].string_value
    assert "abcdefghijklmnopqrstuvwxyz0123456789" not in first.status.message
    assert "sk-ant-api03" not in first.name
    assert first.events[0].attributes[0].value.string_value == "[REDACTED]"
    assert first.links[0].attributes[0].value.string_value == "[REDACTED]"
    assert second.name == "step 2"
    assert b"Mauve-Otter" not in out
    assert b"Tr0ubadour" not in out


def test_unknown_fields_are_dropped() -> None:
    """Bytes the schema does not know cannot be redacted: they are not kept."""
    unknown = b"\xfa\x07\x13password=Tr0ubadour"  # field 127, length-delimited
    out = redact_request(_request() + unknown, REDACTOR)
    assert out is not None
    assert b"Tr0ubadour" not in out


def test_not_a_protobuf_request() -> None:
    assert redact_request(b'{"resourceSpans": []}', REDACTOR) is None
    assert redact_request(b"\xff\xff\xff\xff", REDACTOR) is None


def test_a_request_the_parser_refuses_is_repaired_as_the_sink_reads_it() -> None:
    """A span name that is not UTF-8 makes protobuf refuse the whole request; the sink reads
    it repaired, so its letter is the repaired request, redacted -- not withheld."""
    span = o.raw_span(1, name="step (X)", attributes={"api_key": "Mauve-Otter"})
    raw = o.raw_message(span, o.raw_span(2)).replace(b"step (X)", b"step (\xff)")
    with pytest.raises(DecodeError):
        ExportTraceServiceRequest.FromString(raw)
    out = redact_request(raw, REDACTOR)
    assert out is not None
    first, _ = ExportTraceServiceRequest.FromString(out).resource_spans[0].scope_spans[0].spans
    assert first.name == "step (\ufffd)"
    assert first.attributes[0].value.string_value == "[REDACTED]"


def test_schema_urls_and_scope_versions_are_redacted() -> None:
    """Schema URLs and a scope's version are strings a producer writes too: a secret in
    them is redacted (the scan of bytes these letters had before found it there)."""
    request = ExportTraceServiceRequest.FromString(_request())
    resource_spans = request.resource_spans[0]
    resource_spans.schema_url = "https://bob:Tr0ubadour@schemas.example/1"
    resource_spans.scope_spans[0].schema_url = "https://:Sh4dowfax@schemas.example/2"
    resource_spans.scope_spans[0].scope.version = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz"
    out = redact_request(request.SerializeToString(), REDACTOR)
    assert out is not None
    for secret in (b"Tr0ubadour", b"Sh4dowfax", b"sk-ant-api03"):
        assert secret not in out
    redacted = ExportTraceServiceRequest.FromString(out).resource_spans[0]
    assert redacted.schema_url == "https://bob:[REDACTED]@schemas.example/1"
    assert redacted.scope_spans[0].schema_url == "https://:[REDACTED]@schemas.example/2"
    assert len(redacted.scope_spans[0].spans) == 2


def test_a_secret_where_no_field_is_redacted_is_not_kept() -> None:
    """A secret format in bytes no redaction of a field reaches (an id): the request is not
    kept re-encoded (None), so the letter falls back to the scan of bytes."""
    request = ExportTraceServiceRequest.FromString(_request())
    span = request.resource_spans[0].scope_spans[0].spans[1]
    span.trace_id = b"ghp_abcdefghijklmnopqrstuvwxyz0123"
    assert redact_request(request.SerializeToString(), REDACTOR) is None
