"""The read side: :class:`DebugQueries`, a workflow's debug data out of PostgreSQL.

Owns the queries behind the SDK's read methods and ``debug-sink show / patterns / errors``.
The SQL lives in ``sql/debug_queries.sql`` (queries named by ``-- name:`` lines, loaded
once by :mod:`debug_sink.db.sqlfiles`). Rows come back as plain ``dict`` values (``numeric`` as
``float``, ``jsonb`` as Python objects, ``uuid``/``timestamptz`` as ``UUID``/``datetime``);
the timeline as
:class:`~debug_sink.read.timeline.TimelineEntry` values in the order
:func:`~debug_sink.read.timeline.order_timeline` defines; state diffs as
:class:`~debug_sink.read.diff.StateDiff`.

Driver errors are translated here: connection failures to
:class:`~debug_sink.errors.DatabaseUnavailable` (or :class:`~debug_sink.errors.ConfigurationError`
for bad credentials), a missing table or function (schema not migrated) to
:class:`~debug_sink.errors.ConfigurationError`, anything else to
:class:`~debug_sink.errors.PermanentError`. Read-only: nothing here writes.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

import asyncpg
import orjson

from debug_sink.db import sqlfiles
from debug_sink.db.pg import create_pool, translating
from debug_sink.lifecycle import Lifecycle
from debug_sink.read.diff import StateDiff, diff_json
from debug_sink.read.timeline import TimelineEntry, last_good_snapshots, order_timeline
from debug_sink.read.workflows import (
    RUNNING_WITHIN_S,
    WORKFLOW_STATUSES,
    WorkflowPage,
    first_positions,
    uuid_range,
)
from debug_sink.settings import Settings

__all__ = ["DebugQueries", "ErrorDiff", "init_connection", "init_read_only", "load_queries"]


def load_queries() -> Mapping[str, str]:
    """Query name -> SQL text, from ``sql/debug_queries.sql``."""
    return sqlfiles.load("debug_queries.sql")


def _uuid(value: UUID | str, what: str = "correlation id") -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise ValueError(f"not a valid {what}: {value!r} (expected a UUID)") from None


#: jsonb columns of the queries' results: text when the pool has no jsonb codec.
_JSON_COLUMNS: Final = frozenset(
    {"data", "metadata", "payload", "agent_state", "success_factors", "input_data", "output_data"}
)


def _plain(key: str, value: Any) -> Any:
    if isinstance(value, UUID):
        # asyncpg's own UUID subclass: give callers (and orjson) the standard type.
        return value if type(value) is UUID else UUID(bytes=value.bytes)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_plain(key, item) for item in value]
    if isinstance(value, str) and key in _JSON_COLUMNS:
        return orjson.loads(value)
    return value


def _at_least(value: Any, minimum: int, what: str) -> int:
    """``value`` when it is a whole number of at least ``minimum``, else ValueError: a
    ``None`` limit would read every row, a negative one reach PostgreSQL as an SQL error."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{what} must be a whole number of at least {minimum}, got {value!r}")
    return value


def _row(record: asyncpg.Record | Mapping[str, Any]) -> dict[str, Any]:
    return {key: _plain(key, value) for key, value in record.items()}


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


#: Every transaction of the session read-only: defence in depth under the reader role (a
#: DSN of the owner given by mistake still cannot write). A pool runs it again after each
#: release's reset (``create_pool(session=...)``).
READ_ONLY_SESSION: Final = ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",)


async def init_read_only(conn: asyncpg.Connection) -> None:
    """:func:`init_connection`, and :data:`READ_ONLY_SESSION`."""
    await init_connection(conn)
    for statement in READ_ONLY_SESSION:
        await conn.execute(statement)


def _read_json(text: str) -> Any:
    """jsonb text as Python values. jsonb keeps numbers exactly, beyond 64 bits or a
    double's range too (``1e400`` is printed as 401 digits), where ``orjson.loads`` fails:
    then the standard library reads it, such a number as the nearest float (``inf``
    beyond), so that every reader can show and re-serialise it."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text, parse_int=_read_int)


def _read_int(text: str) -> int | float:
    value = int(text)
    return value if -(2**63) <= value < 2**64 else float(text)


_PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_INFINITY_US: Final = 2**63 - 1


def _read_timestamptz(value: tuple[int]) -> datetime:
    """A ``timestamptz`` as an aware datetime; ``±infinity`` (rows stored before the wire
    format refused the years 0001 and 9999) as the first or last aware datetime, where the
    driver's own codec gives naive ones that cannot be compared with the others."""
    (micros,) = value
    if micros >= _INFINITY_US:
        return datetime.max.replace(tzinfo=UTC)
    if micros <= -_INFINITY_US - 1:
        return datetime.min.replace(tzinfo=UTC)
    try:
        return _PG_EPOCH + timedelta(microseconds=micros)
    except OverflowError:  # before year 1 or after 9999: PostgreSQL's range is wider
        return datetime.max.replace(tzinfo=UTC) if micros > 0 else datetime.min.replace(tzinfo=UTC)


def _write_timestamptz(value: datetime) -> tuple[int]:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _PG_EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds,)


async def init_connection(conn: asyncpg.Connection) -> None:
    """The codecs the queries' rows rely on: ``json``/``jsonb`` as Python values (numbers
    beyond what orjson reads included: :func:`_read_json`), ``timestamptz`` always aware
    (``±infinity`` too: :func:`_read_timestamptz`)."""
    for kind in ("jsonb", "json"):
        await conn.set_type_codec(
            kind,
            schema="pg_catalog",
            format="text",
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=_read_json,
        )
    await conn.set_type_codec(
        "timestamptz",
        schema="pg_catalog",
        format="tuple",
        encoder=_write_timestamptz,
        decoder=_read_timestamptz,
    )


class ErrorDiff:
    """The state at one error against the last good snapshot before it."""

    __slots__ = ("before_snapshot_id", "diff", "error_id", "error_snapshot_id", "skipped")

    def __init__(
        self,
        error_id: UUID,
        before_snapshot_id: UUID | None,
        error_snapshot_id: UUID | None,
        diff: StateDiff | None,
        *,
        skipped: bool = False,
    ) -> None:
        self.error_id = error_id
        self.before_snapshot_id = before_snapshot_id
        self.error_snapshot_id = error_snapshot_id
        #: ``None`` when one side is missing (no good snapshot before the error, or no
        #: state), or when the diff was :attr:`skipped`.
        self.diff = diff
        #: Not computed: its states were beyond the reader's byte budget
        #: (``DebugQueries.error_diffs(max_state_bytes=...)``).
        self.skipped = skipped

    def as_dict(self) -> dict[str, Any]:
        return {
            "error_id": str(self.error_id),
            "before_snapshot_id": str(self.before_snapshot_id) if self.before_snapshot_id else None,
            "error_snapshot_id": str(self.error_snapshot_id) if self.error_snapshot_id else None,
            "diff": self.diff.as_dict() if self.diff is not None else None,
            "skipped": self.skipped,
        }


class DebugQueries(Lifecycle):
    """Queries on one schema through an asyncpg pool.

    ``DebugQueries(pool, schema=...)`` uses a pool you own (``search_path`` is set per
    acquired connection when ``schema`` is given; nothing else about its connections is
    changed); :meth:`connect` / :meth:`from_settings` make one it owns and closes in
    :meth:`close`. Also an async context manager.
    """

    def __init__(
        self, pool: asyncpg.Pool, *, schema: str | None = None, owns_pool: bool = False
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._owns_pool = owns_pool
        self._sql = load_queries()

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        schema: str = "public",
        ssl: ssl.SSLContext | str | None = None,
        min_size: int = 1,
        max_size: int = 4,
        read_only: bool = False,
        application_name: str = "debug-sink-queries",
        command_timeout: float = 60,
    ) -> DebugQueries:
        """A :class:`DebugQueries` with its own pool on ``dsn``, objects looked up in
        ``schema``. ``read_only``: every transaction of the pool is read-only (the web view's
        pool), whatever the role may do."""
        pool = await create_pool(
            dsn,
            schema=schema,
            application_name=application_name,
            ssl=ssl,
            min_size=min_size,
            max_size=max_size,
            init=init_connection,
            session=READ_ONLY_SESSION if read_only else (),
            command_timeout=command_timeout,
        )
        return cls(pool, owns_pool=True)

    @classmethod
    async def from_settings(cls, settings: Settings) -> DebugQueries:
        """:meth:`connect` with ``postgres_dsn``, ``db_schema`` and the TLS settings."""
        return await cls.connect(
            settings.require_dsn(), schema=settings.db_schema, ssl=settings.postgres_ssl()
        )

    async def close(self) -> None:
        """Close the pool if this object made it. Idempotent."""
        if self._owns_pool:
            self._owns_pool = False
            await self._pool.close()

    # -- plumbing -------------------------------------------------------------------------

    async def _fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        for arg in args:
            if isinstance(arg, str) and "\x00" in arg:
                # PostgreSQL text cannot hold it: no stored value can match.
                raise ValueError(f"{arg!r}: a NUL character matches no stored text")
        with translating(None, doing=f"query {name}"):
            async with self._pool.acquire() as conn:
                if self._schema is not None:
                    await conn.execute("SELECT set_config('search_path', $1, false)", self._schema)
                return list(await conn.fetch(self._sql[name], *args))

    # -- workflow -------------------------------------------------------------------------

    async def get_workflow_debug_summary(self, correlation_id: UUID | str) -> dict[str, Any]:
        """``get_workflow_debug_summary()``: counts of steps, failed steps, errors,
        unrecovered errors, successes, recoveries, snapshots, LLM calls, transformations;
        agents; sessions; time span. Zeros for an unknown workflow."""
        rows = await self._fetch("workflow_summary", _uuid(correlation_id))
        return _row(rows[0])

    async def get_workflow_context(self, correlation_id: UUID | str) -> dict[str, Any] | None:
        """The ``debug_workflow_context`` row of the workflow, or ``None``."""
        rows = await self._fetch("workflow_context", _uuid(correlation_id))
        return _row(rows[0]) if rows else None

    async def workflow_exists(self, correlation_id: UUID | str) -> bool:
        """Whether any event of the workflow is stored (of any kind)."""
        summary = await self.get_workflow_debug_summary(correlation_id)
        return any(
            summary.get(key)
            for key in (
                "step_count",
                "error_count",
                "success_count",
                "snapshot_count",
                "llm_call_count",
                "transformation_count",
            )
        )

    # -- finding workflows ----------------------------------------------------------------

    async def workflows(
        self,
        since: datetime,
        *,
        before: tuple[datetime, UUID] | None = None,
        agent_name: str | None = None,
        status: str | None = None,
        error_type: str | None = None,
        limit: int = 25,
        running_within_s: float = RUNNING_WITHIN_S,
    ) -> list[dict[str, Any]]:
        """Workflows with any event since ``since``, latest activity first: correlation_id,
        status (:data:`WORKFLOW_STATUSES`), agents, step/error/unrecovered/success/recovery/
        LLM-call counts, first and last event time, duration_ms. ``before``: the
        ``(last_event_at, correlation_id)`` of the previous page's last row (keyset
        pagination). Filters: an agent among the workflow's agents, a status, an error type
        that occurred in it.

        Reads every event of the window and, with a filter, summarises every workflow in it
        until ``limit`` pass (seconds at hundreds of thousands of workflows): a bounded page
        is :meth:`workflow_page`'s, which ``debug-sink workflows`` and the web view use."""
        if status is not None and status not in WORKFLOW_STATUSES:
            raise ValueError(f"unknown status {status!r}: one of {', '.join(WORKFLOW_STATUSES)}")
        before_at, before_id = before if before is not None else (None, None)
        rows = await self._fetch(
            "workflows",
            since,
            before_at,
            before_id,
            agent_name,
            status,
            error_type,
            _at_least(limit, 1, "limit"),
            running_within_s,
        )
        return [_row(r) for r in rows]

    async def workflow_ids_with_prefix(self, prefix: str) -> list[UUID]:
        """Correlation ids of stored workflows that start with ``prefix`` (hex digits; hyphens
        ignored), at most 5, in order. ``ValueError`` when ``prefix`` is not hex."""
        low, high = uuid_range(prefix)
        rows = await self._fetch("workflow_ids_in_range", low, high)
        return [_plain("correlation_id", r["correlation_id"]) for r in rows]

    # -- errors ---------------------------------------------------------------------------

    async def get_errors(
        self,
        correlation_id: UUID | str | None = None,
        *,
        since: datetime | None = None,
        error_type: str | None = None,
        agent_name: str | None = None,
        error_severity: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Errors, newest first, filtered by any of the arguments; each with ``recovered``."""
        corr = _uuid(correlation_id) if correlation_id is not None else None
        rows = await self._fetch(
            "errors",
            corr,
            since,
            error_type,
            agent_name,
            error_severity,
            _at_least(limit, 1, "limit"),
        )
        return [_row(r) for r in rows]

    async def get_error_groups(self, since: datetime, *, limit: int = 50) -> list[dict[str, Any]]:
        """Errors since ``since`` grouped by ``error_type``, most frequent first."""
        rows = await self._fetch("error_groups", since, _at_least(limit, 1, "limit"))
        return [_row(r) for r in rows]

    async def get_llm_calls(self, correlation_id: UUID | str) -> list[dict[str, Any]]:
        """The workflow's rows of ``debug_llm_call_summary`` (quality_score as a float), with
        the hook's agent_name, execution_step, latency_ms and payload."""
        rows = [_row(r) for r in await self._fetch("llm_calls", _uuid(correlation_id))]
        for row in rows:
            row["quality_score"] = _float(row["quality_score"])
        return rows

    # -- recovery -------------------------------------------------------------------------

    async def get_recovery_patterns(self, min_success_count: int = 3) -> list[dict[str, Any]]:
        """``debug_error_recovery_patterns`` rows with ``success_count >= min_success_count``,
        most successful first: error_type, recovery_strategy, success_count,
        avg_recovery_duration_ms, avg_confidence, workflow_count, last_correlated_at."""
        minimum = _at_least(min_success_count, 0, "min_success_count")
        return [_row(r) for r in await self._fetch("recovery_patterns", minimum)]

    async def known_fixes(
        self,
        error_type: str,
        agent_name: str | None = None,
        operation_name: str | None = None,
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        """What fixed ``error_type`` before (the ``known_fixes()`` function of migration
        008), optionally narrowed to an agent and an operation."""
        rows = await self._fetch(
            "known_fixes", error_type, agent_name, operation_name, _at_least(limit, 1, "limit")
        )
        return [_row(r) for r in rows]

    async def correlator_agreement(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """How the correlator's blind inference compares with the links agents stated, for
        errors that occurred since ``since`` (``None``: all retained): counts ``agreed``,
        ``wrong``, ``missed``, in total (first row, ``agent_name`` ``None``, also when there
        is nothing to compare) then per agent of the error."""
        return [_row(r) for r in await self._fetch("correlator_agreement", since)]

    async def function_exists(self, name: str) -> bool:
        """Whether a function called ``name`` is visible in the schema."""
        rows = await self._fetch("function_exists", name)
        return bool(rows[0][0])

    # -- the web view ---------------------------------------------------------------------

    async def workflow_page(
        self,
        *,
        since: datetime | None = None,
        before: tuple[datetime, UUID] | None = None,
        agent_name: str | None = None,
        status: str | None = None,
        error_type: str | None = None,
        limit: int = 25,
        scan_events: int = 4000,
        running_within_s: float = RUNNING_WITHIN_S,
    ) -> WorkflowPage:
        """Workflows with activity since ``since`` (``None``: any time) and before
        ``before`` (a page's ``next_before``, or a moment and the highest id to start there),
        latest activity first, with the filters of :meth:`workflows`; at most ``limit``.

        Read from the activity stream in slices (see :mod:`debug_sink.read.workflows`), so
        a page costs about the events of its workflows at any table size; with filters, at
        most ``scan_events`` events are read and the page says how far back it looked. The
        rows have the columns of :meth:`workflows` plus ``transformation_count`` and
        ``error_types``.
        """
        if status is not None and status not in WORKFLOW_STATUSES:
            raise ValueError(f"unknown status {status!r}: one of {', '.join(WORKFLOW_STATUSES)}")
        _at_least(limit, 1, "limit")
        _at_least(scan_events, 1, "scan_events")
        position = before
        seen: set[UUID] = set()
        rows: list[dict[str, Any]] = []
        read = 0
        slice_size = max(100, (limit + 1) * 12)
        while True:
            want = min(slice_size, scan_events - read)
            if position is None:
                events = await self._fetch("activity_latest", since, want)
            else:
                events = await self._fetch("activity_before", since, position[0], position[1], want)
            read += len(events)
            stream = [(_plain("correlation_id", e["correlation_id"]), e["at"]) for e in events]
            ids, positions = first_positions(stream, seen)
            # Checked in stream order, a few more than the page still needs at a time
            # (doubling): an unfiltered page looks at about its own workflows, not at every
            # workflow of the slice.
            start, chunk = 0, limit + 1 - len(rows)
            while start < len(ids) and len(rows) <= limit:
                found = await self._fetch(
                    "workflow_page_rows",
                    ids[start : start + chunk],
                    positions[start : start + chunk],
                    agent_name,
                    status,
                    error_type,
                    limit + 1 - len(rows),
                    running_within_s,
                )
                rows += [_row(r) for r in found]
                start += chunk
                chunk *= 2
            if len(rows) > limit:
                last = rows[limit - 1]
                return WorkflowPage(
                    [_page_row(r) for r in rows[:limit]],
                    (last["last_event_at"], last["correlation_id"]),
                    None,
                    read,
                )
            if len(events) < want:  # the stream ended: nothing older is active
                return WorkflowPage([_page_row(r) for r in rows], None, None, read)
            position = stream[-1][1], stream[-1][0]
            if read >= scan_events:
                return WorkflowPage([_page_row(r) for r in rows], position, position[0], read)
            slice_size *= 2

    async def workflow_row(
        self, correlation_id: UUID | str, *, running_within_s: float = RUNNING_WITHIN_S
    ) -> dict[str, Any] | None:
        """One workflow as a row of :meth:`workflow_page` (its status by the same rule);
        ``None`` when nothing of it is stored."""
        rows = await self._fetch(
            "workflow_page_rows",
            [_uuid(correlation_id)],
            [_END_OF_TIME],
            None,
            None,
            None,
            1,
            running_within_s,
        )
        return _page_row(_row(rows[0])) if rows else None

    async def workflow_links(self, correlation_id: UUID | str) -> list[dict[str, Any]]:
        """The workflow's recovery links: error, success, strategy, path, duration,
        intermediate steps, confidence, ``link_source`` (stated or inferred), and the
        success's type, operation, agent and time; in the successes' time order."""
        rows = await self._fetch("workflow_links", _uuid(correlation_id))
        return [_row(r) for r in rows]

    async def error_links(
        self, error_ids: Sequence[UUID | str], *, per_error: int = 20
    ) -> dict[UUID, list[dict[str, Any]]]:
        """The recovery links of these errors (the columns of :meth:`workflow_links`), at
        most ``per_error`` each in their successes' time order; errors without one are
        absent. Costs the errors asked about, not the workflow's."""
        ids = [_uuid(i, "error id") for i in error_ids]
        rows = await self._fetch("error_links", ids, _at_least(per_error, 1, "per_error"))
        found: dict[UUID, list[dict[str, Any]]] = {}
        for r in rows:
            row = _row(r)
            found.setdefault(row["error_event_id"], []).append(row)
        return found

    async def raw_event(self, event_id: UUID | str) -> dict[str, Any] | None:
        """Any stored event by its id: ``{"kind", "correlation_id", "data"}`` with every
        column of its row (a deduplicated snapshot's id gives the kept snapshot); ``None``
        when no table has it."""
        rows = await self._fetch("raw_event", _uuid(event_id, "event id"))
        return _row(rows[0]) if rows else None

    async def error_type_names(self, limit: int = 200) -> list[dict[str, Any]]:
        """Error types the correlator has counted, most frequent first: ``occurred``,
        ``recovered``, ``last_occurred_at``."""
        return [
            _row(r) for r in await self._fetch("error_type_names", _at_least(limit, 1, "limit"))
        ]

    async def known_fixes_overview(
        self, types: int = 25, per_type: int = 3
    ) -> list[dict[str, Any]]:
        """The ``types`` most frequent error types, each with its ``per_type`` best
        strategies (the columns of :meth:`known_fixes`, ``None`` for a type nothing
        recovered yet) beside ``error_type``, ``occurred``, ``last_occurred_at``."""
        rows = await self._fetch(
            "known_fixes_overview", _at_least(types, 1, "types"), _at_least(per_type, 1, "per_type")
        )
        return [_row(r) for r in rows]

    async def agent_names(self, limit: int = 200) -> list[str]:
        """Names of the agents that ran steps, in order, at most ``limit``."""
        rows = await self._fetch("agent_names", _at_least(limit, 1, "limit"))
        return [str(r["agent_name"]) for r in rows]

    async def correlator_state(self) -> dict[str, Any] | None:
        """The correlator's last run: ``runs``, ``links_total``, ``last_run_at``,
        ``last_run_ms``; ``None`` on a schema without it."""
        rows = await self._fetch("correlator_state")
        return _row(rows[0]) if rows else None

    # -- timeline and states --------------------------------------------------------------

    async def timeline(self, correlation_id: UUID | str) -> list[TimelineEntry]:
        """Every step, snapshot, transformation, LLM call, error and success of the workflow
        in one list, in the causal-then-time order of :mod:`debug_sink.read.timeline`.

        Each entry's ``data`` is its row (JSON types: timestamps as ISO strings) without the
        bulky columns; an error's ``data["recoveries"]`` lists the successes that recovered
        it (``debug_error_success_correlation``) with their strategy.

        All of them, however many the workflow has: a fleet's workflow may hold hundreds of
        thousands of events; :meth:`timeline_head` reads a bounded part.
        """
        return order_timeline(await self._timeline_entries(correlation_id, None))

    async def timeline_head(
        self, correlation_id: UUID | str, limit: int
    ) -> tuple[list[TimelineEntry], bool]:
        """The workflow's first ``limit`` events by time (ties by kind and id), as
        :meth:`timeline` orders them, and whether it has more. Costs about ``limit`` rows
        of each kind of event, however large the workflow."""
        entries = await self._timeline_entries(correlation_id, _at_least(limit, 1, "limit") + 1)
        more = len(entries) > limit
        return order_timeline(entries[:limit]), more

    async def _timeline_entries(
        self, correlation_id: UUID | str, limit: int | None
    ) -> list[TimelineEntry]:
        """The rows of the ``timeline`` query (by time, kind and id) as entries."""
        rows = await self._fetch("timeline", _uuid(correlation_id), limit)
        return [
            TimelineEntry(
                kind=r["kind"],
                id=_plain("id", r["id"]),
                at=r["at"],
                agent_name=r["agent_name"],
                step_number=r["step_number"],
                attempt=r["attempt"],
                follows=tuple(_plain("follows", r["follows"])),
                data=_plain("data", r["data"]) or {},
            )
            for r in rows
        ]

    async def get_snapshots(self, snapshot_ids: Sequence[UUID | str]) -> dict[UUID, dict[str, Any]]:
        """Requested id -> the snapshot row with its ``agent_state``. A duplicate's id (dropped
        by the sink's dedupe) gives the kept snapshot; unknown ids are absent."""
        ids = [_uuid(i, "snapshot id") for i in snapshot_ids]
        rows = await self._fetch("snapshots", ids)
        return {_plain("requested_id", r["requested_id"]): _row(r) for r in rows}

    async def diff_states(
        self, snapshot_a: UUID | str | Mapping[str, Any], snapshot_b: UUID | str | Mapping[str, Any]
    ) -> StateDiff:
        """Keys added, removed and changed, at any depth, from state ``a`` to state ``b``.

        Each side is a snapshot id or a state (a mapping). ``LookupError`` when an id is
        not stored.
        """
        wanted = [s for s in (snapshot_a, snapshot_b) if not isinstance(s, Mapping)]
        found = await self.get_snapshots(wanted) if wanted else {}

        def state(side: UUID | str | Mapping[str, Any]) -> Any:
            if isinstance(side, Mapping):
                return side
            row = found.get(_uuid(side, "snapshot id"))
            if row is None:
                raise LookupError(f"snapshot {side} is not stored")
            return row["agent_state"]

        return diff_json(state(snapshot_a), state(snapshot_b))

    async def error_diffs(
        self, ordered: Sequence[TimelineEntry], *, max_state_bytes: int | None = None
    ) -> dict[UUID, ErrorDiff]:
        """For each error of an ordered timeline: its state against the last good snapshot
        before it (:func:`~debug_sink.read.timeline.last_good_snapshots`).

        ``max_state_bytes``: read at most that many bytes of states (their canonical JSON),
        errors in timeline order; an error whose two states would go beyond it is
        :attr:`ErrorDiff.skipped` (no diff computed) and later, smaller ones still are
        diffed. ``None``: every state, however large and many (agent states reach 1 MB
        each, and a workflow may have thousands of errors).
        """
        befores = last_good_snapshots(ordered)
        afters: dict[UUID, UUID | None] = {}
        for entry in ordered:
            if entry.kind == "error":
                raw = entry.data.get("state_snapshot_id")
                afters[entry.id] = _uuid(raw, "snapshot id") if raw else None
        wanted = {i for i in (*befores.values(), *afters.values()) if i is not None}
        skipped: set[UUID] = set()
        if max_state_bytes is not None and wanted:
            sizes = await self._snapshot_sizes(wanted)
            chosen: set[UUID] = set()
            used = 0
            for error_id, before in befores.items():
                after = afters.get(error_id)
                if before is None or after is None:
                    continue
                new = {before, after} - chosen
                cost = sum(sizes.get(i, 0) for i in new)
                if used + cost > max_state_bytes:
                    skipped.add(error_id)
                    continue
                chosen |= new
                used += cost
            wanted = chosen
        states = await self.get_snapshots(sorted(wanted, key=str)) if wanted else {}
        result: dict[UUID, ErrorDiff] = {}
        for error_id, before in befores.items():
            after = afters.get(error_id)
            diff = None
            if before in states and after in states:
                diff = diff_json(states[before]["agent_state"], states[after]["agent_state"])
            result[error_id] = ErrorDiff(error_id, before, after, diff, skipped=error_id in skipped)
        return result

    async def _snapshot_sizes(self, snapshot_ids: Iterable[UUID]) -> dict[UUID, int]:
        """Snapshot id -> bytes of its state, without reading the states."""
        rows = await self._fetch("snapshot_sizes", sorted(snapshot_ids, key=str))
        return {_plain("requested_id", r["requested_id"]): int(r["state_bytes"] or 0) for r in rows}


#: A position later than any activity: :meth:`DebugQueries.workflow_row` keeps its workflow.
_END_OF_TIME: Final = datetime.max.replace(tzinfo=UTC)


def _page_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row of ``workflow_page_rows`` without the slice index it was ordered by."""
    row.pop("n", None)
    row["error_types"] = row.get("error_types") or []
    return row
