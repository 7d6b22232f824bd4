"""The wire format is client-agnostic: librdkafka (confluent-kafka) producers are accepted the
same as aiokafka ones.

The same messages -- same bytes, keys, headers and record timestamps, in the same order -- are
produced once with confluent-kafka (uncompressed and with every compression codec the sink's
Kafka client can decode) and once with aiokafka, to two topic sets; two sinks write them to two
databases at the same time. Every row of every table must be identical.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import asyncpg
import confluent_kafka
import orjson
from aiokafka import AIOKafkaProducer, codec

from debug_sink.wire.events import EventKind
from tests import support as s
from tests.conftest import kafka_names
from tests.support import ER, HK, SN, ST, SU, TR

#: Codecs librdkafka producers commonly use; the sink must decode each of them.
CODECS = ("gzip", "snappy", "lz4", "zstd")
DECODABLE = [c for c in CODECS if getattr(codec, f"has_{c}")()]
#: Columns PostgreSQL fills (the writing transaction's id), not the sink from the message.
SERVER_ASSIGNED = frozenset({"ingest_xid"})
RECORD_TIME_MS = 1_790_000_000_123  # 2026-09-21T...Z: the record timestamp of every message

Message = tuple[EventKind, bytes | None, bytes | None, list[tuple[str, bytes]]]


def _segment(n: int) -> list[Message]:
    """One workflow of every kind, with the awkward parts a real producer sends."""
    corr = s.uid()
    key = corr.encode()
    snap = s.snapshot(
        corr,
        {
            "prompt": "Résumé ✓ 日本語 🚀",
            "api_key": "sk-123",
            "nested": {"Authorization": "Bearer x", "list": [1, 2.5, None]},
            "n": n,
        },
    )
    twin = s.snapshot(corr, dict(snap["agent_state"]))  # the same state: an alias
    err = s.error(corr, state_snapshot_id=twin["id"], error_message="naïve «quotes»\n\ttab")
    del err["occurred_at"]  # filled from the record timestamp
    ok = s.success(
        corr,
        state_snapshot_id=snap["id"],
        quality_score=0.8125,
        success_factors={"token": "t", "why": "retry"},
    )
    tr = s.transformation(corr, state_snapshot_id=snap["id"], confidence_score=0.33)
    start = s.step(corr, 1, "started", started_at=s.ts(n))
    end = s.step(
        corr,
        1,
        "completed",
        id=start["id"],
        completed_at=s.ts(n + 1.5),
        error_event_id=err["id"],
        output_data=[1, "two", {"3": None}],
    )
    hk = s.hook(corr, session_id=s.uid())
    trace = [("trace-id", f"segment-{n}".encode())]
    out: list[Message] = [
        (kind, orjson.dumps(e), key, trace)
        for kind, e in (
            (SN, snap),
            (SN, twin),
            (ER, err),
            (SU, ok),
            (TR, tr),
            (ST, end),
            (ST, start),
            (HK, hk),
            (ER, err),
        )
    ]  # err sent twice
    out.append((ER, b'{"truncated": ', key, trace))  # poison
    out.append((SU, None, key, trace))  # a tombstone
    return out


def _confluent_produce(
    bootstrap: str, prefix: str, segments: list[tuple[str, list[Message]]]
) -> None:
    for compression, messages in segments:
        producer = confluent_kafka.Producer(
            {"bootstrap.servers": bootstrap, "compression.type": compression, "linger.ms": 5}
        )
        failed: list[Any] = []

        def delivered(err: Any, _msg: Any, failed: list[Any] = failed) -> None:
            if err is not None:
                failed.append(err)

        for kind, value, key, headers in messages:
            producer.produce(
                prefix + _suffix(kind),
                value=value,
                key=key,
                headers=headers,
                timestamp=RECORD_TIME_MS,
                on_delivery=delivered,
            )
        assert producer.flush(30) == 0
        assert failed == []


async def _aiokafka_produce(
    bootstrap: str, prefix: str, segments: list[tuple[str, list[Message]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, enable_idempotence=False)
    await producer.start()
    try:
        for _, messages in segments:
            futures = [
                await producer.send(
                    prefix + _suffix(kind),
                    value,
                    key=key,
                    headers=headers,
                    timestamp_ms=RECORD_TIME_MS,
                )
                for kind, value, key, headers in messages
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _suffix(kind: EventKind) -> str:
    return s.topic(SimpleNamespace(topic_prefix=""), kind)


async def _contents(dsn: str, prefix: str) -> dict[str, list[dict[str, Any]]]:
    conn = await asyncpg.connect(dsn)
    try:
        out = {
            t: [
                {k: v for k, v in r.items() if k not in SERVER_ASSIGNED}
                for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY id")
            ]
            for t in s.EVENT_TABLES
        }
        out["sink_dead_letters"] = [
            {**dict(r), "topic": r["topic"].removeprefix(prefix)}
            for r in await conn.fetch(
                'SELECT topic, partition, "offset", key, value, headers, error_class, reason, '
                'record_time FROM sink_dead_letters ORDER BY topic, partition, "offset"'
            )
        ]
        out["sink_snapshot_aliases"] = [
            dict(r)
            for r in await conn.fetch(
                "SELECT alias_id, snapshot_id FROM sink_snapshot_aliases ORDER BY alias_id"
            )
        ]
        out["sink_offsets"] = [
            {**dict(r), "topic": r["topic"].removeprefix(prefix)}
            for r in await conn.fetch(
                "SELECT topic, partition, next_offset FROM sink_offsets ORDER BY topic"
            )
        ]
        out["sink_parked_events"] = [
            dict(r) for r in await conn.fetch("SELECT event_id FROM sink_parked_events")
        ]
        return out
    finally:
        await conn.close()


async def test_confluent_kafka_producer_accepted_the_same(
    db_dsn: str, other_db: str, kafka: Any, kafka_bootstrap: str
) -> None:
    """Rows, dead letters (raw bytes, headers, reasons), aliases and offsets written from a
    librdkafka producer -- uncompressed and compressed with every codec the sink decodes --
    are identical to those written from aiokafka producing the same messages."""
    other = kafka_names(kafka_bootstrap)
    await s.create_topics(kafka, partitions=1)
    await s.create_topics(other, partitions=1)
    segments = [
        (compression, _segment(n)) for n, compression in enumerate(["none", *DECODABLE, "none"])
    ]
    await asyncio.to_thread(
        _confluent_produce, kafka.bootstrap_servers, kafka.topic_prefix, segments
    )
    await _aiokafka_produce(kafka_bootstrap, other.topic_prefix, segments)

    await asyncio.gather(
        s.run_sink(s.sink_settings(db_dsn, kafka)), s.run_sink(s.sink_settings(other_db, other))
    )
    foreign = await _contents(db_dsn, kafka.topic_prefix)
    native = await _contents(other_db, other.topic_prefix)

    n = len(segments)
    assert {t: len(rows) for t, rows in native.items()} == {
        "debug_state_snapshots": n,
        "debug_error_events": n,
        "debug_success_events": n,
        "debug_workflow_steps": n,
        "agent_transformation_events": n,
        "hook_events": n,
        "sink_dead_letters": 2 * n,
        "sink_snapshot_aliases": n,
        "sink_offsets": 6,
        "sink_parked_events": 0,
    }
    for table in native:
        assert foreign[table] == native[table], table
    # Not vacuous: what the producer did not send came from the record, secrets are gone.
    error = foreign["debug_error_events"][0]
    assert int(error["occurred_at"].timestamp() * 1000) == RECORD_TIME_MS
    state = orjson.loads(foreign["debug_state_snapshots"][0]["agent_state"])
    assert state["api_key"] == state["nested"]["Authorization"] == "[REDACTED]"
    assert state["prompt"] == "Résumé ✓ 日本語 🚀"
    letter = foreign["sink_dead_letters"][0]
    assert orjson.loads(letter["headers"])["trace-id"].startswith("segment-")


async def test_schema_registry_framing_and_a_byte_order_mark_are_read_as_plain_json(
    db_dsn: str, other_db: str, kafka: Any, kafka_bootstrap: str
) -> None:
    """A producer using Confluent Schema Registry's JSON serializer sends a zero byte and a
    4-byte schema id before the JSON; some encoders write a UTF-8 byte order mark first.
    Sent framed by librdkafka, the events become the rows the same JSON sent plain by
    aiokafka becomes -- not dead letters (what they were before)."""
    other = kafka_names(kafka_bootstrap)
    await s.create_topics(kafka, partitions=1)
    await s.create_topics(other, partitions=1)
    plain = [m for m in _segment(0) if m[1] is not None and m[1].endswith(b"}")]
    frames = [b"\x00" + (7).to_bytes(4, "big"), b"\xef\xbb\xbf", b"\x00\x00\x01\x00\x00"]
    framed = [
        (kind, frames[i % len(frames)] + value, key, headers)
        for i, (kind, value, key, headers) in enumerate(plain)
        if value is not None
    ]
    await asyncio.to_thread(
        _confluent_produce, kafka.bootstrap_servers, kafka.topic_prefix, [("none", framed)]
    )
    await _aiokafka_produce(kafka_bootstrap, other.topic_prefix, [("none", plain)])

    await asyncio.gather(
        s.run_sink(s.sink_settings(db_dsn, kafka)), s.run_sink(s.sink_settings(other_db, other))
    )
    foreign = await _contents(db_dsn, kafka.topic_prefix)
    native = await _contents(other_db, other.topic_prefix)
    assert foreign["sink_dead_letters"] == []
    # 9 sent: a snapshot's twin (an alias), a step's two states (one row), an error twice
    assert sum(len(foreign[t]) for t in s.EVENT_TABLES) == 6
    for table in (*s.EVENT_TABLES, "sink_snapshot_aliases"):
        assert foreign[table] == native[table], table


def test_every_librdkafka_compression_codec_is_decodable() -> None:
    """Producers built on librdkafka commonly compress with snappy, lz4 or zstd; the sink's
    Kafka client must be able to decompress each (else their partition never advances)."""
    assert list(CODECS) == DECODABLE
