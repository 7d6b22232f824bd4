"""The write path: one PostgreSQL transaction per batch.

This docstring is the correctness contract of debug-sink. For each batch, in ONE transaction:

1. validate (done before: :mod:`debug_sink.wire.validation`); rejected messages become dead letters;
2. plan (:mod:`debug_sink.sink.plan`): dedupe snapshots by (correlation_id, state_hash) against the
   batch and the database, resolve references, park children whose parents are missing;
3. stage: binary COPY of each kind's rows into a temporary staging table;
4. merge: ``INSERT ... SELECT ... ON CONFLICT (id)`` into the real tables, parents first, with
   the foreign keys deferred to the end of the transaction; workflow-step lifecycle events
   merge into one row (ON CONFLICT DO UPDATE), every other event is insert-once;
5. release parked events whose parents this batch wrote (found through the index
   ``sink_parked_waits``; repeat while any are released);
6. record dead letters (table) after producing them to the dead-letter topic;
7. store the next offset of every partition in the batch (``sink_offsets``);
8. commit. Only then are the offsets committed to Kafka too, for lag tools only.

Result: after any crash, restart, rebalance, replay or re-sent message each valid event is
exactly one row, because the rows and the offsets that say "these messages are done" commit
atomically, and every row is keyed by the producer's event id.

If PostgreSQL rejects rows with a data error (SQLSTATE classes 22, 23) the batch is bisected
inside the transaction (savepoints) until the offending events are isolated; they become
dead letters and the rest lands. Transient errors (connection loss, restart) propagate as
:class:`~debug_sink.errors.DatabaseUnavailable`: nothing was committed, the caller retries the
same batch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from debug_sink.db.pg import CONNECTION_ERRORS, Conn, is_data_error, is_transient
from debug_sink.errors import DatabaseUnavailable
from debug_sink.sink.batch import Batch, Item, Origin
from debug_sink.sink.plan import (
    PARENT_KINDS,
    STEP_MERGED,
    WRITE_ORDER,
    Lookups,
    Parked,
    Pending,
    Plan,
    effective_started_at,
    lookups_needed,
    make_plan,
)
from debug_sink.wire.canonical import canonical_json
from debug_sink.wire.events import MODELS, TABLES, EventKind
from debug_sink.wire.validation import Accepted, Rejected

#: Columns written per kind (generated columns such as hook_events.correlation_id excluded).
COLUMNS: dict[EventKind, tuple[str, ...]] = {
    EventKind.SNAPSHOT: (
        "id",
        "snapshot_type",
        "correlation_id",
        "session_id",
        "agent_name",
        "agent_state",
        "state_hash",
        "execution_step",
        "task_description",
        "user_request",
        "state_size_bytes",
        "variables_count",
        "context_depth",
        "memory_usage_mb",
        "cpu_time_ms",
        "wall_time_ms",
        "transformation_event_id",
        "parent_snapshot_id",
        "captured_at",
        "metadata",
    ),
    EventKind.ERROR: (
        "id",
        "correlation_id",
        "session_id",
        "error_type",
        "error_category",
        "error_severity",
        "error_message",
        "error_stack_trace",
        "error_code",
        "agent_name",
        "operation_name",
        "execution_step",
        "state_snapshot_id",
        "is_recoverable",
        "recovery_attempted",
        "recovery_successful",
        "recovery_strategy",
        "metadata",
        "occurred_at",
        "resolved_at",
    ),
    EventKind.SUCCESS: (
        "id",
        "correlation_id",
        "session_id",
        "success_type",
        "operation_name",
        "agent_name",
        "execution_step",
        "state_snapshot_id",
        "quality_score",
        "completion_status",
        "validation_passed",
        "execution_time_ms",
        "retry_count",
        "success_factors",
        "metadata",
        "occurred_at",
    ),
    EventKind.STEP: (
        "id",
        "correlation_id",
        "session_id",
        "step_number",
        "attempt",
        "step_type",
        "agent_name",
        "operation_name",
        "step_description",
        "pre_state_snapshot_id",
        "post_state_snapshot_id",
        "status",
        "error_event_id",
        "success_event_id",
        "duration_ms",
        "parent_step_id",
        "depends_on_steps",
        "input_data",
        "output_data",
        "metadata",
        "started_at",
        "completed_at",
    ),
    EventKind.TRANSFORMATION: (
        "id",
        "correlation_id",
        "session_id",
        "source_agent",
        "target_agent",
        "transformation_type",
        "reason",
        "confidence_score",
        "metadata",
        "created_at",
        "state_snapshot_id",
        "error_event_id",
        "success_event_id",
    ),
    EventKind.HOOK: ("id", "source", "resource_id", "payload", "metadata", "created_at"),
}

_DECIMAL_FIELDS = frozenset({"memory_usage_mb", "quality_score", "confidence_score"})
#: Step columns merged on conflict like plan.fold_step merges them in a batch ("terminal wins,
#: started fills gaps"); duration_ms has its own rule below (derived from the timestamps).
_STEP_MERGED = tuple(c for c in STEP_MERGED if c != "duration_ms")
_SNAPSHOT_PKEY = "debug_state_snapshots_pkey"

#: The tables whose rows parked events can wait for, and the id column to look them up by.
_PARENT_TABLES = (
    ("debug_state_snapshots", "id"),
    ("debug_error_events", "id"),
    ("debug_success_events", "id"),
    ("debug_workflow_steps", "id"),
    ("agent_transformation_events", "id"),
    ("sink_snapshot_aliases", "alias_id"),
)

#: Parked events waiting for any of the ids $1 (written by this transaction), through the
#: index of sink_parked_waits (migration 009). `id = ANY (ARRAY(...))` rather than `IN`: the
#: planner then looks each id up in the primary key (in id order, for ORDER BY) instead of
#: walking the whole key to merge-join with the matches -- O(matches), not O(parked).
_RELEASE_SQL = (
    'SELECT p.id, p.kind, p.event, p.topic, p.partition, p."offset" FROM sink_parked_events p '
    "WHERE p.id = ANY (ARRAY(SELECT w.parked_id FROM sink_parked_waits w "
    "WHERE w.parent_id = ANY ($1::uuid[]))) "
    "ORDER BY p.id FOR UPDATE OF p SKIP LOCKED"
)

#: Parked events worth another look: expired, or at least one awaited parent now stored
#: (written by another replica, or aliased). The rest keep waiting without being re-planned.
#: Each awaited id is looked up once, however many events wait for it, in index order
#: (locality in the parents' primary keys); the expired ones come from their index
#: (statement_timestamp(): a volatile clock_timestamp() cannot be an index condition).
_RELEASABLE_SQL = (
    "WITH present AS (SELECT a.parent_id FROM "
    "(SELECT DISTINCT parent_id FROM sink_parked_waits) AS a WHERE "
    + " OR ".join(
        f"EXISTS (SELECT 1 FROM {table} t WHERE t.{column} = a.parent_id)"
        for table, column in _PARENT_TABLES
    )
    + ') SELECT p.id, p.kind, p.event, p.topic, p.partition, p."offset", '
    "p.expires_at <= statement_timestamp() AS expired FROM sink_parked_events p "
    "WHERE p.id = ANY (ARRAY("
    "SELECT e.id FROM sink_parked_events e WHERE e.expires_at <= statement_timestamp() "
    "UNION SELECT w.parked_id FROM present JOIN sink_parked_waits w USING (parent_id))) "
    "ORDER BY p.id LIMIT $1 FOR UPDATE OF p SKIP LOCKED"
)

#: Park fresh events in one statement (the waits trigger of migration 009 then runs once
#: per batch, not once per event). waiting_for travels as comma-separated uuids: one text
#: per row, since the arrays of a batch differ in length.
_PARK_SQL = (
    "INSERT INTO sink_parked_events (kind, event_id, correlation_id, event, waiting_for, "
    'expires_at, topic, partition, "offset") '
    "SELECT u.kind, u.event_id, u.correlation_id, u.event, "
    "string_to_array(u.waiting_for, ',')::uuid[], $9, u.topic, u.partition, u.o "
    "FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::jsonb[], $5::text[], $6::text[], "
    "$7::int[], $8::bigint[]) "
    "AS u(kind, event_id, correlation_id, event, waiting_for, topic, partition, o) "
    'ON CONFLICT (topic, partition, "offset") DO NOTHING'
)

#: Parked events planned again and still missing a parent: what they wait for now.
_REPARK_SQL = (
    "UPDATE sink_parked_events p SET waiting_for = string_to_array(u.waiting_for, ',')::uuid[] "
    "FROM unnest($1::bigint[], $2::text[]) AS u(id, waiting_for) WHERE p.id = u.id"
)


def stage_table(kind: EventKind) -> str:
    return f"stage_{TABLES[kind]}"


def _merge_sql(kind: EventKind) -> str:
    table, columns = TABLES[kind], COLUMNS[kind]
    cols = ", ".join(columns)
    head = f"INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM {stage_table(kind)}"
    if kind is not EventKind.STEP:
        return f"{head} ON CONFLICT (id) DO NOTHING"
    terminal = "EXCLUDED.status <> 'started'"
    sets = [f"status = CASE WHEN {terminal} THEN EXCLUDED.status ELSE t.status END"]
    sets += [
        f"{c} = CASE WHEN {terminal} THEN COALESCE(EXCLUDED.{c}, t.{c}) "
        f"ELSE COALESCE(t.{c}, EXCLUDED.{c}) END"
        for c in _STEP_MERGED
    ]
    sets.append("started_at = LEAST(t.started_at, EXCLUDED.started_at)")
    sets.append(
        f"metadata = NULLIF(CASE WHEN {terminal} "
        "THEN COALESCE(t.metadata, '{}') || COALESCE(EXCLUDED.metadata, '{}') "
        "ELSE COALESCE(EXCLUDED.metadata, '{}') || COALESCE(t.metadata, '{}') END, '{}')"
    )
    sets.append(
        f"duration_ms = COALESCE(CASE WHEN {terminal} THEN EXCLUDED.duration_ms END, "
        "t.duration_ms, EXCLUDED.duration_ms, "
        "(EXTRACT(EPOCH FROM COALESCE(EXCLUDED.completed_at, t.completed_at) "
        "- LEAST(t.started_at, EXCLUDED.started_at)) * 1000)::integer)"
    )
    return f"{head} ON CONFLICT (id) DO UPDATE SET {', '.join(sets)}"


MERGE_SQL: dict[EventKind, str] = {kind: _merge_sql(kind) for kind in EventKind}


def _value(kind: EventKind, event: Any, column: str) -> Any:
    if kind is EventKind.STEP:
        if column == "started_at":
            return effective_started_at(event)
        if column == "duration_ms" and event.duration_ms is None:
            # Only from a start that was sent: one derived from completed_at would store 0,
            # and the merge keeps a stored duration when the real start arrives later.
            if event.completed_at is not None and event.started_at is not None:
                return int((event.completed_at - event.started_at) / timedelta(milliseconds=1))
            return None
    value = getattr(event, column)
    if column in _DECIMAL_FIELDS and value is not None and not isinstance(value, Decimal):
        return Decimal(str(value))
    return value


def record_of(kind: EventKind, event: Any, state_json: bytes | None = None) -> tuple[Any, ...]:
    """The COPY record of ``event``. For a snapshot, ``state_json`` is the canonical JSON of
    its agent_state when validation already computed it (see :class:`Pending`)."""
    if kind is EventKind.SNAPSHOT:
        # Serialised once (by validation, or here): stored as is and measured.
        state = canonical_json(event.agent_state) if state_json is None else state_json
        values = {
            "agent_state": state,
            "state_size_bytes": len(state),
            "variables_count": len(event.agent_state),
        }
        return tuple(values[c] if c in values else _value(kind, event, c) for c in COLUMNS[kind])
    return tuple(_value(kind, event, column) for column in COLUMNS[kind])


def _encode_jsonb(value: Any) -> bytes:
    # bytes are JSON serialised already (a snapshot's canonical agent_state): passed through.
    body = value if isinstance(value, bytes) else orjson.dumps(value)
    return b"\x01" + body


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def init_connection(conn: asyncpg.Connection[Any]) -> None:
    """Per-connection setup: binary jsonb codec and the staging tables."""
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", format="binary", encoder=_encode_jsonb, decoder=_decode_jsonb
    )
    for kind in EventKind:
        # ON COMMIT DELETE ROWS: staging is empty at the start of every transaction.
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage_table(kind)} "
            f"(LIKE {TABLES[kind]} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )


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


@dataclass(slots=True)
class WriteResult:
    rows: dict[str, int] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    parked: int = 0
    released: int = 0
    duplicates: int = 0
    dangling: int = 0
    hash_replaced: int = 0
    redacted: int = 0
    duration_s: float = 0.0
    #: Ids of the rows (and snapshot aliases) written so far that parked events may await
    #: (of the kinds in plan.PARENT_KINDS).
    written: set[UUID] = field(default_factory=set)

    def add_plan(self, plan: Plan) -> None:
        for kind, rows in plan.rows.items():
            self.rows[kind.value] = self.rows.get(kind.value, 0) + len(rows)
            if kind in PARENT_KINDS:
                self.written.update(event.id for event in rows)
        self.written.update(alias for alias, _ in plan.aliases)
        self.parked += sum(1 for p in plan.parked if p.pending.parked_id is None)
        self.released += len(plan.released)
        self.duplicates += plan.duplicates
        self.dangling += plan.dangling


#: Called with the dead letters of a batch before its transaction commits (produce them to
#: the dead-letter topic); raising aborts the batch, which is then retried.
DeadLetterPublisher = Callable[[Sequence[DeadLetter]], Awaitable[None]]


def dead_letter_of(item: Item, error_class: str, reason: str) -> DeadLetter:
    return DeadLetter(
        item.origin, item.key, item.value, item.headers, item.timestamp_ms, error_class, reason
    )


class BatchWriter:
    """Writes batches (and parked events) to PostgreSQL, exactly once. See the module doc."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        group_id: str,
        park_grace: float,
        publish_dead_letters: DeadLetterPublisher | None = None,
    ) -> None:
        self._pool = pool
        self._group_id = group_id
        self._park_grace = park_grace
        self._publish = publish_dead_letters

    async def write(self, batch: Batch) -> WriteResult:
        """Write one batch and store its offsets, in one transaction."""
        started = time.perf_counter()
        result = WriteResult()
        items_by_origin = {item.origin: item for item in batch.items}
        pending: list[Pending] = []
        for item in batch.items:
            if isinstance(item.result, Rejected):
                result.dead_letters.append(
                    dead_letter_of(item, item.result.error_class, item.result.reason)
                )
            else:
                accepted: Accepted = item.result
                result.hash_replaced += accepted.hash_replaced
                result.redacted += accepted.redacted
                pending.append(
                    Pending(
                        accepted.kind, accepted.event, item.origin, state_json=accepted.state_json
                    )
                )
        with _database_failures("batch not written"):
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SET CONSTRAINTS ALL DEFERRED")
                rejected = await self._write_bisecting(conn, pending, result)
                for bad, exc in rejected:
                    reason = f"rejected by PostgreSQL ({exc.sqlstate}): {exc}".replace("\n", " ")
                    origin_item = items_by_origin.get(bad.origin)
                    if origin_item is not None:
                        result.dead_letters.append(dead_letter_of(origin_item, "database", reason))
                await self._release_loop(conn, set(result.written), result)
                await self._store_dead_letters(conn, result.dead_letters)
                await self._store_offsets(conn, batch.next_offsets)
        result.duration_s = time.perf_counter() - started
        return result

    async def release_parked(self, *, limit: int = 5000) -> WriteResult:
        """Write parked events whose parents have arrived (e.g. through another replica) and
        those past their grace period (references NULL, originals kept in metadata)."""
        started = time.perf_counter()
        result = WriteResult()
        with _database_failures("parked events not released"):
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SET CONSTRAINTS ALL DEFERRED")
                rows = await conn.fetch(_RELEASABLE_SQL, limit)
                if not rows:
                    return result
                fresh = [_pending_of(r) for r in rows if not r["expired"]]
                expired = [_pending_of(r) for r in rows if r["expired"]]
                if fresh:
                    await self._write_bisecting(conn, fresh, result, parked_rejects=True)
                if expired:
                    await self._write_bisecting(
                        conn, expired, result, expire=True, parked_rejects=True
                    )
                await self._release_loop(conn, set(result.written), result)
                await self._store_dead_letters(conn, result.dead_letters)
        result.duration_s = time.perf_counter() - started
        return result

    # -- internals ----------------------------------------------------------------------

    async def _write_bisecting(
        self,
        conn: Conn,
        pending: list[Pending],
        result: WriteResult,
        *,
        expire: bool = False,
        parked_rejects: bool = False,
    ) -> list[tuple[Pending, asyncpg.PostgresError]]:
        """Write ``pending``; on a data error split it until the offenders are isolated."""
        if not pending:
            return []
        try:
            async with conn.transaction():  # a savepoint
                plan = await self._plan(conn, pending, expire=expire)
                await self._apply(conn, plan)
                # Check the deferred foreign keys now, inside this savepoint, so a violation
                # is attributed to these events; later statements defer them again.
                await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
                await conn.execute("SET CONSTRAINTS ALL DEFERRED")
            result.add_plan(plan)
            return []
        except asyncpg.PostgresError as exc:
            if not is_data_error(exc) or _is_dedupe_race(exc):
                raise
            if len(pending) == 1:
                if parked_rejects and pending[0].parked_id is not None:
                    await self._dead_letter_parked(conn, pending[0], exc, result)
                return [(pending[0], exc)]
            middle = len(pending) // 2
            first = await self._write_bisecting(
                conn, pending[:middle], result, expire=expire, parked_rejects=parked_rejects
            )
            second = await self._write_bisecting(
                conn, pending[middle:], result, expire=expire, parked_rejects=parked_rejects
            )
            return first + second

    async def _plan(self, conn: Conn, pending: list[Pending], *, expire: bool) -> Plan:
        needed = lookups_needed(pending)
        existing: dict[EventKind, set[UUID]] = {}
        for kind, ids in needed.ids.items():
            if ids:
                rows = await conn.fetch(
                    f"SELECT id FROM {TABLES[kind]} WHERE id = ANY($1::uuid[])", list(ids)
                )
                existing[kind] = {r["id"] for r in rows}
            else:
                existing[kind] = set()
        aliases: dict[UUID, UUID] = {}
        snapshot_ids = needed.ids[EventKind.SNAPSHOT]
        if snapshot_ids:
            rows = await conn.fetch(
                "SELECT alias_id, snapshot_id FROM sink_snapshot_aliases "
                "WHERE alias_id = ANY($1::uuid[])",
                list(snapshot_ids),
            )
            aliases = {r["alias_id"]: r["snapshot_id"] for r in rows}
            # An alias target exists by construction (FK), so references to it resolve.
            existing[EventKind.SNAPSHOT] |= set(aliases.values())
        keys: dict[tuple[UUID, str], UUID] = {}
        if needed.snapshot_keys:
            correlation_ids, hashes = zip(*needed.snapshot_keys, strict=True)
            rows = await conn.fetch(
                "SELECT s.correlation_id, s.state_hash, s.id "
                "FROM unnest($1::uuid[], $2::text[]) AS k(correlation_id, state_hash) "
                "JOIN debug_state_snapshots s USING (correlation_id, state_hash)",
                list(correlation_ids),
                list(hashes),
            )
            keys = {(r["correlation_id"], r["state_hash"]): r["id"] for r in rows}
        return make_plan(pending, Lookups(existing, aliases, keys), expire=expire)

    async def _apply(self, conn: Conn, plan: Plan) -> None:
        for kind in WRITE_ORDER:
            events = plan.rows.get(kind)
            if not events:
                continue
            stage = stage_table(kind)
            await conn.execute(f"TRUNCATE {stage}")
            try:
                states = plan.state_json
                await conn.copy_records_to_table(
                    stage,
                    records=[record_of(kind, e, states.get(e.id)) for e in events],
                    columns=list(COLUMNS[kind]),
                )
            except (OverflowError, ValueError) as exc:
                # The driver could not encode a value (e.g. a timestamp whose UTC value is
                # past year 9999); it aborted the COPY. A data error of the rows: bisect.
                raise asyncpg.DataError(
                    f"a value of {TABLES[kind]} cannot be encoded: {exc}"
                ) from exc
            await conn.execute(MERGE_SQL[kind])
        if plan.aliases:
            await conn.execute(
                "INSERT INTO sink_snapshot_aliases (alias_id, snapshot_id) "
                "SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT (alias_id) DO NOTHING",
                [a for a, _ in plan.aliases],
                [k for _, k in plan.aliases],
            )
        await self._park(conn, plan.parked)
        if plan.released:
            await conn.execute(
                "DELETE FROM sink_parked_events WHERE id = ANY($1::bigint[])", plan.released
            )

    async def _park(self, conn: Conn, parked: Iterable[Parked]) -> None:
        fresh: list[Parked] = []
        again: list[Parked] = []
        for p in parked:
            (fresh if p.pending.parked_id is None else again).append(p)
        if fresh:
            expires_at = datetime.now(UTC) + timedelta(seconds=self._park_grace)
            await conn.execute(
                _PARK_SQL,
                [p.pending.kind.value for p in fresh],
                [p.pending.event.id for p in fresh],
                [p.pending.event.correlation_id for p in fresh],
                [p.pending.event.model_dump(mode="json", exclude_none=True) for p in fresh],
                [_uuid_list(p.waiting_for) for p in fresh],
                [p.pending.origin.topic for p in fresh],
                [p.pending.origin.partition for p in fresh],
                [p.pending.origin.offset for p in fresh],
                expires_at,
            )
        if again:
            await conn.execute(
                _REPARK_SQL,
                [p.pending.parked_id for p in again],
                [_uuid_list(p.waiting_for) for p in again],
            )

    async def _release_loop(self, conn: Conn, written: set[UUID], result: WriteResult) -> None:
        """Write parked events waiting for ids written in this transaction, transitively."""
        for _ in range(16):
            if not written:
                return
            rows = await conn.fetch(_RELEASE_SQL, list(written))
            if not rows:
                return
            pending = [_pending_of(r) for r in rows]
            before = set(result.written)
            await self._write_bisecting(conn, pending, result, parked_rejects=True)
            # Only what was written: ids of events parked again release nothing (a duplicate
            # of a parked snapshot re-planned alone would be stored in its place).
            written = result.written - before

    async def _dead_letter_parked(
        self, conn: Conn, pending: Pending, exc: asyncpg.PostgresError, result: WriteResult
    ) -> None:
        """A parked event PostgreSQL rejects: delete its parked row; it becomes a dead letter,
        stored and published with the others of this transaction (topic and table). Its raw
        message is gone (the offset was committed when it was parked), so the letter holds
        the validated event as JSON, keyed by its correlation_id like the wire format."""
        event = pending.event
        reason = f"rejected by PostgreSQL ({exc.sqlstate}): {exc}".replace("\n", " ")
        result.dead_letters.append(
            DeadLetter(
                pending.origin,
                str(event.correlation_id).encode(),
                orjson.dumps(event.model_dump(mode="json")),
                (),
                None,
                "database",
                reason,
            )
        )
        await conn.execute("DELETE FROM sink_parked_events WHERE id = $1", pending.parked_id)

    async def _store_dead_letters(self, conn: Conn, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        if self._publish is not None:
            await self._publish(letters)
        await conn.executemany(
            'INSERT INTO sink_dead_letters (topic, partition, "offset", key, value, headers, '
            "error_class, reason, group_id, record_time) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
            'ON CONFLICT (topic, partition, "offset") DO NOTHING',
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
                    self._group_id,
                    datetime.fromtimestamp(d.timestamp_ms / 1000, UTC) if d.timestamp_ms else None,
                )
                for d in letters
            ],
        )

    async def _store_offsets(self, conn: Conn, next_offsets: dict[tuple[str, int], int]) -> None:
        if not next_offsets:
            return
        await conn.executemany(
            "INSERT INTO sink_offsets (group_id, topic, partition, next_offset) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (group_id, topic, partition) DO UPDATE "
            "SET next_offset = GREATEST(sink_offsets.next_offset, EXCLUDED.next_offset), "
            "updated_at = clock_timestamp()",
            [
                (self._group_id, topic, partition, offset)
                for (topic, partition), offset in next_offsets.items()
            ],
        )


async def stored_offsets(
    conn: Conn, group_id: str, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The next offset to read for each partition that has one stored."""
    wanted = list(partitions)
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT o.topic, o.partition, o.next_offset FROM sink_offsets o "
        "JOIN unnest($2::text[], $3::int[]) AS w(topic, partition) USING (topic, partition) "
        "WHERE o.group_id = $1",
        group_id,
        [t for t, _ in wanted],
        [p for _, p in wanted],
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


def _uuid_list(ids: Iterable[UUID]) -> str:
    """``a,b`` for ``string_to_array(..., ',')::uuid[]``."""
    return ",".join(str(i) for i in ids)


def _pending_of(row: asyncpg.Record) -> Pending:
    kind = EventKind(row["kind"])
    event = MODELS[kind].model_validate(row["event"])
    return Pending(kind, event, Origin(row["topic"], row["partition"], row["offset"]), row["id"])


@contextlib.contextmanager
def _database_failures(what: str) -> Iterator[None]:
    """Transient failures (and a lost dedupe race) become DatabaseUnavailable: nothing was
    committed, the caller retries. Anything else propagates as it is."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        if is_transient(exc) or _is_dedupe_race(exc):
            raise DatabaseUnavailable(f"{what}: {exc}".replace("\n", " ")) from exc
        raise
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"{what}: {exc}") from exc


def _is_dedupe_race(exc: BaseException) -> bool:
    """A concurrent writer stored the same (correlation_id, state_hash) between our lookup and
    our insert: retrying the batch finds it and aliases instead."""
    return (
        isinstance(exc, asyncpg.UniqueViolationError)
        and getattr(exc, "table_name", None) == "debug_state_snapshots"
        and getattr(exc, "constraint_name", None) != _SNAPSHOT_PKEY
    )
