"""The rival a platform engineer would write first: ``python -m debug_sink.bench.typical``.

Owns the consumers the sink is compared with, run as processes of their own (like the sink,
so the bench measures them the same way: the same log lines, the same CPU sampling):

- **typical** (rival (c)): aiokafka consumer group -> per polled batch (``getmany``, at most
  ``DEBUG_SINK_BATCH_MAX_EVENTS`` records), each message validated with the wire models
  (``model_validate_json``; invalid ones skipped), the state hash computed, then one
  transaction with one ``executemany`` ``INSERT ... ON CONFLICT DO NOTHING`` per table
  (parents first; a step's later lifecycle event updates its row), then the Kafka commit:
  at-least-once.
- **per-row** (``--per-row``, rival (d)): the same, but one autocommit ``INSERT`` per event
  (one fsync'd commit each).

Configured by the sink's own ``DEBUG_SINK_*`` variables (DSN, broker, group, topic prefix and
pattern, batch size) and ``BENCH_EXPECTED``: it exits once it has consumed that many
messages. Logs JSON lines on stderr (structlog) (``partitions_assigned``, ``batch_committed`` with
``events`` and ``duration_ms``) as the sink does.

What it does not do -- and what flatters it: no redaction, no dead letters (an invalid message
is skipped), no snapshot dedupe by state (a second snapshot with the same state is skipped by
the unique index, not aliased), no offsets stored with the rows (a crash between the database
commit and the Kafka commit writes the batch again: ON CONFLICT makes that harmless for
inserts), no ordering of parents before children across batches -- so it writes into a copy of
the database without foreign keys (the bench drops them), which a real deployment could not.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import time
from collections.abc import Sequence
from typing import Any, Final

import asyncpg
import orjson
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from pydantic import ValidationError

from debug_sink.bench.internals import COLUMNS, MODELS, TABLES, EventKind
from debug_sink.logs import configure_logging
from debug_sink.settings import Settings

log = structlog.get_logger("debug_sink.bench.typical")

__all__ = ["main", "row_of", "upsert_sql"]

#: Parents' tables first (the foreign keys are gone, but this is how one would write it).
_ORDER: Final = (
    EventKind.TRANSFORMATION,
    EventKind.SNAPSHOT,
    EventKind.ERROR,
    EventKind.SUCCESS,
    EventKind.STEP,
    EventKind.HOOK,
)
#: A group join not done within this many seconds is tried again, at most so many times.
_JOIN_TIMEOUT_S: Final = 30.0
_JOIN_ATTEMPTS: Final = 4
#: The per-row consumer logs a ``batch_committed`` line every this many rows.
_PER_ROW_LINE: Final = 100
#: The columns a step's later lifecycle event fills in.
_STEP_LATER: Final = (
    "completed_at",
    "duration_ms",
    "error_event_id",
    "success_event_id",
    "post_state_snapshot_id",
)


def upsert_sql(kind: EventKind) -> str:
    """One event's statement: insert once (any unique conflict: skip), except that a step's
    later lifecycle event updates its row."""
    cols = COLUMNS[kind]
    head = (
        f"INSERT INTO {TABLES[kind]} AS t ({', '.join(cols)}) VALUES "
        f"({', '.join(f'${i}' for i in range(1, len(cols) + 1))}) ON CONFLICT "
    )
    if kind is EventKind.STEP:
        sets = ", ".join(f"{c} = COALESCE(EXCLUDED.{c}, t.{c})" for c in _STEP_LATER)
        return head + f"(id) DO UPDATE SET status = EXCLUDED.status, {sets}"
    return head + "DO NOTHING"


def row_of(kind: EventKind, event: Any) -> tuple[Any, ...]:
    """The parameters of ``event``'s INSERT: its attributes in column order, the state's
    hash, size and key count computed for a snapshot."""
    extra: dict[str, Any] = {}
    if kind is EventKind.SNAPSHOT:
        state = orjson.dumps(event.agent_state, option=orjson.OPT_SORT_KEYS)
        extra = {
            "state_hash": hashlib.sha256(state).hexdigest(),
            "state_size_bytes": len(state),
            "variables_count": len(event.agent_state),
        }
    return tuple(extra[c] if c in extra else getattr(event, c) for c in COLUMNS[kind])


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.assigned = asyncio.Event()
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        for tp in assigned:
            if await self._consumer.committed(tp) is None:
                # From offset 0, not where ListOffsets(earliest) says: Tansu at times says
                # too much (past a log's first records), and this consumer then never
                # reached the backlog's count (drains "stalled"). The sink does the same.
                self._consumer.seek(tp, 0)
        self.assigned.set()
        log.info("partitions_assigned", partitions=len(assigned))


async def _joined(settings: Settings) -> AIOKafkaConsumer:
    """A started consumer that has joined the group and holds its partitions. A join that
    has not completed within :data:`_JOIN_TIMEOUT_S` is given up and tried again with a new
    member (Tansu, now and then, never answers one)."""
    for attempt in range(1, _JOIN_ATTEMPTS + 1):
        consumer = AIOKafkaConsumer(
            **settings.kafka_client_options(),
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # As the sink's consumer: a pattern subscription sees new topics within seconds.
            metadata_max_age_ms=5000,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(100, settings.kafka_session_timeout_ms // 10),
        )
        await consumer.start()
        listener = _Assigned(consumer)
        consumer.subscribe(pattern=settings.topic_pattern, listener=listener)
        try:
            await asyncio.wait_for(listener.assigned.wait(), _JOIN_TIMEOUT_S)
            return consumer
        except TimeoutError:
            log.warning("group_join_retry", attempt=attempt, waited_s=_JOIN_TIMEOUT_S)
            await consumer.stop()
    raise SystemExit(f"no partition assigned after {_JOIN_ATTEMPTS} joins")


async def _run(per_row: bool) -> None:
    settings = Settings()
    expected = int(os.environ["BENCH_EXPECTED"])
    kinds = settings.topics
    models = {topic: MODELS[kind] for topic, kind in kinds.items()}
    sql = {kind: upsert_sql(kind) for kind in EventKind}
    conn: asyncpg.Connection[Any] = await asyncpg.connect(settings.require_dsn())
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
    )
    consumer = await _joined(settings)
    consumed = skipped = 0
    try:
        while consumed < expected:
            polled = await consumer.getmany(timeout_ms=1000, max_records=settings.batch_max_events)
            if not polled:
                continue
            started = time.perf_counter()
            rows: dict[EventKind, list[tuple[Any, ...]]] = {kind: [] for kind in _ORDER}
            events = 0
            for tp, records in polled.items():
                model, kind = models[tp.topic], kinds[tp.topic]
                for record in records:
                    events += 1
                    try:
                        event = model.model_validate_json(record.value or b"")
                    except ValidationError:
                        skipped += 1
                        continue
                    rows[kind].append(row_of(kind, event))
            if per_row:
                # Progress lines every _PER_ROW_LINE rows: a poll can hold the whole backlog.
                done = 0
                for kind in _ORDER:
                    for row in rows[kind]:
                        await conn.execute(sql[kind], *row)
                        done += 1
                        if done % _PER_ROW_LINE == 0:
                            consumed += _PER_ROW_LINE
                            log.info("batch_committed", events=_PER_ROW_LINE, duration_ms=0.0)
                events -= done - done % _PER_ROW_LINE
            else:
                async with conn.transaction():
                    for kind in _ORDER:
                        if rows[kind]:
                            await conn.executemany(sql[kind], rows[kind])
            await consumer.commit()
            consumed += events
            log.info(
                "batch_committed",
                events=events,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                skipped=skipped,
            )
    finally:
        await consumer.stop()
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m debug_sink.bench.typical")
    parser.add_argument("--per-row", action="store_true", help="one autocommit INSERT per event")
    args = parser.parse_args(argv)
    configure_logging("info", "json")
    asyncio.run(_run(args.per_row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
