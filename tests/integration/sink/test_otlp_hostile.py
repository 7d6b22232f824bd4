"""Hostile OTLP messages through a running sink (real broker, real PostgreSQL).

One sink run (a consumer group takes ~5 s to form) over one OTLP topic; every message has its
own trace id, so each test inspects the rows of its own message. Expectations are the README's
("Agents in through OpenTelemetry", "Secrets are never stored", "Bad input"): valid spans land
exactly once, every bad span is listed in the message's one dead letter with a reason, the
sink goes on to the end of the topic, and no secret is stored in any table nor on the
dead-letter topic.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
import pytest_asyncio

from debug_sink.otlp import ids
from debug_sink.sink.deadletters import DLQ_HEADERS, TRUNCATED_HEADER
from tests import otlp_support as o
from tests import support as s
from tests.conftest import kafka_names

pytestmark = pytest.mark.timeout(180)

#: Credentials in no known format: only the key they sit under says they are secrets.
SECRETS = {
    "authorization": "Zebra-Quokka-Lantern-4471",
    "api_key": "Mauve-Otter-Window-9182",
    "password": "Tr0ubadour-Horse-Staple-55",
    "client_secret": "Cobalt-Heron-Ladder-3310",
    "link_password": "Saffron-Walrus-Kettle-2207",
}

NOW_NS = time.time_ns() - 60 * 10**9


def trace(n: int) -> bytes:
    return bytes([0xA0 + n]) + bytes(range(1, 16))


def corr(n: int) -> uuid.UUID:
    return ids.correlation_id(trace(n))


# -- protobuf ------------------------------------------------------------------------------


def pspan(n: int, index: int, **fields: Any) -> Any:
    fields.setdefault("trace_id", trace(n))
    fields.setdefault("start_time_unix_nano", NOW_NS + index * 10**6)
    fields.setdefault("end_time_unix_nano", NOW_NS + index * 10**6 + 5 * 10**6)
    return o.raw_span(index, **fields)


def secret_proto_span(n: int) -> Any:
    """A valid span whose attributes, event and link carry credentials under secret names."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    span = pspan(
        n,
        1,
        attributes={
            "authorization": SECRETS["authorization"],
            "api_key": SECRETS["api_key"],
            "http.method": "GET",
        },
    )
    event = Span.Event(name="login", time_unix_nano=NOW_NS + 2 * 10**6)
    event.attributes.append(
        KeyValue(key="password", value=AnyValue(string_value=SECRETS["password"]))
    )
    event.attributes.append(
        KeyValue(key="client_secret", value=AnyValue(string_value=SECRETS["client_secret"]))
    )
    span.events.append(event)
    link = Span.Link(trace_id=trace(n), span_id=(99).to_bytes(8, "big"))
    link.attributes.append(
        KeyValue(key="password", value=AnyValue(string_value=SECRETS["link_password"]))
    )
    span.links.append(link)
    return span


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def deep_attribute_bytes(key: str, depth: int) -> bytes:
    """Span.attributes (field 9): KeyValue{key, value: kvlist -> kvlist -> ... -> "leaf"},
    encoded by hand (the Python protobuf runtime refuses to build it past its own limit)."""
    value = _field(1, b"leaf")  # AnyValue.string_value
    for _ in range(depth):
        kv = _field(1, b"k") + _field(2, value)  # KeyValue{key, value}
        value = _field(6, _field(1, kv))  # AnyValue.kvlist_value = KeyValueList{values}
    return _field(9, _field(1, key.encode()) + _field(2, value))


def proto_message(*span_bytes: bytes, service: str = "svc") -> bytes:
    """ExportTraceServiceRequest{resource_spans{resource{service.name}, scope_spans{spans}}}
    around already-serialised spans."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    resource = Resource()
    resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    scope_spans = b"".join(_field(2, raw) for raw in span_bytes)  # ScopeSpans.spans
    resource_spans = _field(1, resource.SerializeToString()) + _field(2, scope_spans)
    return _field(1, resource_spans)


# -- OTLP/JSON -----------------------------------------------------------------------------


def jspan(n: int, index: int, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "traceId": trace(n).hex(),
        "spanId": index.to_bytes(8, "big").hex(),
        "name": f"step {index}",
        "startTimeUnixNano": str(NOW_NS + index * 10**6),
        "endTimeUnixNano": str(NOW_NS + index * 10**6 + 5 * 10**6),
    }
    body.update(overrides)
    return body


def jmessage(*spans: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                    },
                    "scopeSpans": [{"scope": {"name": "redteam"}, "spans": list(spans)}],
                }
            ]
        }
    )


def jstr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def jdeep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for level in range(depth):
        if level % 2:
            value = {"arrayValue": {"values": [value]}}
        else:
            value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


# -- the messages, one trace id each --------------------------------------------------------

M_SECRET_PROTO = 0
M_SECRET_JSON = 1
M_DEEP_JSON = 2
M_DEEP_PROTO = 3
M_BAD_UTF8 = 4
M_MIXED = 5
M_MIXED_AGAIN = 6
M_SAME_SPAN_OTHER_RECORD = 7
M_TAIL = 8
M_TRUNCATED_JSON = 9

#: A hook event with an HTTP header list, cut short (a producer's bug): not JSON.
HOOK_SECRET = "Indigo-Badger-Teapot-6603"


def _messages() -> list[bytes]:
    messages: list[bytes] = []
    # 0: protobuf, secrets under secret names in a good span; a neighbour with start time 0
    messages.append(
        o.raw_message(
            secret_proto_span(M_SECRET_PROTO), pspan(M_SECRET_PROTO, 2, start_time_unix_nano=0)
        )
    )
    # 1: the same in OTLP/JSON
    good = jspan(
        M_SECRET_JSON,
        1,
        attributes=[
            jstr("authorization", SECRETS["authorization"]),
            jstr("api_key", SECRETS["api_key"]),
        ],
        events=[
            {
                "name": "login",
                "timeUnixNano": str(NOW_NS + 2 * 10**6),
                "attributes": [
                    jstr("password", SECRETS["password"]),
                    jstr("client_secret", SECRETS["client_secret"]),
                ],
            }
        ],
        links=[
            {
                "traceId": trace(M_SECRET_JSON).hex(),
                "spanId": (99).to_bytes(8, "big").hex(),
                "attributes": [jstr("password", SECRETS["link_password"])],
            }
        ],
    )
    messages.append(jmessage(good, jspan(M_SECRET_JSON, 2, startTimeUnixNano="0")))
    # 2: OTLP/JSON, the middle span's one attribute nested 40 levels (kvlist/array)
    messages.append(
        jmessage(
            jspan(M_DEEP_JSON, 1),
            jspan(M_DEEP_JSON, 2, attributes=[{"key": "deep", "value": jdeep(40)}]),
            jspan(M_DEEP_JSON, 3),
        )
    )
    # 3: protobuf, the same: a 40-level kvlist in the middle span
    middle = pspan(M_DEEP_PROTO, 2).SerializeToString() + deep_attribute_bytes("deep", 40)
    messages.append(
        proto_message(
            pspan(M_DEEP_PROTO, 1).SerializeToString(),
            middle,
            pspan(M_DEEP_PROTO, 3).SerializeToString(),
        )
    )
    # 4: protobuf, the middle span's name is not UTF-8 (a byte replaced by one: the length
    # prefixes still hold)
    marked = o.raw_message(
        pspan(M_BAD_UTF8, 1), pspan(M_BAD_UTF8, 2, name="step 2 (X)"), pspan(M_BAD_UTF8, 3)
    )
    messages.append(marked.replace(b"step 2 (X)", b"step 2 (\xff)"))
    # 5: OTLP/JSON: hex ids, base64 ids, and six spans that cannot be mapped, a repeated span
    n = M_MIXED
    mixed = jmessage(
        jspan(n, 1),
        jspan(
            n,
            2,
            traceId=base64.b64encode(trace(n)).decode(),
            spanId=base64.b64encode((2).to_bytes(8, "big")).decode(),
        ),
        jspan(n, 3, traceId="0" * 32),  # all-zero trace id
        jspan(n, 4, spanId="0" * 16),  # all-zero span id
        jspan(n, 5, spanId="00000005"),  # 4 bytes as hex
        jspan(n, 6, startTimeUnixNano=str(NOW_NS + 10**9), endTimeUnixNano=str(NOW_NS)),
        jspan(n, 7, startTimeUnixNano="0"),
        jspan(n, 8, endTimeUnixNano=str(7_258_118_400 * 10**9)),  # year 2200
        jspan(n, 1, name="the same span again"),
    )
    messages.append(mixed)
    # 6: the same record again (a producer's retry)
    messages.append(mixed)
    # 7: span 2 of message 5 again, beside a new span 9
    messages.append(o.raw_message(pspan(n, 2, name="step 2 re-exported"), pspan(n, 9)))
    # 8: a plain message after all of it
    messages.append(o.raw_message(pspan(M_TAIL, 1)))
    # 9: the OTLP/JSON secrets message of offset 1, cut short (truncated in transit)
    whole = messages[M_SECRET_JSON]
    messages.append(whole[: whole.index(SECRETS["link_password"].encode()) + 40])
    return messages


def _truncated_hook(kafka: Any) -> bytes:
    body = orjson.dumps(
        {
            "id": str(uuid.uuid4()),
            "schema_version": 1,
            "correlation_id": str(uuid.uuid4()),
            "source": "PostToolUse",
            "payload": {
                "request": {"headers": [{"name": "Authorization", "value": HOOK_SECRET}]},
                "response": "ok " * 50,
            },
        }
    )
    return body[: body.index(HOOK_SECRET.encode()) + 60]


@pytest_asyncio.fixture(scope="module")
async def scenario(module_db: str, kafka_bootstrap: str) -> s.ScenarioRun[dict[str, Any]]:
    async def run() -> dict[str, Any]:
        kafka = kafka_names(kafka_bootstrap)
        topic = await o.create_otlp_topic(kafka)
        messages = _messages()
        await o.produce_otlp(kafka, [(None, m) for m in messages])
        await s.create_topics(kafka, kinds=[s.HK])
        await s.produce(kafka, [(s.topic(kafka, s.HK), _truncated_hook(kafka))])
        await s.run_sink(s.sink_settings(module_db, kafka), timeout=120)
        dlq = await s.read_topic(kafka_bootstrap, kafka.dead_letter_topic)
        return {"dsn": module_db, "kafka": kafka, "topic": topic, "sent": len(messages), "dlq": dlq}

    return await s.ScenarioRun.capture(run())


@pytest.fixture
def run(scenario: s.ScenarioRun[dict[str, Any]], request: pytest.FixtureRequest) -> dict[str, Any]:
    return scenario.result(request.node.nodeid)


async def _fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def _steps(dsn: str, n: int) -> list[str]:
    rows = await _fetch(
        dsn,
        "SELECT operation_name FROM debug_workflow_steps WHERE correlation_id = $1 "
        "ORDER BY operation_name",
        corr(n),
    )
    return [r[0] for r in rows]


async def _letters(dsn: str, offset: int) -> list[dict[str, Any]]:
    rows = await _fetch(
        dsn,
        'SELECT "offset", part, error_class, reason, value FROM sink_dead_letters '
        "WHERE \"offset\" = $1 AND topic LIKE '%otlp_spans' ORDER BY part",
        offset,
    )
    return [dict(r) for r in rows]


_EVERY_TEXT = """
SELECT 'debug_workflow_steps', t::text FROM debug_workflow_steps t
UNION ALL SELECT 'debug_error_events', t::text FROM debug_error_events t
UNION ALL SELECT 'debug_success_events', t::text FROM debug_success_events t
UNION ALL SELECT 'debug_state_snapshots', t::text FROM debug_state_snapshots t
UNION ALL SELECT 'hook_events', t::text FROM hook_events t
UNION ALL SELECT 'agent_transformation_events', t::text FROM agent_transformation_events t
UNION ALL SELECT 'sink_parked_events', t::text FROM sink_parked_events t
UNION ALL SELECT 'sink_dead_letters', t::text || encode(coalesce(t.value, ''), 'escape')
          FROM sink_dead_letters t WHERE t."offset" = $1 AND t.topic LIKE '%otlp_spans'
"""


class TestSecrets:
    async def test_protobuf_message_secrets_not_stored_in_any_table(
        self, run: dict[str, Any]
    ) -> None:
        """A protobuf OTLP message whose good span carries credentials under `authorization`,
        `api_key` (attributes), `password`, `client_secret` (an event) and `password` (a link),
        beside a span rejected for its start time 0. The good span lands; nothing stores the
        credentials."""
        assert await _steps(run["dsn"], M_SECRET_PROTO) == ["step 1"]
        letters = await _letters(run["dsn"], M_SECRET_PROTO)
        assert [letter["error_class"] for letter in letters] == ["otlp_span"]
        rows = await _fetch(run["dsn"], _EVERY_TEXT, M_SECRET_PROTO)
        leaks = {
            (table, name)
            for table, text in rows
            for name, secret in SECRETS.items()
            if secret in text
        }
        assert leaks == set()

    async def test_protobuf_message_secrets_not_on_the_dead_letter_topic(
        self, run: dict[str, Any]
    ) -> None:
        """The same message's copy on the dead-letter topic holds no credential."""

        def origin(record: Any) -> tuple[bytes | None, bytes | None]:
            headers = dict(record.headers)
            return headers.get("__connect.errors.topic"), headers.get("__connect.errors.offset")

        copies = [r for r in run["dlq"] if origin(r) == (run["topic"].encode(), b"0")]
        assert len(copies) >= 1
        leaks = {
            (record.offset, name)
            for record in copies
            for name, secret in SECRETS.items()
            if secret.encode() in (record.value or b"")
            or any(secret.encode() in (v or b"") for _, v in record.headers)
        }
        assert leaks == set()

    async def test_truncated_otlp_json_secrets_not_in_dead_letter(
        self, run: dict[str, Any]
    ) -> None:
        """The OTLP/JSON message cut short (not_otlp): its letter keeps what can be kept,
        redacted -- the attribute pairs `{"key": "authorization", "value": {...}}` are the
        same secret-named pairs the JSON redaction catches."""
        (letter,) = await _letters(run["dsn"], M_TRUNCATED_JSON)
        assert letter["error_class"] == "not_otlp"
        leaked = [n for n, secret in SECRETS.items() if secret.encode() in letter["value"]]
        assert leaked == []
        # Broken JSON naming secrets in pairs the text scan cannot read: not kept, and said.
        assert letter["value"] == b""
        assert "the message is not kept" in letter["reason"]

    async def test_truncated_json_event_secret_not_in_dead_letter(
        self, run: dict[str, Any]
    ) -> None:
        """A debug.hook_events message cut short (not_json) holding a header list
        `[{"name": "Authorization", "value": ...}]` (README: name/value lists are redacted):
        its dead letter, in the table and on the topic, does not hold the credential."""
        rows = await _fetch(
            run["dsn"],
            "SELECT error_class, value FROM sink_dead_letters WHERE topic LIKE '%hook_events'",
        )
        assert [r["error_class"] for r in rows] == ["not_json"]
        assert HOOK_SECRET.encode() not in rows[0]["value"]
        on_topic = [r.value for r in run["dlq"] if HOOK_SECRET.encode() in (r.value or b"")]
        assert on_topic == []
        (copy,) = [r for r in run["dlq"] if b"hook_events" in dict(r.headers)[DLQ_HEADERS[0]]]
        assert dict(copy.headers)[TRUNCATED_HEADER].startswith(b"original_bytes=")

    async def test_protobuf_letter_is_the_redacted_request(self, run: dict[str, Any]) -> None:
        """The protobuf message's letter is still the request (a replay can send it again):
        both spans, the secret-named values replaced, the other attributes as sent."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        (letter,) = await _letters(run["dsn"], M_SECRET_PROTO)
        request = ExportTraceServiceRequest.FromString(letter["value"])
        (span, _) = request.resource_spans[0].scope_spans[0].spans
        values = {kv.key: kv.value.string_value for kv in span.attributes}
        assert values == {
            "authorization": "[REDACTED]",
            "api_key": "[REDACTED]",
            "http.method": "GET",
        }
        assert span.events[0].attributes[0].value.string_value == "[REDACTED]"
        assert span.links[0].attributes[0].value.string_value == "[REDACTED]"

    async def test_json_message_secrets_redacted(self, run: dict[str, Any]) -> None:
        """Control: the OTLP/JSON twin of that message -- its letter is redacted by key."""
        assert await _steps(run["dsn"], M_SECRET_JSON) == ["step 1"]
        (letter,) = await _letters(run["dsn"], M_SECRET_JSON)
        for secret in SECRETS.values():
            assert secret.encode() not in letter["value"]


class TestOneBadSpanKeepsItsNeighbours:
    """README: a span that cannot be mapped is listed in the message's one `otlp_span` dead
    letter, 'its neighbours land'; 'nested values [are bounded] at ... 6 levels'."""

    async def test_json_deep_attribute(self, run: dict[str, Any]) -> None:
        """OTLP/JSON, three spans, the middle one's attribute nested 40 levels deep (past
        protobuf's JSON parser's 100 message levels): the value is cut, every span lands,
        no dead letter."""
        assert await _steps(run["dsn"], M_DEEP_JSON) == ["step 1", "step 2", "step 3"]
        assert await _letters(run["dsn"], M_DEEP_JSON) == []
        (cut,) = await _fetch(
            run["dsn"],
            "SELECT count(*) FROM debug_workflow_steps t WHERE correlation_id = $1 "
            "AND operation_name = 'step 2' AND t::text LIKE '%nested too deep%'",
            corr(M_DEEP_JSON),
        )
        assert cut[0] == 1

    async def test_protobuf_deep_attribute(self, run: dict[str, Any]) -> None:
        """The same in protobuf (past upb's 100 message levels, which refuses the request
        whole): the bytes are repaired -- the value cut at 20 levels, like the JSON path --
        and read; every span lands, no dead letter."""
        assert await _steps(run["dsn"], M_DEEP_PROTO) == ["step 1", "step 2", "step 3"]
        assert await _letters(run["dsn"], M_DEEP_PROTO) == []
        (cut,) = await _fetch(
            run["dsn"],
            "SELECT count(*) FROM debug_workflow_steps t WHERE correlation_id = $1 "
            "AND operation_name = 'step 2' AND t::text LIKE '%nested too deep%'",
            corr(M_DEEP_PROTO),
        )
        assert cut[0] == 1

    async def test_protobuf_invalid_utf8_in_one_span_name(self, run: dict[str, Any]) -> None:
        """Protobuf, the middle span's name is not UTF-8 (proto3 requires it; upb refuses the
        request whole): the bytes are repaired and read, the name with U+FFFD for the bad
        byte; every span lands, no dead letter."""
        steps = await _steps(run["dsn"], M_BAD_UTF8)
        assert steps == ["step 1", "step 2 (\ufffd)", "step 3"]
        assert await _letters(run["dsn"], M_BAD_UTF8) == []


class TestMixedMessages:
    async def test_valid_spans_exactly_once_bad_ones_listed(self, run: dict[str, Any]) -> None:
        """Hex and base64 ids land; all-zero ids, a 4-byte span id, start > end, start 0 and
        year 2200 are six problems in one letter per record; a repeated span, the same record
        twice and a span re-exported in another record are one row each."""
        steps = await _steps(run["dsn"], M_MIXED)
        assert len(steps) == 3, steps
        assert {"step 1", "step 9"} <= set(steps)
        for offset in (M_MIXED, M_MIXED_AGAIN):
            (letter,) = await _letters(run["dsn"], offset)
            assert letter["error_class"] == "otlp_span"
            assert letter["part"] == 2
            assert letter["reason"].startswith("6 problem(s) in 9 span(s)"), letter["reason"]
            for reason in (
                "no trace id",
                "no span id",
                "the span id is 6 bytes",
                "ends before it starts",
                "start time is not set (0)",
                "more than a day after",
            ):
                assert reason in letter["reason"], (reason, letter["reason"])
        assert not await _letters(run["dsn"], M_SAME_SPAN_OTHER_RECORD)

    async def test_sink_reached_the_end(self, run: dict[str, Any]) -> None:
        """The plain message after the hostile ones landed, every offset is stored and nothing
        waits in the parked table."""
        assert await _steps(run["dsn"], M_TAIL) == ["step 1"]
        (row,) = await _fetch(
            run["dsn"],
            "SELECT next_offset FROM sink_offsets WHERE group_id = $1 AND topic = $2",
            run["kafka"].group_id,
            run["topic"],
        )
        assert row[0] == run["sent"]
        assert (await _fetch(run["dsn"], "SELECT count(*) FROM sink_parked_events"))[0][0] == 0
