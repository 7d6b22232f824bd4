"""otlp.protowire.repair and decode_request's second try: a protobuf request that the parser
refuses whole for one span -- an attribute nested past its 100 levels, a string that is not
UTF-8 -- is repaired and read, its neighbours intact; anything else malformed is still one
``not_otlp`` rejection, and no input makes either raise."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from google.protobuf import unknown_fields
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from debug_sink.otlp import protowire
from debug_sink.otlp.decode import Encoding, ErrorClass, Span, decode_request
from debug_sink.wire.validation import Rejected
from tests import otlp_support as o

MARKER = "…[nested too deep]"


# -- the wire format by hand (the Python runtime refuses to build what is tested here) -----


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def deep_value(depth: int, leaf: bytes = field(1, b"leaf")) -> bytes:
    """An AnyValue ``depth`` levels deep, alternately kvlist and array (the JSON tests'
    shape), around ``leaf`` (an AnyValue's fields)."""
    value = leaf
    for level in range(depth):
        if level % 2:
            value = field(5, field(1, value))  # array_value = ArrayValue{values}
        else:
            kv = field(1, b"k") + field(2, value)  # KeyValue{key, value}
            value = field(6, field(1, kv))  # kvlist_value = KeyValueList{values}
    return value


def attribute(key: bytes, value: bytes) -> bytes:
    """Span.attributes (field 9): KeyValue{key, value}."""
    return field(9, field(1, key) + field(2, value))


def span(index: int, *extra: bytes, **fields: Any) -> bytes:
    """A valid span's bytes, then ``extra`` fields (a later singular field wins)."""
    return bytes(o.raw_span(index, **fields).SerializeToString()) + b"".join(extra)


def message(*spans: bytes, resource: bytes = b"") -> bytes:
    """ExportTraceServiceRequest{resource_spans{resource{service.name, ``resource``},
    scope_spans{spans}}}."""
    service = field(1, field(1, b"service.name") + field(2, field(1, b"svc")))
    resource_spans = field(1, service + resource)
    resource_spans += field(2, b"".join(field(2, s) for s in spans))
    return field(1, resource_spans)


def refused(value: bytes) -> bool:
    """Whether protobuf's parser refuses ``value`` (what the repair is for)."""
    try:
        ExportTraceServiceRequest.FromString(value)
    except DecodeError:
        return True
    return False


def spans_of(value: bytes, **kwargs: Any) -> list[Span]:
    result = decode_request(value, **kwargs)
    assert not isinstance(result, Rejected), result
    return result


def repair(value: bytes) -> bytes | None:
    return protowire.repair(
        value,
        ExportTraceServiceRequest.DESCRIPTOR,
        deep=AnyValue.DESCRIPTOR,
        max_depth=20,
        placeholder=AnyValue(string_value=MARKER).SerializeToString(),
    )


def depth_of(value: Any) -> int:
    """Array and map levels in a decoded attribute value."""
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


def leaf_of(value: Any) -> Any:
    while isinstance(value, dict | list):
        value = next(iter(value.values())) if isinstance(value, dict) else value[0]
    return value


def json_message(depth: int) -> bytes:
    """The OTLP/JSON twin of :data:`DEEP`."""

    def jvalue() -> dict[str, Any]:
        value: dict[str, Any] = {"stringValue": "leaf"}
        for level in range(depth):
            if level % 2:
                value = {"arrayValue": {"values": [value]}}
            else:
                value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
        return value

    def jspan(index: int, **extra: Any) -> dict[str, Any]:
        raw = o.raw_span(index)
        return {
            "traceId": bytes(raw.trace_id).hex(),
            "spanId": bytes(raw.span_id).hex(),
            "name": raw.name,
            "startTimeUnixNano": str(raw.start_time_unix_nano),
            "endTimeUnixNano": str(raw.end_time_unix_nano),
            **extra,
        }

    spans = [jspan(1), jspan(2, attributes=[{"key": "deep", "value": jvalue()}]), jspan(3)]
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})


DEEP = message(span(1), span(2, attribute(b"deep", deep_value(40))), span(3))
BAD_NAME = message(span(1), span(2, field(5, b"step \xff2")), span(3))


class TestDeepValues:
    """An attribute nested 40 levels: cut at 20 (the reader cuts at 6), every span kept."""

    def test_forty_levels_are_refused_by_the_parser(self) -> None:
        assert refused(DEEP)

    def test_every_span_is_read_and_the_value_cut(self) -> None:
        spans = spans_of(DEEP)
        assert [s.name for s in spans] == ["step 1", "step 2", "step 3"]
        deep = spans[1].attributes["deep"]
        assert depth_of(deep) == 6
        assert leaf_of(deep) == MARKER

    def test_the_neighbours_are_intact(self) -> None:
        spans = spans_of(DEEP)
        alone = spans_of(message(span(1), span(2), span(3)))
        assert (spans[0], spans[2]) == (alone[0], alone[2])
        assert spans[1].span_id == alone[1].span_id
        assert spans[1].start_ns == alone[1].start_ns

    def test_cut_at_twenty_levels_like_the_json_path(self) -> None:
        """Read uncut (a state attribute): 20 levels, then the marker -- what the OTLP/JSON
        path makes of the same value."""
        raw = frozenset({"deep"})
        (_, middle, _) = spans_of(DEEP, raw_keys=raw)
        assert depth_of(middle.attributes["deep"]) == 20
        assert leaf_of(middle.attributes["deep"]) == MARKER
        as_json = json_message(40)
        (_, json_middle, _) = spans_of(as_json, raw_keys=raw)
        assert middle.attributes["deep"] == json_middle.attributes["deep"]

    def test_the_repaired_request_holds_the_marker_at_level_twenty(self) -> None:
        repaired = repair(DEEP)
        assert repaired is not None
        request = ExportTraceServiceRequest.FromString(repaired)
        value = request.resource_spans[0].scope_spans[0].spans[1].attributes[-1].value
        for _ in range(20):
            which = value.WhichOneof("value")
            assert which in ("array_value", "kvlist_value")
            inner = value.array_value.values if which == "array_value" else None
            value = inner[0] if inner else value.kvlist_value.values[0].value
        assert value.WhichOneof("value") == "string_value"
        assert value.string_value == MARKER

    def test_a_scalar_at_level_twenty_is_kept(self) -> None:
        """As in the JSON path, only an array or map past 20 levels is cut; a string at
        level 20 is kept (here beside a deeper value that makes the parser refuse)."""
        shallow = deep_value(20, field(1, b"kept"))
        value = message(span(1, attribute(b"shallow", shallow), attribute(b"deep", deep_value(40))))
        assert refused(value)
        (read,) = spans_of(value, raw_keys=frozenset({"shallow", "deep"}))
        assert depth_of(read.attributes["shallow"]) == 20
        assert leaf_of(read.attributes["shallow"]) == "kept"
        assert leaf_of(read.attributes["deep"]) == MARKER

    def test_thousands_of_levels(self) -> None:
        """The repair reads no deeper than the cut: no recursion error, the spans read."""
        value = message(span(1), span(2, attribute(b"deep", deep_value(3000))), span(3))
        spans = spans_of(value)
        assert [s.name for s in spans] == ["step 1", "step 2", "step 3"]
        assert leaf_of(spans[1].attributes["deep"]) == MARKER

    def test_in_events_links_and_the_resource_too(self) -> None:
        event = field(11, field(2, b"evt") + field(3, field(1, b"deep") + field(2, deep_value(40))))
        link = field(
            13,
            field(1, bytes(16))
            + field(2, bytes(8))
            + field(4, field(1, b"deep") + field(2, deep_value(40))),
        )
        version = field(1, field(1, b"service.version") + field(2, deep_value(40)))
        value = message(span(1, event, link), resource=version)
        assert refused(value)
        (read,) = spans_of(value, raw_keys=frozenset({"deep", "service.version"}))
        assert leaf_of(read.events[0].attributes["deep"]) == MARKER
        assert leaf_of(read.resource["service.version"]) == MARKER
        assert read.resource["service.name"] == "svc"
        assert read.links == 1


class TestInvalidUtf8:
    """A string that is not UTF-8 is read with U+FFFD; the rest of the request as sent."""

    def test_a_span_name_is_refused_by_the_parser(self) -> None:
        assert refused(BAD_NAME)

    def test_the_name_gets_a_replacement_character(self) -> None:
        spans = spans_of(BAD_NAME)
        assert [s.name for s in spans] == ["step 1", "step \ufffd2", "step 3"]

    def test_the_neighbours_are_intact(self) -> None:
        spans = spans_of(BAD_NAME)
        alone = spans_of(message(span(1), span(2), span(3)))
        assert (spans[0], spans[2]) == (alone[0], alone[2])
        assert spans[1].span_id == alone[1].span_id

    def test_every_string_field(self) -> None:
        """Keys, values, event names, status messages, resource attributes, nested keys."""
        nested = field(6, field(1, field(1, b"k\xc3") + field(2, field(1, b"v\xed\xa0\x80"))))
        event = field(
            11, field(2, b"ev\xfe") + field(3, field(1, b"ek") + field(2, field(1, b"\x80")))
        )
        status = field(15, field(2, b"msg\xff"))
        value = message(
            span(1, attribute(b"a\xff", field(1, b"b\xff")), attribute(b"n", nested), event, status)
        )
        assert refused(value)
        (read,) = spans_of(value)
        assert read.attributes["a\ufffd"] == "b\ufffd"
        assert read.attributes["n"] == {"k\ufffd": "v\ufffd\ufffd\ufffd"}
        assert read.events[0].name == "ev\ufffd"
        assert read.events[0].attributes["ek"] == "\ufffd"
        assert read.status_message == "msg\ufffd"

    def test_length_prefixes_grow_across_a_varint_byte(self) -> None:
        """127 bad bytes become 381 (a 1-byte length becomes 2), and every enclosing length
        with them."""
        value = message(span(1, field(5, b"\xff" * 127)), span(2))
        (first, second) = spans_of(value)
        assert first.name == "\ufffd" * 127
        assert second.name == "step 2"

    def test_bytes_fields_are_not_touched(self) -> None:
        """An AnyValue's bytes_value is not text: its bytes stay as they are."""
        value = message(span(1, field(5, b"\xff"), attribute(b"blob", field(7, b"\xff\x00"))))
        (read,) = spans_of(value)
        assert read.attributes["blob"] == "/wA="  # base64 of ff 00


class TestCopiedThrough:
    def test_a_valid_request_is_returned_as_it_is(self) -> None:
        value = o.raw_message(o.raw_span(1, attributes={"k": "v"}), o.raw_span(2))
        assert repair(value) is value

    def test_unknown_fields_are_kept(self) -> None:
        unknown = (
            varint(100 << 3 | 0)
            + varint(2**63)  # a varint
            + varint(101 << 3 | 1)
            + bytes(range(8))  # 64-bit
            + varint(102 << 3 | 5)
            + bytes(range(4))  # 32-bit
            + field(103, b"\xff not text")  # length-delimited, not a known string
            + varint(9 << 3 | 0)
            + varint(7)  # a known field (attributes) as a varint
        )
        value = message(span(1, field(5, b"\xff"), unknown))
        repaired = repair(value)
        assert repaired is not None
        (read,) = (
            ExportTraceServiceRequest.FromString(repaired).resource_spans[0].scope_spans[0].spans
        )
        kept = [(f.field_number, f.wire_type, f.data) for f in unknown_fields.UnknownFieldSet(read)]
        assert kept == [
            (100, 0, 2**63),
            (101, 1, int.from_bytes(bytes(range(8)), "little")),
            (102, 5, int.from_bytes(bytes(range(4)), "little")),
            (103, 2, b"\xff not text"),
            (9, 0, 7),
        ]
        assert read.name == "\ufffd"


class TestMalformed:
    """What the walk cannot read is the same ``not_otlp`` rejection as before."""

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(BAD_NAME[:-1], id="truncated"),
            pytest.param(message(span(1, field(5, b"\xff"))) + b"\x0a\x80", id="truncated-varint"),
            pytest.param(message(span(1, field(5, b"\xff"))) + b"\x0a\x05ab", id="length-past-end"),
            pytest.param(message(span(1, field(5, b"\xff"), b"\x00\x01")), id="field-number-0"),
            pytest.param(message(span(1, field(5, b"\xff"), b"\x0b\x0c")), id="group"),
            pytest.param(message(span(1, field(5, b"\xff"), b"\x0f\x01")), id="wire-type-7"),
            pytest.param(
                message(span(1, field(5, b"\xff"), b"\x08" + b"\xff" * 11)), id="eleven-byte-varint"
            ),
            pytest.param(b"\x0a\x05abc", id="short"),
            pytest.param(b"\xff\xff\xff\xff", id="junk"),
        ],
    )
    def test_rejected(self, value: bytes) -> None:
        assert repair(value) is None
        result = decode_request(value)
        assert isinstance(result, Rejected)
        assert result.error_class == ErrorClass.NOT_OTLP
        assert "even with its strings made UTF-8" in result.reason

    def test_past_the_parsers_levels_after_the_cut(self) -> None:
        """More than 100 message levels that no cut shortens: refused by the walk itself."""
        value = field(6, field(1, field(1, b"k")))
        for _ in range(120):  # KeyValueList -> KeyValue -> AnyValue, all below the cut
            value = field(6, field(1, field(1, b"k") + field(2, value)))
        too_deep = protowire.repair(
            message(span(1, attribute(b"deep", value))),
            ExportTraceServiceRequest.DESCRIPTOR,
            deep=AnyValue.DESCRIPTOR,
            max_depth=1000,
            placeholder=b"",
        )
        assert too_deep is None


# -- fuzz: no input makes the repair or the decoder raise -------------------------------------

SAMPLES = (
    DEEP,
    BAD_NAME,
    message(span(1, field(5, b"\xff" * 130), attribute(b"d", deep_value(30)))),
)


def read_anyhow(value: bytes) -> None:
    """The decoder's and the repair's contract, for any bytes."""
    repaired = repair(value)
    assert repaired is None or isinstance(repaired, bytes)
    result = decode_request(value, encoding=Encoding.PROTO)
    assert isinstance(result, list | Rejected)
    if isinstance(result, Rejected):
        assert result.error_class in (ErrorClass.EMPTY, ErrorClass.NOT_OTLP, ErrorClass.NO_SPANS)


class TestFuzz:
    @settings(max_examples=300)
    @given(st.binary(max_size=512))
    def test_random_bytes(self, value: bytes) -> None:
        read_anyhow(value)

    @settings(max_examples=300)
    @given(st.sampled_from(SAMPLES), st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
    def test_bit_flips(self, sample: bytes, flips: list[int]) -> None:
        value = bytearray(sample)
        for flip in flips:
            value[flip // 8 % len(value)] ^= 1 << flip % 8
        read_anyhow(bytes(value))

    @settings(max_examples=300)
    @given(
        st.sampled_from(SAMPLES),
        st.integers(0, 10**6),
        st.binary(min_size=1, max_size=16),
    )
    def test_splices(self, sample: bytes, at: int, junk: bytes) -> None:
        at %= len(sample)
        read_anyhow(sample[:at] + junk + sample[at + len(junk) :])

    def test_every_truncation(self) -> None:
        for sample in SAMPLES:
            for cut in range(len(sample)):
                read_anyhow(sample[:cut])

    def test_seeded_mutations(self) -> None:
        rng = random.Random(20261204)
        for _ in range(2000):
            value = bytearray(rng.choice(SAMPLES))
            for _ in range(rng.randint(1, 6)):
                at = rng.randrange(len(value))
                choice = rng.random()
                if choice < 0.4:
                    value[at] = rng.randrange(256)
                elif choice < 0.7:
                    del value[at : at + rng.randint(1, 8)]
                else:
                    value[at:at] = rng.randbytes(rng.randint(1, 8))
                if not value:
                    break
            read_anyhow(bytes(value))

    @given(st.binary(max_size=200), st.binary(max_size=40))
    def test_any_name_and_value_bytes_read_as_replaced_text(self, name: bytes, text: bytes) -> None:
        """Whatever bytes a span's name and a string attribute hold, the request is read
        and they are their bytes decoded with U+FFFD, the neighbours as sent."""
        value = message(span(1), span(2, field(5, name), attribute(b"t", field(1, text))), span(3))
        spans = spans_of(value)
        assert [s.name for s in spans][::2] == ["step 1", "step 3"]
        assert spans[1].name == name.decode(errors="replace").replace("\x00", "\ufffd")
        assert spans[1].attributes["t"] == text.decode(errors="replace").replace("\x00", "\ufffd")
