"""Reading OTLP traces messages: both encodings, every bound, every way a message is unreadable
(no services)."""

from __future__ import annotations

import base64

import orjson
import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList

from debug_sink.otlp.decode import Encoding, ErrorClass, Limits, Span, decode_request
from debug_sink.otlp.mapping import LONG_KEYS, READ_KEYS
from debug_sink.wire.validation import Rejected
from tests import otlp_support as o


@pytest.fixture(scope="module")
def recorder() -> o.Recorder:
    recorder = o.Recorder()
    o.agent_loop(recorder)
    return recorder


def spans_of(value: bytes, **kwargs: object) -> list[Span]:
    """The spans, read as the sink reads them (the mapping's keys kept whatever the limit)."""
    options: dict[str, object] = {"keep": READ_KEYS, "io_keys": LONG_KEYS, **kwargs}
    result = decode_request(value, **options)  # type: ignore[arg-type]
    assert not isinstance(result, Rejected), result
    return result


class TestEncodings:
    """otlp_proto and otlp_json of the same spans read the same; ``auto`` tells them apart."""

    def test_proto_and_json_give_the_same_spans(self, recorder: o.Recorder) -> None:
        from_proto = spans_of(o.proto(recorder.spans))
        from_json = spans_of(o.json(recorder.spans))
        assert len(from_proto) == len(recorder.spans) == 9
        assert from_proto == from_json

    def test_ids_times_and_attributes_are_the_sdks(self, recorder: o.Recorder) -> None:
        (tool, _) = recorder.named("execute_tool search_flights")
        by_id = {s.span_id: s for s in spans_of(o.json(recorder.spans))}
        span = by_id[tool.context.span_id.to_bytes(8, "big")]
        assert span.trace_id == tool.context.trace_id.to_bytes(16, "big")
        assert span.parent_span_id == tool.parent.span_id.to_bytes(8, "big")
        assert span.parent_is_remote is False
        assert (span.start_ns, span.end_ns) == (tool.start_time, tool.end_time)
        assert span.attributes["gen_ai.tool.name"] == "search_flights"
        assert span.status_code == 2
        assert [e.name for e in span.events] == ["exception"]
        assert span.resource["service.name"] == "travel-agent"
        assert span.scope == "tests.agent"

    def test_json_with_snake_case_and_base64_ids_is_read_too(self, recorder: o.Recorder) -> None:
        """Some exporters write protobuf's own JSON mapping (base64 ids); unknown fields are
        ignored."""
        from google.protobuf import json_format
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        mapped = json_format.MessageToDict(
            encode_spans(recorder.spans), preserving_proto_field_name=True
        )
        mapped["unknown_field"] = {"x": 1}
        value = orjson.dumps(mapped)
        assert spans_of(value) == spans_of(o.proto(recorder.spans))

    def test_an_encoding_set_for_the_topic_is_not_guessed(self, recorder: o.Recorder) -> None:
        as_proto = decode_request(o.json(recorder.spans), encoding=Encoding.PROTO)
        assert isinstance(as_proto, Rejected)
        assert as_proto.error_class == ErrorClass.NOT_OTLP
        as_json = decode_request(o.proto(recorder.spans), encoding=Encoding.JSON)
        assert isinstance(as_json, Rejected)
        assert as_json.error_class == ErrorClass.NOT_OTLP


class TestUnreadable:
    """What cannot be read is one rejection with a stable class and a reason that quotes no
    value."""

    @pytest.mark.parametrize(
        ("value", "error_class"),
        [
            (None, ErrorClass.EMPTY),
            (b"", ErrorClass.EMPTY),
            (b"\x0a\x05abc", ErrorClass.NOT_OTLP),  # truncated: a 5-byte field with 3 bytes
            (b"\xff\xff\xff\xff", ErrorClass.NOT_OTLP),
            (b"{not json", ErrorClass.NOT_OTLP),
            (b"  [1, 2]", ErrorClass.NOT_OTLP),
            (b"{}", ErrorClass.NO_SPANS),
            (b'{"resourceSpans": []}', ErrorClass.NO_SPANS),
        ],
    )
    def test_class(self, value: bytes | None, error_class: str) -> None:
        result = decode_request(value)
        assert isinstance(result, Rejected)
        assert result.error_class == error_class

    def test_truncated_real_message(self, recorder: o.Recorder) -> None:
        value = o.proto(recorder.spans)
        for cut in (1, len(value) // 3, len(value) - 1):
            result = decode_request(value[:cut])
            assert isinstance(result, Rejected), cut
            assert result.error_class in (ErrorClass.NOT_OTLP, ErrorClass.NO_SPANS)

    def test_a_bad_json_value_is_not_quoted(self) -> None:
        value = orjson.dumps(
            {
                "resourceSpans": [
                    {
                        "scopeSpans": [
                            {
                                "spans": [
                                    {
                                        "traceId": "01" * 16,
                                        "attributes": [
                                            {"key": "k", "value": {"intValue": o.LEAKED_KEY}}
                                        ],
                                    }
                                ]
                            }
                        ]
                    }
                ]
            }
        )
        result = decode_request(value)
        assert isinstance(result, Rejected)
        assert result.error_class == ErrorClass.NOT_OTLP
        assert "intValue" in result.reason
        assert o.LEAKED_KEY not in result.reason


class TestBounds:
    """A span is bounded whatever it carries; what is cut is marked and counted."""

    def test_ten_thousand_attributes(self) -> None:
        attributes = {f"attr.{i}": "x" * 10 for i in range(10_000)}
        attributes["gen_ai.tool.name"] = "search"  # read by the mapping: kept wherever it is
        (span,) = spans_of(o.raw_message(o.raw_span(attributes=attributes)))
        limits = Limits()
        assert len(span.attributes) == limits.max_attributes + 1
        assert span.attributes["gen_ai.tool.name"] == "search"
        assert span.dropped_attributes == 10_001 - len(span.attributes)

    def test_long_strings_are_cut_with_a_marker(self) -> None:
        long = "a" * 100_000
        (span,) = spans_of(
            o.raw_message(o.raw_span(attributes={"note": long, "input.value": long}))
        )
        limits = Limits()
        assert span.attributes["note"] == "a" * limits.max_value_chars + (
            f"…[truncated {100_000 - limits.max_value_chars} chars]"
        )
        assert span.attributes["input.value"].startswith("a" * limits.max_io_chars + "…")

    def test_state_attributes_are_never_cut(self) -> None:
        state = orjson.dumps({"notes": "n" * 50_000}).decode()
        (span,) = spans_of(
            o.raw_message(o.raw_span(attributes={"agent.state": state})),
            raw_keys=frozenset({"agent.state"}),
        )
        assert span.attributes["agent.state"] == state

    def test_nul_becomes_a_replacement_character(self) -> None:
        (span,) = spans_of(o.raw_message(o.raw_span(name="a\x00b", attributes={"k": "c\x00"})))
        assert span.name == "a\ufffdb"
        assert span.attributes["k"] == "c\ufffd"

    def test_deep_and_wide_values_are_bounded(self) -> None:
        value = AnyValue(string_value="leaf")
        for _ in range(15):
            value = AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="n", value=value)]))
        span = o.raw_span()
        span.attributes.append(KeyValue(key="deep", value=value))
        wide = AnyValue()
        wide.array_value.values.extend(AnyValue(int_value=i) for i in range(1000))
        span.attributes.append(KeyValue(key="wide", value=wide))
        span.attributes.append(KeyValue(key="blob", value=AnyValue(bytes_value=b"\x00\x01")))
        (decoded,) = spans_of(o.raw_message(span))
        text = orjson.dumps(decoded.attributes["deep"]).decode()
        assert "…[nested too deep]" in text
        assert text.count("{") == Limits().max_depth
        assert decoded.attributes["wide"][-1] == f"…[{1000 - Limits().max_items} more items]"
        assert decoded.attributes["blob"] == base64.b64encode(b"\x00\x01").decode()
