"""Dead letters: every message that does not become a row, with the precise reason.

Owns the :class:`DeadLetter` type, its two channels -- the dead-letter *topic* (a copy of the
message with Kafka Connect-style error headers, :class:`DeadLetterTopic`) and the
``sink_dead_letters`` *table* (:func:`store`) -- and the operator's listing
(:func:`list_dead_letters`). Every statement on the table is in ``sql/deadletters.sql``.

Guarantees: the writer publishes a batch's dead letters to the topic before its transaction
stores them in the table and commits the offsets; a failure to publish aborts the batch, which
is retried, so neither channel misses a letter (a retried batch may publish a letter twice;
the table keeps one per origin). Not guaranteed: exactly one copy on the topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka.errors import KafkaError

from debug_sink.db import sqlfiles
from debug_sink.db.pg import Conn, connection
from debug_sink.errors import BrokerUnavailable
from debug_sink.sink.batch import Item, Origin

#: Kafka Connect-style headers on dead-letter messages.
DLQ_HEADERS = (
    "__connect.errors.topic",
    "__connect.errors.partition",
    "__connect.errors.offset",
    "__connect.errors.exception.class.name",
    "__connect.errors.exception.message",
)
_MAX_REASON_HEADER = 2000


def _sql(name: str) -> str:
    return sqlfiles.load("deadletters.sql")[name]


@dataclass(slots=True)
class DeadLetter:
    """One message that will not become a row, with the precise reason."""

    origin: Origin
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int | None
    error_class: str
    reason: str

    @classmethod
    def of_item(cls, item: Item, error_class: str, reason: str) -> DeadLetter:
        """The letter of a consumed message, with the message as it was received."""
        return cls(
            item.origin, item.key, item.value, item.headers, item.timestamp_ms, error_class, reason
        )

    @classmethod
    def of_parked(cls, origin: Origin, event: Any, error_class: str, reason: str) -> DeadLetter:
        """The letter of a parked event. Its raw message is gone (the offset was committed
        when it was parked), so the letter holds the validated event as JSON, keyed by its
        correlation_id like the wire format."""
        return cls(
            origin,
            str(event.correlation_id).encode(),
            orjson.dumps(event.model_dump(mode="json")),
            (),
            None,
            error_class,
            reason,
        )


#: Called with the dead letters of a batch before its transaction commits (produce them to
#: the dead-letter topic); raising aborts the batch, which is then retried.
DeadLetterPublisher = Callable[[Sequence[DeadLetter]], Awaitable[None]]


class DeadLetterTopic:
    """Produces dead letters to ``topic`` through ``producer`` (an aiokafka producer)."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self.topic = topic

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Produce every letter and wait for the broker's acknowledgements."""
        try:
            futures = [
                await self._producer.send(
                    self.topic, d.value, key=d.key, headers=[*d.headers, *_error_headers(d)]
                )
                for d in letters
            ]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise BrokerUnavailable(f"cannot produce dead letters to {self.topic}: {exc}") from exc


def _error_headers(d: DeadLetter) -> list[tuple[str, bytes]]:
    return [
        (DLQ_HEADERS[0], d.origin.topic.encode()),
        (DLQ_HEADERS[1], str(d.origin.partition).encode()),
        (DLQ_HEADERS[2], str(d.origin.offset).encode()),
        (DLQ_HEADERS[3], d.error_class.encode()),
        (DLQ_HEADERS[4], d.reason[:_MAX_REASON_HEADER].encode()),
    ]


async def store(conn: Conn, letters: Sequence[DeadLetter], *, group_id: str) -> None:
    """Insert ``letters`` into the table (inside the batch's transaction)."""
    if letters:
        await conn.executemany(
            _sql("store"),
            [
                (
                    d.origin.topic,
                    d.origin.partition,
                    d.origin.offset,
                    d.key,
                    d.value,
                    {k: v.decode("utf-8", "replace") for k, v in d.headers} or None,
                    d.error_class,
                    d.reason,
                    group_id,
                    datetime.fromtimestamp(d.timestamp_ms / 1000, UTC) if d.timestamp_ms else None,
                )
                for d in letters
            ],
        )


# -- listing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """One row of ``debug-sink dead-letters list``."""

    id: int
    received_at: datetime
    topic: str
    partition: int
    offset: int
    error_class: str
    reason: str
    value_preview: str
    value_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "error_class": self.error_class,
            "reason": self.reason,
            "value_preview": self.value_preview,
            "value_bytes": self.value_bytes,
        }


async def list_dead_letters(
    dsn: str,
    *,
    schema: str = "public",
    since: timedelta | None = None,
    topic: str | None = None,
    error_class: str | None = None,
    limit: int = 50,
    ssl: Any = None,
) -> list[DeadLetterRow]:
    """Newest first."""
    async with connection(dsn, schema=schema, ssl=ssl, application_name="debug-sink-cli") as conn:
        rows = await conn.fetch(
            _sql("newest"),
            datetime.now(UTC) - since if since else None,
            topic,
            error_class,
            limit,
        )
    return [
        DeadLetterRow(
            r["id"],
            r["received_at"],
            r["topic"],
            r["partition"],
            r["offset"],
            r["error_class"],
            r["reason"],
            (r["preview"] or b"").decode("utf-8", "replace"),
            r["size"] or 0,
        )
        for r in rows
    ]
