"""Producing what well-behaved clients never send, and accounting for every record afterwards.

Producing: :func:`produce` sends :class:`Record` s -- any key, value, headers, timestamp,
partition and compression codec -- and returns where each landed. aiokafka's producer sends
everything it can express; a record with a header key that is not UTF-8 (Kafka header keys
are bytes on the wire, aiokafka and librdkafka only write text) goes in a record batch built
here and sent with a raw ``ProduceRequest`` (:func:`produce_raw`), and so does a record with
neither key nor value.

Accounting: :func:`read_outcome` reads what the sink made of a run -- rows, snapshot aliases,
parked events, ``sink_dead_letters`` rows, the dead-letter topic's messages, stored offsets --
and :func:`where` says where one sent record ended.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.produce import ProduceRequest

# The pure-Python batch builder: it encodes header keys with ``key.encode()``, so a str
# subclass can hand it any bytes (see _RawHeaderKey) and it computes the CRC over them.
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

from debug_sink.sink import offsets as sink_offsets
from debug_sink.sink import records as sink_records
from debug_sink.sink.deadletters import DLQ_HEADERS
from debug_sink.wire.events import TABLES, EventKind
from tests import support as s

#: aiokafka's compression_type names -> the record batch attribute codec ids.
CODECS: dict[str | None, int] = {None: 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
#: Large enough for every record a test sends (the broker, Tansu, takes them).
MAX_REQUEST_BYTES = 8 << 20


@dataclass(frozen=True)
class Record:
    """One record to produce. ``headers`` keys are text, or bytes when they must be sent
    exactly (not UTF-8); ``timestamp_ms`` None means the producer's clock."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str | bytes, bytes | None], ...] = ()
    timestamp_ms: int | None = None
    partition: int = 0
    codec: str | None = None

    @property
    def raw(self) -> bool:
        """Needs a hand-built batch: a header key aiokafka cannot write, or neither key nor
        value (aiokafka's producer refuses that; the protocol does not)."""
        return any(isinstance(k, bytes) for k, _ in self.headers) or (
            self.key is None and self.value is None
        )

    def event_id(self) -> uuid.UUID | None:
        """The ``id`` the value claims, if it is a JSON object with a UUID there."""
        try:
            obj = orjson.loads(self.value or b"")
            return (
                uuid.UUID(obj["id"]) if type(obj) is dict and type(obj.get("id")) is str else None
            )
        except (orjson.JSONDecodeError, ValueError):
            return None


@dataclass(frozen=True)
class Sent:
    """Where a record landed. Its timestamp is ``record.timestamp_ms`` (None: the producer's
    clock while :func:`produce` ran)."""

    record: Record
    partition: int
    offset: int

    @property
    def origin(self) -> tuple[str, int, int]:
        return (self.record.topic, self.partition, self.offset)


class _RawHeaderKey(str):
    """A header key whose encoding is exactly ``raw`` (the builder calls ``encode``)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> _RawHeaderKey:
        key = super().__new__(cls, raw.decode("latin-1"))
        key.raw = raw
        return key

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


async def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    """Create one topic (e.g. one that matches the sink's pattern but is none of its six)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


def build_batch(records: Sequence[Record], codec: str | None = None) -> bytes:
    """A v2 record batch of ``records`` (base offset 0, CRC32C over the encoded records),
    header keys given as bytes written as they are."""
    builder = _DefaultRecordBatchBuilderPy(
        magic=2,
        compression_type=CODECS[codec],
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=MAX_REQUEST_BYTES,
    )
    for index, r in enumerate(records):
        headers = [(_RawHeaderKey(k) if isinstance(k, bytes) else k, v) for k, v in r.headers]
        assert builder.append(index, r.timestamp_ms, r.key, r.value, headers) is not None
    return bytes(builder.build())


async def produce_raw(bootstrap: str, records: Sequence[Record]) -> list[Sent]:
    """Send ``records`` (one topic, one partition, one codec) as one hand-built record batch
    in a ``ProduceRequest`` to the partition's leader; where each landed."""
    (topic,) = {r.topic for r in records}
    (partition,) = {r.partition for r in records}
    (codec,) = {r.codec for r in records}
    batch = build_batch(records, codec)
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        await client.add_topic(topic)
        leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
        request = ProduceRequest(
            transactional_id=None,
            required_acks=-1,
            timeout=30_000,
            topics=[(topic, [(partition, batch)])],
        )
        response = await client.send(leader, request)
    finally:
        await client.close()
    ((_, partitions),) = response.topics
    ((got_partition, error_code, base_offset, *_),) = partitions
    assert (got_partition, error_code) == (partition, 0), partitions
    return [Sent(r, partition, base_offset + i) for i, r in enumerate(records)]


async def produce(bootstrap: str, records: Sequence[Record]) -> list[Sent]:
    """Produce every record (aiokafka, one producer per codec; hand-built batches for the
    raw ones, consecutive raw records of one topic, partition and codec in one batch);
    return where each landed, in the order given."""
    landed: dict[int, Sent] = {}
    by_codec: dict[str | None, list[int]] = collections.defaultdict(list)
    raw_runs: list[list[int]] = []
    for index, r in enumerate(records):
        if not r.raw:
            by_codec[r.codec].append(index)
            continue
        previous = records[raw_runs[-1][-1]] if raw_runs else None
        if (
            previous is not None
            and raw_runs[-1][-1] == index - 1
            and (previous.topic, previous.partition, previous.codec)
            == (r.topic, r.partition, r.codec)
        ):
            raw_runs[-1].append(index)
        else:
            raw_runs.append([index])

    async def with_producer(codec: str | None, indexes: list[int]) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            compression_type=codec,
            max_request_size=MAX_REQUEST_BYTES,
            linger_ms=5,
            enable_idempotence=False,
        )
        await producer.start()
        try:
            futures = []
            for i in indexes:
                r = records[i]
                headers = [(str(k), v) for k, v in r.headers]
                futures.append(
                    await producer.send(
                        r.topic,
                        r.value,
                        key=r.key,
                        partition=r.partition,
                        headers=headers or None,
                        timestamp_ms=r.timestamp_ms,
                    )
                )
            for i, meta in zip(indexes, await asyncio.gather(*futures), strict=True):
                landed[i] = Sent(records[i], meta.partition, meta.offset)
        finally:
            await producer.stop()

    await asyncio.gather(*(with_producer(c, ix) for c, ix in by_codec.items()))
    for run in raw_runs:
        for i, sent in zip(
            run, await produce_raw(bootstrap, [records[i] for i in run]), strict=True
        ):
            landed[i] = sent
    return [landed[i] for i in range(len(records))]


class MisplacedByBroker(AssertionError):
    """The broker does not hold a record where its produce response said it put it (seen
    once in CI with the embedded Tansu, before any sink ran): the broker's fault, not the
    sink's."""


async def check_landed(bootstrap: str, sent: Sequence[Sent]) -> None:
    """Read every partition written to and check that each record is where its produce
    response said (value and key): an accounting failure is then the sink's, not a wrong
    offset. Header keys that are not UTF-8 are read the way the sink reads them (its lenient
    record reader, which it installs in this process anyway)."""
    sink_records.install()
    held = await s.read_partitions(bootstrap, {m.record.topic for m in sent})
    at = {(tp.topic, tp.partition, r.offset): r for tp, rs in held.items() for r in rs}
    wrong = [
        (m.origin, m.record.value[:40] if m.record.value else m.record.value)
        for m in sent
        if m.origin not in at
        or (at[m.origin].value, at[m.origin].key) != (m.record.value, m.record.key)
    ]
    if wrong:
        raise MisplacedByBroker(f"not where the broker said it put them: {wrong}")


# -- what the sink made of it -----------------------------------------------------------


@dataclass
class Outcome:
    """Everything a sink run left behind, indexed for :func:`where`."""

    rows: dict[str, set[uuid.UUID]]  # table -> ids
    aliases: set[uuid.UUID]
    parked: dict[uuid.UUID, tuple[str, int, int]]  # event id -> origin
    dead_letters: dict[tuple[str, int, int], dict[str, Any]]  # origin -> row
    dead_letter_count: int
    dlq: dict[tuple[str, int, int], list[Any]]  # origin -> messages on the topic
    dlq_without_origin: list[Any]
    offsets: dict[tuple[str, int], int]
    topic_of_kind: dict[str, EventKind] = field(default_factory=dict)


async def read_outcome(dsn: str, kafka: Any, group_id: str | None = None) -> Outcome:
    conn = await asyncpg.connect(dsn)
    try:
        rows = {
            table: {r[0] for r in await conn.fetch(f"SELECT id FROM {table}")}
            for table in TABLES.values()
        }
        aliases = {r[0] for r in await conn.fetch("SELECT alias_id FROM sink_snapshot_aliases")}
        parked = {
            r["event_id"]: (r["topic"], r["partition"], r["offset"])
            for r in await conn.fetch(
                'SELECT event_id, topic, partition, "offset" FROM sink_parked_events'
            )
        }
        letters = [dict(r) for r in await conn.fetch("SELECT * FROM sink_dead_letters")]
        offsets = await sink_offsets.of_group(conn, group_id or kafka.group_id)
    finally:
        await conn.close()
    dlq: dict[tuple[str, int, int], list[Any]] = collections.defaultdict(list)
    orphans = []
    for message in await s.read_topic(kafka.bootstrap_servers, kafka.dead_letter_topic):
        headers = dict(message.headers)
        try:
            origin = (
                headers[DLQ_HEADERS[0]].decode(),
                int(headers[DLQ_HEADERS[1]]),
                int(headers[DLQ_HEADERS[2]]),
            )
        except (KeyError, ValueError):
            orphans.append(message)
            continue
        dlq[origin].append(message)
    return Outcome(
        rows=rows,
        aliases=aliases,
        parked=parked,
        dead_letters={(d["topic"], d["partition"], d["offset"]): d for d in letters},
        dead_letter_count=len(letters),
        dlq=dict(dlq),
        dlq_without_origin=orphans,
        offsets=offsets,
    )


def where(outcome: Outcome, sent: Sent, kind: EventKind | None) -> list[str]:
    """Every place ``sent`` ended: ``row``, ``alias``, ``parked``, ``dead_letter`` (exactly
    one is the promise). ``kind``: the event kind of the record's topic (None: unknown)."""
    places = []
    if sent.origin in outcome.dead_letters:
        places.append("dead_letter")
    event_id = sent.record.event_id()
    if event_id is not None:
        if kind is not None and event_id in outcome.rows[TABLES[kind]]:
            places.append("row")
        if event_id in outcome.aliases:
            places.append("alias")
        if outcome.parked.get(event_id) == sent.origin:
            places.append("parked")
    return places


def end_offsets(sent: Iterable[Sent]) -> dict[tuple[str, int], int]:
    """The next offset after the last record sent, per partition."""
    ends: dict[tuple[str, int], int] = {}
    for m in sent:
        key = (m.record.topic, m.partition)
        ends[key] = max(ends.get(key, 0), m.offset + 1)
    return ends
