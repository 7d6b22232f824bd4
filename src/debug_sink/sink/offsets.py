"""Consumed offsets: stored in PostgreSQL with each batch, read back when partitions are
assigned, mirrored to Kafka for lag tools.

Owns every statement on ``sink_offsets`` (``sql/offsets.sql``) and the mirror of stored offsets
to the consumer group in Kafka. PostgreSQL is the source of truth: the sink seeks to what is
stored here and never reads Kafka's committed offsets back, so a batch whose transaction
committed is never read again by its group, and one that did not is always read again.

Guarantees: :func:`store` only moves an offset forward. Not guaranteed: that the Kafka mirror
is current (it is best effort, committed after the transaction, skipped during a rebalance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

import structlog
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from debug_sink.db import sqlfiles
from debug_sink.db.pg import Conn

log = structlog.get_logger("debug_sink.sink")

#: (topic, partition)
PartitionKey: TypeAlias = tuple[str, int]


def _sql(name: str) -> str:
    return sqlfiles.load("offsets.sql")[name]


async def store(conn: Conn, group_id: str, next_offsets: Mapping[PartitionKey, int]) -> None:
    """Store the next offset to read of each partition (inside the batch's transaction)."""
    if next_offsets:
        await conn.executemany(
            _sql("store"),
            [
                (group_id, topic, partition, offset)
                for (topic, partition), offset in next_offsets.items()
            ],
        )


async def stored(
    conn: Conn, group_id: str, partitions: Iterable[PartitionKey]
) -> dict[PartitionKey, int]:
    """The next offset to read for each of ``partitions`` that has one stored."""
    wanted = list(partitions)
    if not wanted:
        return {}
    rows = await conn.fetch(
        _sql("stored"), group_id, [t for t, _ in wanted], [p for _, p in wanted]
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def of_group(conn: Conn, group_id: str) -> dict[PartitionKey, int]:
    """Every stored offset of ``group_id``."""
    rows = await conn.fetch(_sql("of_group"), group_id)
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def seed(conn: Conn, group_id: str, starts: Mapping[PartitionKey, int]) -> None:
    """Set ``group_id``'s offsets to ``starts``, replacing stored ones (replay)."""
    await conn.executemany(
        _sql("seed"), [(group_id, topic, partition, o) for (topic, partition), o in starts.items()]
    )


async def forget_all(conn: Conn) -> None:
    """Delete every stored offset (dev mode: the embedded broker's log starts empty)."""
    await conn.execute(_sql("forget_all"))


async def mirror_to_kafka(
    consumer: Any, next_offsets: Mapping[PartitionKey, int], owned: Callable[[TopicPartition], bool]
) -> None:
    """Commit the stored offsets of the partitions still ``owned`` to Kafka, for lag tools
    only (never read back). A failure is logged and ignored: the next batch commits again."""
    offsets = {
        tp: OffsetAndMetadata(offset, "")
        for (topic, partition), offset in next_offsets.items()
        if owned(tp := TopicPartition(topic, partition))
    }
    if not offsets:
        return
    try:
        await consumer.commit(offsets)
    except (KafkaError, KafkaConnectionError, AssertionError) as exc:
        log.info("kafka_commit_skipped", error=str(exc))
