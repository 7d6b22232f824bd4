"""The correlator: links each error to the success that recovered it.

Owns ``debug_error_success_correlation`` (the only writer), the recovery fields it sets on
``debug_error_events``, the known-fixes aggregate (``known_fix_occurrences``,
``known_fix_stats``) and the watermark ``correlator_state``. The matching is one SQL statement
per chunk of workflows (``sql/correlator.sql``, query ``link``); this module runs it.

Rules (per workflow, i.e. per ``correlation_id``; an error is linked to at most one success,
a success may recover several errors):

1. Candidates: a success of the same ``correlation_id`` that occurred after the error.
2. The first later success of the error's own agent and operation (the operation worked
   again) ends the search: successes after it are later work, not candidates. A success
   that is that "first success of the same operation" for another error is explained
   already and is not a candidate for an error of a different agent or operation. Several
   errors of one operation before one success (retries) all have it as a candidate.
3. Each remaining candidate gets a confidence from the evidence (clamped to [0, 1]):

   ==========================================================  ======
   base: same workflow, success after the error                 +0.25
   same agent                                                   +0.15
   same operation                                               +0.15
   same execution_step (the step completed after all)           +0.15
   success_type = recovery_success                              +0.15
   retry_count > 0                                              +0.10
   error.recovery_attempted                                     +0.05
   error.recovery_strategy = retry: same agent and operation    +0.15
                             retry: anything else               -0.10
                 any other named strategy (fallback, escalate,
                 delegate, ...): another agent or operation     +0.15
                                 same agent and operation       -0.10
                             skip                               -0.30
                             abort                              -0.50
   error.recovery_successful = false (the agent says it failed) -0.40
   more than 1 hour between error and success                   -0.10
   ==========================================================  ======

4. The error is linked to its best candidate (highest confidence, then earliest) when that
   confidence is at least :data:`MIN_CONFIDENCE` (0.6). So the same agent redoing the same
   operation needs one more sign that it was a recovery (the same step, a retry count, a
   ``recovery_success``, the error's attempt or declared retry); another operation or agent
   needs a ``recovery_success`` or a declared non-retry strategy on top; an error whose agent
   skipped or aborted, or said the recovery failed, stays unlinked unless the evidence is
   overwhelming. An error without a qualifying candidate stays unlinked: unrecovered.
5. Late evidence moves a link: when a run re-examines a workflow and the best candidate of an
   already linked error is now another success (e.g. its true recovery arrived late), the
   link is moved (the old row deleted, the new one inserted, the aggregate adjusted).

Justification: agents retry an operation in place (same agent and operation, ``retry_count``
counting up) or fall back to another operation or agent, which then reports a
``recovery_success``. Unrelated work of the same workflow goes on meanwhile (other agents,
other operations): it must not count as a recovery, hence the weights on agent and operation
and the "explained already" rule. The error's own fields are the agent's statement of what it
tried; they confirm or contradict a candidate (``is_recoverable`` is a classification of the
error, not evidence about a success, and is not used). Measured on :mod:`debug_sink.dev.synthetic`
workflows (default config, seed 7: 300 workflows, 1,242 errors, 964 true recoveries, 10% of
events one to three waves late): precision 0.909, recall 0.890; the floors are asserted in
``tests/integration/test_correlator.py``.

Each link gets: ``recovery_strategy`` = the error's ``recovery_strategy``, else the success's
``success_factors`` ``recovery_strategy`` / ``strategy``, else ``retry`` (same agent and
operation) or ``fallback`` (anything else); ``recovery_duration_ms`` = success time - error
time; ``intermediate_steps`` = the workflow's step rows that started between the error and
the success (the recovering step included), or, for a workflow without step rows, the
difference of the two ``execution_step`` values minus one; ``recovery_path`` = a readable
line such as ``TimeoutError in planner.fetch -> retry -> recovery_success in planner.fetch
(1 retry, 2 intermediate steps, 1500 ms)``; ``confidence_score`` as above.

A linked error gets ``recovery_successful = true`` and, when the agent did not set it,
``resolved_at`` = the recovering success's ``occurred_at`` (moved along with a moved link). An
agent-provided ``resolved_at`` is kept. An error that loses its only candidate is not unlinked.

Incremental: each run reads only the errors and successes committed since the previous run.
The watermark is the snapshot of the previous run (``correlator_state.seen``): a row is new
when the transaction that inserted it (``ingest_xid``, migration 008) is not visible in that
snapshot, which is exact under concurrent writers (a sequence would be drawn in insert order
but commit in another). The run then examines every error and success of the workflows that
received new events, so late arrivals are handled: an error that lands after its recovering
success, or a success that lands long after its time, brings its workflow back. Cost: the new
events plus the events of their workflows, never the table.

Atomic and idempotent: one REPEATABLE READ transaction per run reads one snapshot, writes the
links (``ON CONFLICT DO NOTHING`` on the unique (error, success) pair), the error fields, the
aggregate and the new watermark, and commits. A replica dying mid-run leaves nothing; the next
run redoes the work. Single runner across replicas: a session advisory lock per schema taken
with ``pg_try_advisory_lock`` (a replica that does not get it skips the run). A second lock
(:data:`STATS_LOCK`) serialises the correlator with the retention purge, which decrements the
aggregate when it deletes errors and links.

Known fixes: ``known_fix_occurrences`` counts each error once, in the run that first sees it
(``correlator_state.counted`` is the snapshot whose errors are counted), ``known_fix_stats``
each link per (error_type, agent, operation, strategy), both in the run's transaction; the
retention purge subtracts what it deletes, :meth:`Correlator.rebuild_known_fixes` recomputes
them from the rows. The SQL function ``known_fixes()`` reads only these (migration 008).
The aggregate behind ``debug_error_recovery_patterns`` (migration 010) is not this module's:
triggers on the links keep it, whoever writes them.

Not guaranteed: an error in a workflow with thousands of unlinked errors and successes costs
their product on every run that touches the workflow; the first run on an existing database
reads everything in one transaction.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Final
from uuid import UUID

import asyncpg
import structlog

from debug_sink.db import sqlfiles
from debug_sink.db.pg import close_quietly, connect, translating
from debug_sink.errors import PermanentError, TransientError
from debug_sink.jobs.locks import CORRELATOR_LOCK, STATS_LOCK, lock, try_lock, unlock
from debug_sink.jobs.periodic import Job
from debug_sink.settings import Settings

__all__ = [
    "CONFIDENT",
    "MIN_CONFIDENCE",
    "Correlator",
    "CorrelatorResult",
    "correlator_job",
]

log = structlog.get_logger("debug_sink.jobs.correlator")

#: Links below this confidence are not made.
MIN_CONFIDENCE: Final = 0.6
#: The design document's threshold for a confident recovery (debug_error_recovery_patterns).
CONFIDENT: Final = 0.7


def _queries() -> Any:
    return sqlfiles.load("correlator.sql")


@dataclass(frozen=True, slots=True)
class CorrelatorResult:
    """What one run did. ``ran`` is False when another replica held the lock."""

    ran: bool
    new_errors: int = 0
    new_successes: int = 0
    workflows: int = 0
    errors_examined: int = 0
    successes_examined: int = 0
    links_made: int = 0
    links_moved: int = 0
    errors_marked_recovered: int = 0
    rows_touched: int = 0
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Correlator:
    """Runs the correlation; :meth:`run_once` is one atomic, incremental run.

    Opens its own connection per run (the sink's pool connections carry staging tables and
    are busy with batches). Safe to call from several processes at once.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        ssl: Any = None,
        chunk_workflows: int = 500,
        min_confidence: float = MIN_CONFIDENCE,
        lock_timeout_s: float = 60.0,
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._ssl = ssl
        self._chunk = chunk_workflows
        self._min_confidence = min_confidence
        self._lock_timeout_ms = int(lock_timeout_s * 1000)

    @classmethod
    def from_settings(cls, settings: Settings) -> Correlator:
        return cls(settings.require_dsn(), schema=settings.db_schema, ssl=settings.postgres_ssl())

    async def run_once(self) -> CorrelatorResult:
        """One run; ``ran=False`` when another replica is running. Transient failures raise
        :class:`~debug_sink.errors.TransientError` with nothing written."""
        conn = await self._connect()
        try:
            with translating(self._dsn):
                return await self._locked_run(conn)
        finally:
            await close_quietly(conn)

    async def rebuild_known_fixes(self) -> None:
        """Recompute the known-fixes aggregate from the rows: every error present counts as
        an occurrence (later runs count only newer ones), every link as a recovery. A repair
        tool, and a way to fill the aggregate of a database whose links were not made by the
        correlator (benchmarks); it does not correlate anything."""
        conn = await self._connect()
        try:
            with translating(self._dsn):
                await conn.execute(f"SET lock_timeout = {self._lock_timeout_ms}")
                await lock(conn, self._schema, STATS_LOCK)
                q = _queries()
                async with conn.transaction(isolation="repeatable_read"):
                    await conn.execute("DELETE FROM known_fix_occurrences")
                    await conn.execute(q["mark_counted"])
                    await conn.execute(q["rebuild_occurrences"])
                    await conn.execute("DELETE FROM known_fix_stats")
                    await conn.execute(
                        "INSERT INTO known_fix_stats (error_type, agent_name, operation_name, "
                        "recovery_strategy, recovered, confident, duration_ms_sum, "
                        "duration_count, confidence_sum, example_correlation_ids, "
                        f"last_recovered_at) {q['expected_stats']}"
                    )
        finally:
            await close_quietly(conn)

    async def _connect(self) -> asyncpg.Connection:
        return await connect(
            self._dsn, schema=self._schema, ssl=self._ssl, application_name="debug-sink-correlator"
        )

    async def _locked_run(self, conn: asyncpg.Connection) -> CorrelatorResult:
        if not await try_lock(conn, self._schema, CORRELATOR_LOCK):
            log.debug("correlator_skipped", reason="another replica is running")
            return CorrelatorResult(ran=False)
        try:
            await conn.execute(f"SET lock_timeout = {self._lock_timeout_ms}")
            # Waits at most for one retention batch; taken before the snapshot is.
            try:
                await lock(conn, self._schema, STATS_LOCK)
            except asyncpg.LockNotAvailableError:
                log.info("correlator_skipped", reason="retention holds the aggregate lock")
                return CorrelatorResult(ran=False)
            try:
                return await self._run(conn)
            finally:
                await unlock(conn, self._schema, STATS_LOCK)
        finally:
            await unlock(conn, self._schema, CORRELATOR_LOCK)

    async def _run(self, conn: asyncpg.Connection) -> CorrelatorResult:
        q = _queries()
        started = time.perf_counter()
        async with conn.transaction(isolation="repeatable_read"):
            state = await conn.fetchrow(q["begin_run"])
            if state is None:
                raise PermanentError("correlator_state has no row: is migration 008 applied?")
            # The "first run" branch of collect_new_events must fold away at plan time.
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            await conn.execute(q["create_new_events"])
            await conn.execute(q["collect_new_events"], state["seen"], state["counted"])
            await conn.execute(q["create_workflows"])
            await conn.execute(q["index_workflows"])
            counts = await conn.fetchrow(q["new_event_counts"])
            assert counts is not None
            occurrence_rows = await conn.fetchval(q["count_occurrences"])
            examined_errors = examined_successes = links = moved = marked = stats_rows = 0
            after: UUID | None = None
            while True:
                ids: list[UUID] = await conn.fetchval(q["next_workflows"], after, self._chunk)
                if not ids:
                    break
                row = await conn.fetchrow(q["link"], ids, self._min_confidence)
                assert row is not None
                examined_errors += row["errors_examined"]
                examined_successes += row["successes_examined"]
                links += row["links"]
                moved += row["moved"]
                marked += row["marked"]
                stats_rows += row["stats_rows"]
                after = ids[-1]
            elapsed = time.perf_counter() - started
            await conn.execute(q["advance"], state["current"], links, round(elapsed * 1000))
        new_events = counts["errors"] + counts["successes"]
        result = CorrelatorResult(
            ran=True,
            new_errors=counts["errors"],
            new_successes=counts["successes"],
            workflows=counts["workflows"],
            errors_examined=examined_errors,
            successes_examined=examined_successes,
            links_made=links,
            links_moved=moved,
            errors_marked_recovered=marked,
            rows_touched=(
                new_events
                + examined_errors
                + examined_successes
                + links
                + moved
                + marked
                + stats_rows
                + occurrence_rows
                + 1
            ),
            duration_s=time.perf_counter() - started,
        )
        level = log.info if new_events else log.debug
        level("correlator_run", **{k: v for k, v in result.as_dict().items() if k != "ran"})
        return result


def correlator_job(settings: Settings, *, metrics: Any = None) -> Job | None:
    """The ``run`` service's periodic job, or None when ``correlator_interval`` is 0.

    Transient failures propagate (the service retries at the next tick); a permanent one is
    logged and counted, and the sink keeps ingesting.
    """
    if settings.correlator_interval <= 0:
        return None
    correlator = Correlator.from_settings(settings)

    def count(outcome: str) -> None:
        if metrics is not None:
            metrics.correlator_runs.labels(outcome).inc()

    async def job() -> None:
        try:
            result = await correlator.run_once()
        except TransientError:
            count("retry")
            raise
        except PermanentError as exc:
            count("error")
            log.error("correlator_failed", error=str(exc))
            return
        count("ran" if result.ran else "skipped")

    return Job("correlator", settings.correlator_interval, job)
