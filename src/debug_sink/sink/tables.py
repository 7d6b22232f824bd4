"""The event tables as the writer sees them: columns, COPY records, the steps' merge.

Owns everything that is generated from the column lists: :data:`COLUMNS` (what is written per
kind), :func:`record_of` (one event -> one binary-COPY record), the per-connection staging
table of the workflow steps (:func:`init_connection`) and the merge of staged steps into the
rows the database already holds (:data:`STEP_MERGE_SQL`), plus the pool the sink writes
through (:func:`create_pool`).

The writer COPYs rows whose id is new straight into their tables. Every kind is insert-once
except workflow steps, whose lifecycle events fold into one row: a step event whose row is
stored already is staged and merged with ``INSERT ... SELECT ... ON CONFLICT (id) DO UPDATE``,
the same rule as :func:`debug_sink.sink.plan.fold_step` inside a batch.

Guarantees: a record's values are in :data:`COLUMNS` order; the merge never writes a row twice
for one id; a step's ``duration_ms`` derived from its times (none sent) is clamped into
[0, 2147483647], here and in the merge alike. Not guaranteed: that the rows satisfy the
foreign keys (the writer defers them to the end of its transaction).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from debug_sink.db.pg import create_pool as _create_pool
from debug_sink.settings import Settings
from debug_sink.sink.plan import STEP_FOLDED, effective_started_at
from debug_sink.wire.canonical import canonical_json, parse_json
from debug_sink.wire.events import INT4_MAX, TABLES, EventKind

__all__ = [
    "COLUMNS",
    "LOOKUP_KINDS",
    "LOOKUP_SQL",
    "STEP_MERGE_SQL",
    "STEP_STAGE",
    "create_pool",
    "init_connection",
    "record_of",
]

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
        "recovers_error_ids",
    ),
    # The identity and lifecycle columns, then those a lifecycle event folds (plan.py).
    EventKind.STEP: (
        "id",
        "correlation_id",
        "step_number",
        "attempt",
        "status",
        "metadata",
        "started_at",
        *STEP_FOLDED,
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

#: Step columns merged on conflict like plan.fold_step folds them in a batch ("terminal wins,
#: started fills gaps"); duration_ms has its own rule below (derived from the timestamps).
_STEP_FOLDED = tuple(c for c in STEP_FOLDED if c != "duration_ms")


#: The temporary staging table of the steps to merge (one per connection, emptied at commit).
STEP_STAGE = f"stage_{TABLES[EventKind.STEP]}"


def _step_merge_sql() -> str:
    columns = COLUMNS[EventKind.STEP]
    cols = ", ".join(columns)
    # The staged rows are deleted as they are merged (in the merge's own statement: one
    # round trip, and a plan asyncpg prepares once where TRUNCATE would plan the merge on
    # every run). The dead rows go with the table's truncation at commit.
    # The plan stages one row per (id, workflow): a row of another workflow than the stored
    # row's changes nothing, so it is left out here -- merged beside the owner's, it would
    # make the statement update one row twice, which PostgreSQL refuses (a cardinality
    # violation: the batch would fail for good).
    table = TABLES[EventKind.STEP]
    head = (
        f"WITH staged AS (DELETE FROM {STEP_STAGE} RETURNING {cols}) "
        f"INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM staged "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} o "
        "WHERE o.id = staged.id AND o.correlation_id <> staged.correlation_id)"
    )
    terminal = "EXCLUDED.status <> 'started'"
    folded = {
        c: f"CASE WHEN {terminal} THEN EXCLUDED.{c} ELSE t.{c} END"
        for c in ("status", "step_number", "attempt")
    }
    folded |= {
        c: f"CASE WHEN {terminal} THEN COALESCE(EXCLUDED.{c}, t.{c}) "
        f"ELSE COALESCE(t.{c}, EXCLUDED.{c}) END"
        for c in _STEP_FOLDED
    }
    folded["started_at"] = "LEAST(t.started_at, EXCLUDED.started_at)"
    folded["metadata"] = (
        f"NULLIF(CASE WHEN {terminal} "
        "THEN COALESCE(t.metadata, '{}') || COALESCE(EXCLUDED.metadata, '{}') "
        "ELSE COALESCE(EXCLUDED.metadata, '{}') || COALESCE(t.metadata, '{}') END, '{}')"
    )
    # Clamped as _step_duration clamps it. GREATEST and LEAST skip NULLs: a step not ended
    # yet must keep a NULL duration, not become 0 ms.
    elapsed = (
        "EXTRACT(EPOCH FROM COALESCE(EXCLUDED.completed_at, t.completed_at) "
        "- LEAST(t.started_at, EXCLUDED.started_at)) * 1000"
    )
    folded["duration_ms"] = (
        f"COALESCE(CASE WHEN {terminal} THEN EXCLUDED.duration_ms END, "
        "t.duration_ms, EXCLUDED.duration_ms, "
        f"CASE WHEN {elapsed} IS NOT NULL "
        f"THEN LEAST(GREATEST({elapsed}, 0), {INT4_MAX})::integer END)"
    )
    # A fold that changes the row makes it new to the correlator again (migration 013); one
    # that changes nothing (a replayed or re-delivered event) leaves its ingest position.
    changed = (
        f"({', '.join(folded.values())}) IS DISTINCT FROM "
        f"({', '.join(f't.{column}' for column in folded)})"
    )
    sets = [f"{column} = {expr}" for column, expr in folded.items()]
    sets.append(f"ingest_xid = CASE WHEN {changed} THEN pg_current_xact_id() ELSE t.ingest_xid END")
    # An event of another workflow under the same id changes nothing (plan.fold_step).
    return (
        f"{head} ON CONFLICT (id) DO UPDATE SET {', '.join(sets)} "
        "WHERE t.correlation_id = EXCLUDED.correlation_id"
    )


#: Staged steps -> their stored rows, folded.
STEP_MERGE_SQL = _step_merge_sql()

#: The kinds in the order of LOOKUP_SQL's id parameters ($1 ... $6; $1 the snapshots').
LOOKUP_KINDS: tuple[EventKind, ...] = (
    EventKind.SNAPSHOT,
    *(kind for kind in EventKind if kind is not EventKind.SNAPSHOT),
)
_KEYS = len(LOOKUP_KINDS) + 1

#: What the database holds of a batch, in one round trip (the planner's lookups, which as
#: eight statements cost eight). Rows ``(what, id, other,
#: state_hash)``: ``what`` a kind's value -- the row ``id`` exists, among that kind's ids;
#: ``alias`` -- the snapshot id ``id`` (among $1) is a known alias of the kept snapshot
#: ``other``; ``key`` -- the stored snapshot ``id`` has the key (correlation_id ``other``,
#: ``state_hash``), among the keys $7 (correlation ids) / $8 (state hashes).
LOOKUP_SQL: str = "\nUNION ALL ".join(
    [
        *(
            f"SELECT '{kind.value}'::text AS what, id, NULL::uuid AS other, NULL::text AS "
            f"state_hash FROM {TABLES[kind]} WHERE id = ANY(${n}::uuid[])"
            for n, kind in enumerate(LOOKUP_KINDS, 1)
        ),
        "SELECT 'alias', alias_id, snapshot_id, NULL FROM sink_snapshot_aliases "
        "WHERE alias_id = ANY($1::uuid[])",
        f"SELECT 'key', s.id, s.correlation_id, s.state_hash "
        f"FROM unnest(${_KEYS}::uuid[], ${_KEYS + 1}::text[]) AS k(correlation_id, state_hash) "
        f"JOIN {TABLES[EventKind.SNAPSHOT]} s USING (correlation_id, state_hash)",
    ]
)


def _decimal(value: Any) -> Any:
    # The models hold floats (strict JSON numbers); NUMERIC columns get their exact decimal
    # text, as PostgreSQL would parse the JSON number.
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def _step_duration(event: Any, sent: Any) -> Any:
    if sent is not None:
        return sent
    # Only from a start that was sent: one derived from completed_at would store 0, and the
    # upsert keeps a stored duration when the real start arrives later.
    # Clamped into the column's range, as the merge's SQL does: a step that ended before it
    # started (clocks of two hosts) took no time, one longer than ~24.8 days is stored as the
    # longest the INTEGER holds rather than refused by PostgreSQL.
    if event.completed_at is not None and event.started_at is not None:
        elapsed = int((event.completed_at - event.started_at) / timedelta(milliseconds=1))
        return min(max(elapsed, 0), INT4_MAX)
    return None


#: Columns computed from the snapshot's state rather than read from the event.
_STATE_COLUMNS = ("agent_state", "state_size_bytes", "variables_count")
#: Per kind, the columns whose attribute value needs work: column -> f(event, value).
_FIXES: dict[EventKind, dict[str, Callable[[Any, Any], Any]]] = {
    EventKind.SNAPSHOT: {"memory_usage_mb": lambda _, v: _decimal(v)},
    EventKind.SUCCESS: {"quality_score": lambda _, v: _decimal(v)},
    EventKind.TRANSFORMATION: {"confidence_score": lambda _, v: _decimal(v)},
    EventKind.STEP: {
        "started_at": lambda e, _: effective_started_at(e),
        "duration_ms": _step_duration,
    },
}
#: Per kind, every column's attribute in column order, read in one C-level call
#: (``state_size_bytes`` and ``variables_count`` read ``agent_state``, replaced below).
_GETTERS = {
    kind: operator.attrgetter(*(c if c not in _STATE_COLUMNS else "agent_state" for c in columns))
    for kind, columns in COLUMNS.items()
}
_FIX_AT = {
    kind: tuple((COLUMNS[kind].index(c), f) for c, f in _FIXES.get(kind, {}).items())
    for kind in COLUMNS
}
_STATE_AT = tuple(COLUMNS[EventKind.SNAPSHOT].index(c) for c in _STATE_COLUMNS)


def record_of(kind: EventKind, event: Any, state_json: bytes | None = None) -> tuple[Any, ...]:
    """The COPY record of ``event``. For a snapshot, ``state_json`` is the canonical JSON of
    its agent_state when validation already computed it (see :class:`~.plan.Pending`)."""
    values: tuple[Any, ...] = _GETTERS[kind](event)
    fixes = _FIX_AT[kind]
    if not fixes and kind is not EventKind.SNAPSHOT:
        return values
    row = list(values)
    if kind is EventKind.SNAPSHOT:
        # Serialised once (by validation, or here): stored as is and measured.
        state = canonical_json(event.agent_state) if state_json is None else state_json
        at_state, at_size, at_count = _STATE_AT
        row[at_state], row[at_size], row[at_count] = state, len(state), len(event.agent_state)
    for index, fix in fixes:
        row[index] = fix(event, row[index])
    return tuple(row)


def _encode_jsonb(value: Any) -> bytes:
    # bytes are JSON serialised already (a snapshot's canonical agent_state): passed through.
    body = value if isinstance(value, bytes) else orjson.dumps(value)
    return b"\x01" + body


def _decode_jsonb(data: bytes) -> Any:
    # A parked event read back keeps its big numbers as they were parked.
    return parse_json(data[1:])


async def init_connection(conn: asyncpg.Connection[Any]) -> None:
    """Per-connection setup: binary jsonb codec and the steps' staging table."""
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", format="binary", encoder=_encode_jsonb, decoder=_decode_jsonb
    )
    # ON COMMIT DELETE ROWS: staging is empty at the start of every transaction.
    await conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {STEP_STAGE} "
        f"(LIKE {TABLES[EventKind.STEP]} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )


async def create_pool(
    settings: Settings, *, min_size: int = 1, max_size: int | None = None
) -> asyncpg.Pool:
    """A pool whose connections use the configured schema and have the staging tables."""
    return await _create_pool(
        settings.require_dsn(),
        schema=settings.db_schema,
        application_name="debug-sink",
        ssl=settings.postgres_ssl(),
        min_size=min_size,
        max_size=max_size or settings.postgres_pool_size,
        init=init_connection,
        reset=_keep_session,
        command_timeout=120,
    )


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Release without asyncpg's session reset (``RESET ALL``, ``CLOSE ALL``, ``UNLISTEN``,
    advisory unlocks: a round trip per batch). The sink's statements leave no session state
    behind -- no ``SET`` outside a transaction, no cursor, listener or session lock -- and
    what ``init_connection`` set up is meant to stay. An open transaction is still rolled
    back (asyncpg does that before calling this)."""
