"""The correlator: links each error to the success that recovered it.

Owns ``debug_error_success_correlation`` (the only writer), the recovery fields it sets on
``debug_error_events``, the known-fixes aggregate (``known_fix_occurrences``,
``known_fix_stats``), the per-operation success counts (``correlator_operations``), the
comparison of its inference with what agents state
(``correlator_agreement`` and the ``agreement_*`` totals) and the watermark
``correlator_state``. The matching is two SQL statements per chunk of workflows
(``sql/correlator.sql``: ``choose`` scores and decides, ``apply`` writes); this module runs
them.

**Stated links.** A success may name the errors it recovered (``recovers_error_ids``: the
SDK fills it for a retried step, and for ``capture_success(..., recovers=...)``). Each named
error of the same workflow is linked to the earliest success naming it, with ``link_source =
'stated'`` and confidence 1, whatever the order in which the two arrived (the ids wait on the
success row until the error is stored; an id never stored is never a link). Inference never
replaces a stated link: a stated error's link is its statement, and a success that states
what it recovers is no inference candidate for other errors.

**Inferred links**, for every other error (per workflow, i.e. per ``correlation_id``; an error
is linked to at most one success, a success may recover several errors):

1. Candidates: a success of the same ``correlation_id`` that occurred after the error, among
   the first :data:`MAX_CANDIDATES` (200) successes of the workflow after it (in time, then
   id order): a recovery further away than that is not inferred (a stated one still links),
   and a workflow of E errors and S successes costs at most E x 200 pairs, not E x S. An
   error or success stored at ``infinity`` / ``-infinity`` (sent at year 1 or 9999 before the
   sink refused those years) has no usable time and is left out, as if unsent: it is neither
   linked nor a candidate, and the other events of its workflow, and every other workflow,
   are correlated as usual.
2. The first later success of the error's own agent and operation (the operation worked
   again) ends the search, unless both carry a step number and they differ (another
   invocation of the operation, e.g. a parallel branch): successes after it are later work,
   not candidates. A success that is that "first success of the same operation" for another
   error is explained already and is not a candidate for an error of a different agent or
   operation. Several errors of one operation before one success (retries) all have it as a
   candidate.
3. Each remaining candidate gets a confidence from the evidence (clamped to [0, 1]). An
   event's *step* is its ``execution_step``, else the ``step_number`` of the step row that
   references it (``error_event_id`` / ``success_event_id``), whose ``attempt`` is its attempt.

   ===================================================================  ======
   base: same workflow, success after the error                          +0.25
   same agent                                                            +0.15
   same operation                                                        +0.15
   same step (the failed step completed after all)                       +0.15
   success_type = recovery_success, or a success of a *recovering
   operation* (below)                                                    +0.20
   retry_count > 0                                                       +0.10
   the success's step attempt is higher than the error's (a retry)       +0.10
   error.recovery_attempted                                              +0.05
   error.recovery_strategy = retry: same agent and operation             +0.15
                             retry: anything else                        -0.10
                 any other named strategy (fallback, escalate,
                 delegate, ...): another agent or operation              +0.15
                                 same agent and operation                -0.10
                             skip                                        -0.30
                             abort                                       -0.50
   error.recovery_successful = false (the agent says it failed)          -0.40
   more than 1 hour between error and success                            -0.10
   *new work rather than a recovery:*
   the success shows no recovery (not recovery_success nor of a
   recovering operation, no retries, first attempt)                      -0.05
   same agent and operation in another step, not a later attempt
   (unless the success is typed recovery_success and the error's agent
   has not moved on: an agent that reports its retry as a new step)     -0.30
   the error's agent moved on before the success: it succeeded at
   anything, gave up (an error saying skip or abort) or started the
   operation again in another step                                       -0.30
   another agent's success right after an error of its own (its own
   recovery, more likely)                                                -0.10
   ===================================================================  ======

   A *recovering operation* is an (agent, operation) whose agents typed at least a fifth of
   its successes, of at least five, ``recovery_success`` (``correlator_operations``,
   migration 015: each success counted once, in the run that first sees it, before that
   run links). Fleets mix agents and code paths that type their recoveries with others that
   report a plain ``task_completion``; a fallback operation (``search_cached``, a backup
   model's ``complete``) is then typed in some workflows and not in others, and is a
   recovery in all of them, while an operation that is mostly new work has few typed
   successes (its typed retries). Statements (``recovers_error_ids``) are not counted, so
   the blind inference compared with them learns nothing from them.
   *Retry chains:* an error whose agent's next outcome is an error of the same operation
   in the same step (or a later attempt, or with either step unknown) was retried, and the
   retry failed too; the errors of such a chain share the fate of its last one: each
   candidate of an earlier error scores at least what it scores for the chain's last error.
   So an agent that said ``retry``, retried, failed again and then fell back has all the
   errors of the call recovered by the fallback; an error given up on, followed by the
   operation again in another step (new work), is not part of the chain.
4. The error is linked to its best candidate (highest confidence, then earliest) when that
   confidence is at least :data:`MIN_CONFIDENCE` (0.6). So the same agent redoing the same
   step needs one more sign that it was a recovery (a retry count, a higher attempt, a
   ``recovery_success``, a declared retry); another operation or agent needs a
   ``recovery_success`` or a declared non-retry strategy, and the error's agent must not have
   moved on meanwhile; an error whose agent skipped or aborted, or said the recovery failed,
   stays unlinked unless the evidence is overwhelming. An error without a qualifying
   candidate stays unlinked: unrecovered.
5. Late evidence moves a link: when a run re-examines a workflow and the best candidate of an
   already linked error is now another success (e.g. its true recovery arrived late), the
   link is moved (the old row deleted, the new one inserted, the aggregate adjusted); when an
   error has no candidate any more (e.g. a late event shows its agent had moved on), its
   inferred link is removed, and so are the marks the correlator set on the error. Links
   with several rows per error, stated links and links without a ``recovery_strategy`` (not
   the correlator's) are never removed.

Justification: agents retry an operation in place (same agent, operation and step, the
attempt counting up) or fall back to another operation or agent, which then reports a
``recovery_success``. Unrelated work of the same workflow goes on meanwhile (other agents,
other operations, the same operation for other items or in parallel branches): it must not
count as a recovery, hence the weights on agent and operation, the step, the "explained
already" rule and the evidence of new work. The error's own fields are the agent's statement
of what it tried: they confirm or contradict a candidate, but an agent that names a strategy
and then gives up is common (the false links measured on a labeled fleet, issue 13), so a
declared strategy alone does not link (``is_recoverable`` is a classification of the error,
not evidence about a success, and is not used). The weights were chosen on the tuning
workloads only (:mod:`debug_sink.dev.synthetic`, default and with ``p_intended_strategy =
0.5``; the retry chains and the typed new-step retry on the ``support`` fleet's misses,
which made it a tuning workload); precision and recall on them and on the held-out workloads of
:mod:`debug_sink.dev.workloads` are in the README and asserted in
``tests/integration/jobs/test_correlator.py``.

**Agreement.** The same run also infers blind, as if no agent had stated anything, and
compares: per error that is stated, or whose blind link goes to a success that states (other)
errors, ``correlator_agreement`` keeps the stated and the blindly inferred success, and
``correlator_state`` the totals (agreed, wrong, missed: :class:`Agreement`). That is
inference's precision and recall measured on the operator's own fleet, wherever agents state
links; the ``run`` service exports the totals as metrics and ``debug-sink correlate
--report`` shows them over a time window.

Each link gets: ``recovery_strategy`` = the error's ``recovery_strategy``, else the success's
``success_factors`` ``recovery_strategy`` / ``strategy``, else ``retry`` (same agent and
operation) or ``fallback`` (anything else); ``recovery_duration_ms`` = success time - error
time (0 for a stated success stamped before its error); ``intermediate_steps`` = the
workflow's step rows that started between the error and the success (the recovering step
included), or, for a workflow without step rows, the difference of the two ``execution_step``
values minus one; ``recovery_path`` = a readable line such as ``TimeoutError in
planner.fetch -> retry -> recovery_success in planner.fetch (stated, 1 retry, 2 intermediate
steps, 1500 ms)``; ``confidence_score`` as above (1 when stated); ``link_source``.

A linked error gets ``recovery_successful = true`` and, when the agent did not set it,
``resolved_at`` = the recovering success's ``occurred_at`` (moved along with a moved link).
An agent-provided ``resolved_at`` is kept.

Incremental: each run reads only the errors and successes committed since the previous run.
The watermark is the snapshot of the previous run (``correlator_state.seen``): a row is new
when the transaction that inserted it (``ingest_xid``, migration 008) is not visible in that
snapshot, which is exact under concurrent writers (a sequence would be drawn in insert order
but commit in another). The run then examines every error, success and step row of the
workflows that received new events, so late arrivals are handled: an error that lands after
its recovering success, or a success that lands long after its time, brings its workflow
back, and so does a new or folded step row of a workflow that has errors (its ``ingest_xid``,
migration 013): a step can give an event its step number and attempt. Cost: the new events
and step rows plus the events of their workflows, never the table.

Atomic and idempotent: one REPEATABLE READ transaction per run reads one snapshot, writes the
links (``ON CONFLICT DO NOTHING`` on the unique (error, success) pair), the error fields, the
aggregates and the new watermark, and commits. A replica dying mid-run leaves nothing; the
next run redoes the work. Single runner across replicas: a session advisory lock per schema
taken with ``pg_try_advisory_lock`` (a replica that does not get it skips the run). A second
lock (:data:`STATS_LOCK`) serialises the correlator with the retention purge, which
decrements the aggregates when it deletes errors and links.

Known fixes: ``known_fix_occurrences`` counts each error once, in the run that first sees it
(``correlator_state.counted`` is the snapshot whose errors are counted), ``known_fix_stats``
each link per (error_type, agent, operation, strategy), with how many were stated, both in
the run's transaction, and ``correlator_operations`` each success once, the same way; the
retention purge subtracts what it deletes, :meth:`Correlator.rebuild_known_fixes` recomputes
them from the rows. The SQL function
``known_fixes()`` reads only these (migrations 008, 011). The aggregate behind
``debug_error_recovery_patterns`` (migrations 010, 011) is not this module's: triggers on the
links keep it, whoever writes them.

Not guaranteed: a workflow is re-examined whole on every run that touches it (a workflow of
E errors costs up to E x 200 pairs each time it receives an event); the first run on an
existing database
reads everything in one transaction; statements are taken as complete (a success that names
some errors is not inferred to recover others).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Final
from uuid import UUID

import asyncpg
import structlog

from debug_sink.db import sqlfiles
from debug_sink.db.pg import close_quietly, connect, lift_timeouts, translating
from debug_sink.errors import PermanentError, TransientError
from debug_sink.jobs.examples import StatsKey, keys_of, refresh_examples
from debug_sink.jobs.locks import CORRELATOR_LOCK, STATS_LOCK, lock, try_lock, unlock
from debug_sink.jobs.periodic import Job
from debug_sink.settings import Settings

__all__ = [
    "CONFIDENT",
    "MAX_CANDIDATES",
    "MIN_CONFIDENCE",
    "Agreement",
    "Correlator",
    "CorrelatorResult",
    "correlator_job",
    "export_agreement",
]

log = structlog.get_logger("debug_sink.jobs.correlator")

#: Links below this confidence are not made.
MIN_CONFIDENCE: Final = 0.6
#: An error is compared with at most this many successes of its workflow, the first after it
#: (none of the labeled workloads has more than 164 successes after any error).
MAX_CANDIDATES: Final = 200
#: The design document's threshold for a confident recovery (debug_error_recovery_patterns).
CONFIDENT: Final = 0.7


def _queries() -> Any:
    return sqlfiles.load("correlator.sql")


@dataclass(frozen=True, slots=True)
class Agreement:
    """Blind inference against the links agents stated (``correlator_agreement``): per error
    where they can be compared, inference found the stated link (``agreed``), linked it
    elsewhere or linked an error a stating success does not name (``wrong``), or did not find
    the stated link (``missed``; an error can be both wrong and missed)."""

    agreed: int = 0
    wrong: int = 0
    missed: int = 0

    @property
    def precision(self) -> float | None:
        """Of the blind links that can be checked, the share that the agents stated."""
        made = self.agreed + self.wrong
        return self.agreed / made if made else None

    @property
    def recall(self) -> float | None:
        """Of the stated links, the share that blind inference found."""
        stated = self.agreed + self.missed
        return self.agreed / stated if stated else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall}


@dataclass(frozen=True, slots=True)
class CorrelatorResult:
    """What one run did. ``ran`` is False when another replica held the lock.
    ``agreement``: the totals over every compared error after the run."""

    ran: bool
    new_errors: int = 0
    new_successes: int = 0
    workflows: int = 0
    errors_examined: int = 0
    successes_examined: int = 0
    pairs_scored: int = 0
    links_made: int = 0
    links_stated: int = 0
    links_moved: int = 0
    links_removed: int = 0
    errors_marked_recovered: int = 0
    rows_touched: int = 0
    duration_s: float = 0.0
    agreement: Agreement = Agreement()

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "agreement": self.agreement.as_dict()}


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
        max_candidates: int = MAX_CANDIDATES,
        lock_timeout_s: float = 60.0,
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._ssl = ssl
        self._chunk = chunk_workflows
        self._min_confidence = min_confidence
        self._max_candidates = max_candidates
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
        an occurrence (later runs count only newer ones), every link as a recovery; and the
        agreement totals from ``correlator_agreement``. A repair tool, and a way to fill the
        aggregate of a database whose links were not made by the correlator (benchmarks); it
        does not correlate anything."""
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
                    await conn.execute("DELETE FROM correlator_operations")
                    await conn.execute(q["rebuild_operations"])
                    await conn.execute("DELETE FROM known_fix_stats")
                    await conn.execute(
                        "INSERT INTO known_fix_stats (error_type, agent_name, operation_name, "
                        "recovery_strategy, recovered, confident, duration_ms_sum, "
                        "duration_count, confidence_sum, example_correlation_ids, "
                        f"last_recovered_at, stated) {q['expected_stats']}"
                    )
                    await conn.execute(q["rebuild_agreement"])
        finally:
            await close_quietly(conn)

    async def _connect(self) -> asyncpg.Connection:
        """A connection for one run: a run is one transaction over every new event, so a
        DBA's statement or transaction timeout shorter than it would cancel every attempt
        (:func:`~debug_sink.db.pg.lift_timeouts`)."""
        conn = await connect(
            self._dsn, schema=self._schema, ssl=self._ssl, application_name="debug-sink-correlator"
        )
        try:
            with translating(self._dsn):
                await lift_timeouts(conn)
        except BaseException:
            await close_quietly(conn)
            raise
        return conn

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
            await conn.execute(q["create_workflows"], state["seen"])
            await conn.execute(q["index_workflows"])
            counts = await conn.fetchrow(q["new_event_counts"])
            assert counts is not None
            occurrence_rows = await conn.fetchval(q["count_occurrences"])
            await conn.execute(q["create_choices"])
            examined_errors = examined_successes = pairs = 0
            links = stated = moved = removed = marked = 0
            other_rows = 0
            unlinked_keys: list[StatsKey] = []
            after: UUID | None = None
            while True:
                ids: list[UUID] = await conn.fetchval(q["next_workflows"], after, self._chunk)
                if not ids:
                    break
                await conn.execute(q["clear_choices"])
                # Every join of choose is on equal ids or names: hash joins. A nested loop,
                # chosen on the guesses the planner makes for its CTEs, rescans one CTE per
                # row of another (a workflow's size squared).
                await conn.execute("SET LOCAL enable_nestloop = off")
                seen = await conn.fetchrow(
                    q["choose"], ids, self._min_confidence, self._max_candidates
                )
                await conn.execute("SET LOCAL enable_nestloop = on")
                assert seen is not None
                examined_errors += seen["errors_examined"]
                examined_successes += seen["successes_examined"]
                pairs += seen["pairs_scored"]
                row = await conn.fetchrow(q["apply"])
                assert row is not None
                links += row["links"]
                stated += row["stated"]
                moved += row["moved"]
                removed += row["removed"]
                marked += row["marked"]
                other_rows += row["unmarked"] + row["stats_rows"] + row["agreement_rows"]
                unlinked_keys += keys_of(row["unlinked_keys"])
                after = ids[-1]
            await refresh_examples(conn, unlinked_keys)
            elapsed = time.perf_counter() - started
            totals = await conn.fetchrow(
                q["advance"], state["current"], links, round(elapsed * 1000)
            )
            assert totals is not None
        new_events = counts["errors"] + counts["successes"]
        result = CorrelatorResult(
            ran=True,
            new_errors=counts["errors"],
            new_successes=counts["successes"],
            workflows=counts["workflows"],
            errors_examined=examined_errors,
            successes_examined=examined_successes,
            pairs_scored=pairs,
            links_made=links,
            links_stated=stated,
            links_moved=moved,
            links_removed=removed,
            errors_marked_recovered=marked,
            rows_touched=(
                new_events
                + examined_errors
                + examined_successes
                + links
                + moved
                + removed
                + marked
                + other_rows
                + occurrence_rows
                + 1
            ),
            duration_s=time.perf_counter() - started,
            agreement=Agreement(totals["agreed"], totals["wrong"], totals["missed"]),
        )
        level = log.info if new_events else log.debug
        level(
            "correlator_run",
            **{k: v for k, v in asdict(result).items() if k not in ("ran", "agreement")},
        )
        return result


def export_agreement(metrics: Any, agreement: Agreement) -> None:
    """Set the agreement gauges of :class:`~debug_sink.metrics.Metrics` from the totals."""
    for outcome in ("agreed", "wrong", "missed"):
        metrics.correlator_agreement.labels(outcome).set(getattr(agreement, outcome))
    for measure in ("precision", "recall"):
        value = getattr(agreement, measure)
        if value is not None:
            metrics.correlator_inference.labels(measure).set(value)


def correlator_job(
    settings: Settings, *, metrics: Any = None, interval: float | None = None
) -> Job | None:
    """The ``run`` service's periodic job (also what ``debug-sink correlate`` runs without
    ``--once``), every ``interval`` seconds (default ``correlator_interval``), or None when
    that is 0.

    After each run it exports the agreement of inference with stated links
    (:func:`export_agreement`). Transient failures propagate (the service retries at the next
    tick); a permanent one is logged and counted, and the sink keeps ingesting.
    """
    every = settings.correlator_interval if interval is None else interval
    if every <= 0:
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
        if result.ran and metrics is not None:
            export_agreement(metrics, result.agreement)

    return Job("correlator", every, job)
