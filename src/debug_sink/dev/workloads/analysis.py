"""Data-analysis / research agents: a held-out labeled workload for the correlator.

Owns :func:`generate` (pure, seeded). Written from a description of an analysis fleet, not
from the correlator's rules, weights or tests, with conventions that differ from
:mod:`debug_sink.dev.synthetic` (the tuning workload), :mod:`.pipelines`, :mod:`.branches`,
:mod:`.support` and :mod:`.coding`:

- **Shape.** A workflow is one analysis request from a user ("why did churn rise in
  March?"). ``orchestrator.plan_analysis`` plans it; then, at once, ``sql_agent`` runs 1-6
  queries (``run_query``; 25% / 25% / 20% / 15% / 10% / 5%) on a pool of 1-3 workers (40% /
  35% / 25% of the requests: each query goes to the first free worker, so the queries and
  repair loops of one agent and operation overlap in time) and, in 60% of the requests,
  ``web_agent`` researches: 1-2 ``search``, each followed by ``fetch_page`` of its results
  one after the other until 1-3 pages are read (at most 6 tried). Then, in 70% of the
  requests, ``python_agent`` runs 1-3 code tasks one after the other (``execute_code``);
  ``orchestrator.compose_answer`` writes the answer and ``critic.check_answer`` checks it.
  Step numbers follow start order across the request's agents; a rerun is a new call (a new
  step, ``attempt`` 1) except the web agent's proxy retry (same step, ``attempt`` 2).
  ``plan_analysis``, ``compose_answer`` and ``search`` never fail.
- **Query repair loop.** 35% of the queries fail (``SyntaxError`` 35%, ``UndefinedColumn``
  40%, ``QueryTimeout`` 25% at the request's statement timeout of 30, 60 or 120 s, drawn per
  failure); the agent rewrites the query with its LLM (2-15 s) and reruns it: a loop of 1-5
  failures (45% / 25% / 15% / 10% / 5%) ends with a passing ``run_query``, or in 15% of the
  loops is **never fixed**: the agent gives up after its last failure and the orchestrator
  answers without that data. Most queries pass at once: ``run_query`` recurs as new work.
- **Code repair loop.** 35% of the code tasks fail: 1-4 failures (50% / 28% / 15% / 7%) of
  ``KeyError`` 40%, ``ValueError`` 40%, ``MemoryError`` 20%; after a ``KeyError`` or
  ``ValueError`` the agent edits the code (3-20 s) and reruns the same operation; after a
  ``MemoryError`` it switches, for the rest of that task, to ``execute_code_chunked`` (which
  fails only with ``KeyError`` / ``ValueError``). 10% of the failing tasks are given up after
  their last failure (never on a ``MemoryError``: the chunked run always follows one).
- **Web.** 22% of the fetches fail (``HTTP403`` 45%, ``HTTP429`` 30%, ``ConnectTimeout``
  25%). After a failure the agent retries through a proxy (60%): ``fetch_page`` again, on the
  same step with ``attempt`` 2, ``success_factors`` ``{"via": "proxy"}`` on success and, for
  half of the agents, ``retry_count`` 1; the proxy fails 20% of the time (one of the three
  types). Otherwise, or when the proxy failed, the agent gives up on that URL and fetches the
  next search result: new work (another URL), not a recovery.
- **Critic rejection.** ``check_answer`` fails (``AnswerRejected``) for 20% of the answers,
  25% of the recomposed ones. After a rejection, 10% of the time the answer goes to the human
  ``analyst``, whose ``review_answer`` succeeds 10 minutes to 3 hours later (log-normal,
  median 40 min) and ends the request; otherwise the orchestrator recomposes
  (``compose_answer`` again, after 1-2 new queries in 40% of the recomposes, with their own
  repair loops) and the critic checks again -- after a third rejection (two recomposes) the
  answer is delivered with a caveat and its rejections are never recovered.
- **What agents report** (traits of each (request, agent) pair): ``execution_step`` on every
  error and success; step rows 25%; errors without ``operation_name`` (null) 20%;
  ``recovery_strategy`` 60%: the word for what the agent does next, in its own vocabulary
  (``sql_agent``: ``rewrite_query`` / ``abandon_query``; ``python_agent``: ``edit_code`` /
  ``chunk`` / ``abandon_code``; ``web_agent``: ``use_proxy`` / ``next_result``; ``critic``:
  ``recompose`` / ``human_review`` / ``deliver_with_caveat``) or, for 30% of them, the
  generic word (``retry`` / ``skip``; ``retry`` / ``fallback`` / ``skip``; ``retry`` /
  ``fallback``; ``retry`` / ``escalate`` / ``abort``); ``recovery_attempted`` 50%, true when
  a rerun, chunked run, proxy retry, recompose or human review follows (not when giving up
  or moving to the next URL); ``is_recoverable`` by error type (60%), always (20%) or never
  (20%). Successes are ``task_completion``, except the critic's passes, all
  ``validation_pass`` (recovering or not), and the recovering successes of the other agents
  (they all know what they recovered) in 40% of the pairs: ``recovery_success``.
  ``retry_count`` is 0 except on proxy successes as said.
- **Buffered errors**: 15% of the pairs buffer their error events and flush them 10-60
  minutes (a trait) after each error, ``occurred_at`` unchanged: these errors usually arrive
  after the success that recovered them, often waves later; their steps and successes are
  sent at once.
- **Stated links**: a share ``stated_fraction`` of the (request, agent) pairs name, in
  ``recovers_error_ids`` of each recovering success, exactly the errors it recovers.
- **Delivery** (:mod:`.delivery`): 250 requests start within three hours; six waves of 35
  minutes; a random delay per event, 8% of the deliveries 1-2 waves late, 5% of the events
  delivered twice; agents' clocks skewed by up to 2 s (a review after the last wave arrives
  in it).

Truth, per recovering success (every other success recovers nothing):

- the passing ``run_query`` that ends a query's repair loop recovers every failed
  ``run_query`` of that query (the original and its rewrites) -- not the failures of another
  query, however close in time (parallel workers, a recompose's queries); a passing query
  with no failure before it recovers nothing;
- the success that ends a code task (``execute_code``, or ``execute_code_chunked`` after a
  ``MemoryError``) recovers every error of that task, of either operation;
- a proxy ``fetch_page`` success recovers the failed direct fetch of that URL;
- a passing ``check_answer`` recovers every ``AnswerRejected`` of its request (all before
  it: one answer per request); ``analyst.review_answer`` recovers every ``AnswerRejected``
  of its request, the one that sent the answer to the analyst and any earlier ones.

Never recovered: given-up query loops and code tasks, fetch errors not retried through the
proxy or whose proxy retry failed (both errors), rejections of an answer delivered with a
caveat. The orchestrator's successes (a recompose included) recover nothing.

Not modelled: errors of the orchestrator or of ``search``, a follow-up question in a later
workflow, an analyst who never answers.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from uuid import UUID

from debug_sink.dev.synthetic import Kind, Workload
from debug_sink.dev.workloads.delivery import (
    Delivery,
    Slot,
    collect,
    deliver,
    number_slots,
    numbered,
    unrecovered_errors,
)

__all__ = ["AnalysisConfig", "generate"]

ORCHESTRATOR: Final = "orchestrator"
SQL: Final = "sql_agent"
WEB: Final = "web_agent"
PYTHON: Final = "python_agent"
CRITIC: Final = "critic"
ANALYST: Final = "analyst"
AGENTS: Final = (ORCHESTRATOR, SQL, WEB, PYTHON, CRITIC, ANALYST)

#: Error type -> (recoverable by its type, error_category, error_severity).
ERRORS: Final[dict[str, tuple[bool, str, str]]] = {
    "SyntaxError": (True, "agent", "low"),
    "UndefinedColumn": (True, "agent", "low"),
    "QueryTimeout": (True, "external", "medium"),
    "KeyError": (True, "agent", "medium"),
    "ValueError": (True, "agent", "medium"),
    "MemoryError": (True, "framework", "high"),
    "HTTP403": (False, "external", "medium"),
    "HTTP429": (True, "external", "low"),
    "ConnectTimeout": (True, "external", "medium"),
    "AnswerRejected": (True, "agent", "high"),
}

#: What an agent does after an error.
Action = Literal["rewrite", "edit", "chunk", "proxy", "next_url", "recompose", "human", "give_up"]
#: The actions that try to recover the error (``recovery_attempted``).
ATTEMPTS: Final = frozenset({"rewrite", "edit", "chunk", "proxy", "recompose", "human"})
#: Agent -> action -> its words for it in ``recovery_strategy``: (its own, the generic one).
VOCABULARY: Final[dict[str, dict[str, tuple[str, str]]]] = {
    SQL: {"rewrite": ("rewrite_query", "retry"), "give_up": ("abandon_query", "skip")},
    PYTHON: {
        "edit": ("edit_code", "retry"),
        "chunk": ("chunk", "fallback"),
        "give_up": ("abandon_code", "skip"),
    },
    WEB: {"proxy": ("use_proxy", "retry"), "next_url": ("next_result", "fallback")},
    CRITIC: {
        "recompose": ("recompose", "retry"),
        "human": ("human_review", "escalate"),
        "give_up": ("deliver_with_caveat", "abort"),
    },
}

_TOKENS: Final = ("GROUP", "BY", "FROM", ")", "WHERE", "JOIN", "OVER")
_COLUMNS: Final = ("churn_rate", "signup_month", "mrr_usd", "region_id", "cancelled_at", "plan")
_REJECTIONS: Final = (
    "claim not supported by the query results",
    "the answer does not address the question",
    "numbers inconsistent with the SQL output",
    "no time range given for the trend",
)
_SITES: Final = (
    "statista.com",
    "reuters.com",
    "bls.gov",
    "investopedia.com",
    "gartner.com",
    "medium.com",
    "reddit.com",
    "hbr.org",
    "techcrunch.com",
    "en.wikipedia.org",
)


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    """Knobs of :func:`generate`."""

    workflows: int = 250
    seed: int = 505
    query_weights: tuple[float, ...] = (0.25, 0.25, 0.2, 0.15, 0.1, 0.05)  # 1-6 queries
    pool_weights: tuple[float, ...] = (0.4, 0.35, 0.25)  # 1-3 query workers
    p_query_fails: float = 0.35
    query_loop_weights: tuple[float, ...] = (0.45, 0.25, 0.15, 0.1, 0.05)  # 1-5 failures
    p_query_given_up: float = 0.15
    p_web: float = 0.6  # the request researches the web
    p_fetch_fails: float = 0.22
    p_proxy: float = 0.6  # after a failed fetch: through a proxy, else the next result
    p_proxy_fails: float = 0.2
    p_code: float = 0.7  # the request runs code
    p_code_fails: float = 0.35
    code_loop_weights: tuple[float, ...] = (0.5, 0.28, 0.15, 0.07)  # 1-4 failures
    p_code_given_up: float = 0.1
    p_rejected: float = 0.2  # the critic rejects an answer ...
    p_rejected_again: float = 0.25  # ... a recomposed one
    max_recomposes: int = 2
    p_human: float = 0.1  # a rejected answer goes to the analyst
    p_requery: float = 0.4  # a recompose runs 1-2 new queries first
    human_median_s: float = 2400.0
    human_range_s: tuple[float, float] = (600.0, 10800.0)
    p_buffers: float = 0.15  # (request, agent) pairs that buffer their errors ...
    flush_s: tuple[float, float] = (600.0, 3600.0)  # ... and flush them this long after
    stated_fraction: float = 0.0  # (request, agent) pairs that name what they recover
    waves: int = 6
    late_fraction: float = 0.08
    late_waves: tuple[float, float] = (1.0, 2.0)
    duplicate_fraction: float = 0.05
    clock_skew_ms: int = 2000
    start: datetime = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    workflow_spread_s: float = 10800.0


@dataclass(frozen=True, slots=True)
class Traits:
    """What one agent does and reports, drawn per request."""

    steps: bool  # writes step rows
    names_operation: bool  # fills operation_name on its errors
    declares: bool  # fills recovery_strategy ...
    generic_words: bool  # ... with the generic word rather than its own
    sets_attempted: bool
    recoverable: Literal["by_type", "always", "never"]
    recovery_type: bool  # types its recovering successes recovery_success
    counts_retries: bool  # a web agent: retry_count 1 on a proxy success
    buffers_errors: bool
    flush_s: float
    states: bool


def _traits(rng: random.Random, cfg: AnalysisConfig) -> Traits:
    return Traits(
        steps=rng.random() < 0.25,
        names_operation=rng.random() >= 0.2,
        declares=rng.random() < 0.6,
        generic_words=rng.random() < 0.3,
        sets_attempted=rng.random() < 0.5,
        recoverable=rng.choices(("by_type", "always", "never"), (0.6, 0.2, 0.2))[0],
        recovery_type=rng.random() < 0.4,
        counts_retries=rng.random() < 0.5,
        buffers_errors=rng.random() < cfg.p_buffers,
        flush_s=rng.uniform(*cfg.flush_s),
        states=rng.random() < cfg.stated_fraction,
    )


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


@dataclass(slots=True)
class _Request:
    cfg: AnalysisConfig
    rng: random.Random
    correlation_id: UUID
    traits: dict[str, Traits]
    skew: dict[str, timedelta]
    pool: int  # query workers
    statement_timeout_s: float
    rows: list[tuple[Kind, dict[str, Any], Slot | None]] = field(default_factory=list)
    truth: set[tuple[UUID, UUID]] = field(default_factory=set)
    stated: set[tuple[UUID, UUID]] = field(default_factory=set)
    slots: list[Slot] = field(default_factory=list)
    unrecovered: int = 0

    def new_id(self) -> UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def after(self, at: datetime, low: float, high: float) -> datetime:
        return at + timedelta(seconds=self.rng.uniform(low, high))

    # -- rows -------------------------------------------------------------------------------

    def call(
        self,
        agent: str,
        operation: str,
        started: datetime,
        ended: datetime,
        *,
        error: str | None = None,
        message: str = "",
        then: Action | None = None,
        recovers: Sequence[UUID] = (),
        factors: dict[str, Any] | None = None,
        retry_count: int = 0,
        slot: Slot | None = None,
        attempt: int = 1,
        step_type: str = "execution",
    ) -> tuple[UUID, Slot]:
        """One attempt of ``agent``: an error (``then``: what the agent does next) or a
        success recovering ``recovers``, and its step row if the agent writes them; on a new
        step unless ``slot`` is given. Returns the event's id and its step."""
        if slot is None:
            slot = Slot(started)
            self.slots.append(slot)
        traits, skew = self.traits[agent], self.skew[agent]
        event_id = self.new_id()
        if error is not None:
            assert then is not None
            by_type, category, severity = ERRORS[error]
            own, generic = VOCABULARY[agent][then]
            row: dict[str, Any] = {
                "id": event_id,
                "correlation_id": self.correlation_id,
                "error_type": error,
                "error_category": category,
                "error_severity": severity,
                "error_message": message,
                "agent_name": agent,
                "operation_name": operation if traits.names_operation else None,
                "is_recoverable": {"by_type": by_type, "always": True, "never": False}[
                    traits.recoverable
                ],
                "recovery_attempted": traits.sets_attempted and then in ATTEMPTS,
                "recovery_successful": None,
                "recovery_strategy": (generic if traits.generic_words else own)
                if traits.declares
                else None,
                "occurred_at": ended + skew,
            }
            self.rows.append(("error", row, slot))
        else:
            if agent == CRITIC:
                success_type = "validation_pass"
            elif recovers and traits.recovery_type:
                success_type = "recovery_success"
            else:
                success_type = "task_completion"
            states = bool(recovers) and traits.states
            row = {
                "id": event_id,
                "correlation_id": self.correlation_id,
                "success_type": success_type,
                "operation_name": operation,
                "agent_name": agent,
                "retry_count": retry_count,
                "success_factors": factors,
                "occurred_at": ended + skew,
                "recovers_error_ids": list(recovers) if states else None,
            }
            self.rows.append(("success", row, slot))
            self.truth.update((e, event_id) for e in recovers)
            if states:
                self.stated.update((e, event_id) for e in recovers)
        if traits.steps:
            failed = error is not None
            step = {
                "id": self.new_id(),
                "correlation_id": self.correlation_id,
                "attempt": attempt,
                "step_type": step_type,
                "agent_name": agent,
                "operation_name": operation,
                "status": "failed" if failed else "completed",
                "error_event_id": event_id if failed else None,
                "success_event_id": None if failed else event_id,
                "started_at": started + skew,
                "completed_at": ended + skew,
                "duration_ms": int((ended - started) / timedelta(milliseconds=1)),
            }
            self.rows.append(("step", step, slot))
        return event_id, slot

    # -- the orchestrator -------------------------------------------------------------------

    def plan(self, ready: datetime) -> datetime:
        started = self.after(ready, 0.1, 2.0)
        ended = self.after(started, 2.0, 20.0)
        self.call(ORCHESTRATOR, "plan_analysis", started, ended, step_type="planning")
        return ended

    def compose(self, ready: datetime) -> datetime:
        started = self.after(ready, 0.2, 3.0)
        ended = self.after(started, 5.0, 40.0)
        self.call(ORCHESTRATOR, "compose_answer", started, ended, step_type="synthesis")
        return ended

    # -- sql ---------------------------------------------------------------------------------

    def queries(self, count: int, ready: datetime) -> datetime:
        """``count`` queries on the request's worker pool; when the last one ends."""
        workers = [self.after(ready, 0.05, 1.0) for _ in range(self.pool)]
        for _ in range(count):
            index = min(range(len(workers)), key=workers.__getitem__)
            workers[index] = self.after(self.query(workers[index]), 0.05, 1.0)
        return max(workers)

    def query(self, ready: datetime) -> datetime:
        """One query and its repair loop: a pass recovering the loop's failures, or a give-up.
        When it ends."""
        cfg, rng = self.cfg, self.rng
        failures = 0
        if rng.random() < cfg.p_query_fails:
            failures = rng.choices(range(1, 6), cfg.query_loop_weights)[0]
        given_up = rng.random() < cfg.p_query_given_up
        failed: list[UUID] = []
        at = self.after(ready, 1.0, 8.0)  # the agent's LLM writes the query
        for index in range(failures):
            stop = given_up and index == failures - 1
            error = rng.choices(("SyntaxError", "UndefinedColumn", "QueryTimeout"), (35, 40, 25))[0]
            started = self.after(at, 0.01, 0.2)
            if error == "QueryTimeout":
                ended = self.after(
                    started, self.statement_timeout_s, self.statement_timeout_s + 0.5
                )
                message = "canceling statement due to statement timeout"
            else:
                ended = self.after(started, 0.01, 0.3)
                message = (
                    f'syntax error at or near "{rng.choice(_TOKENS)}"'
                    if error == "SyntaxError"
                    else f'column "{rng.choice(_COLUMNS)}" does not exist'
                )
            event, _ = self.call(
                SQL,
                "run_query",
                started,
                ended,
                error=error,
                message=message,
                then="give_up" if stop else "rewrite",
            )
            failed.append(event)
            if stop:
                return ended
            at = self.after(ended, 2.0, 15.0)  # the rewrite
        started = self.after(at, 0.01, 0.2)
        ended = started + timedelta(seconds=_log_uniform(rng, 0.1, 30.0))
        self.call(SQL, "run_query", started, ended, recovers=failed)
        return ended

    # -- web ---------------------------------------------------------------------------------

    def web(self, ready: datetime) -> datetime:
        """1-2 searches, each followed by fetches of its results; when the research ends."""
        rng, at = self.rng, ready
        for _ in range(rng.randint(1, 2)):
            started = self.after(at, 0.2, 2.0)
            at = self.after(started, 0.4, 3.0)
            self.call(WEB, "search", started, at, step_type="retrieval")
            wanted, fetched = rng.randint(1, 3), 0
            for site in rng.sample(_SITES, 6):
                if fetched == wanted:
                    break
                url = (
                    f"https://{site}/{rng.choice(_COLUMNS).replace('_', '-')}-{rng.randint(1, 999)}"
                )
                ok, at = self.fetch(url, at)
                fetched += ok
        return at

    def fetch(self, url: str, ready: datetime) -> tuple[bool, datetime]:
        """``fetch_page`` of ``url``, through the proxy after a failure: (read, when)."""
        cfg, rng = self.cfg, self.rng
        started = self.after(ready, 0.05, 0.5)
        if rng.random() >= cfg.p_fetch_fails:
            ended = self.after(started, 0.3, 8.0)
            self.call(WEB, "fetch_page", started, ended, step_type="retrieval")
            return True, ended
        proxy = rng.random() < cfg.p_proxy
        ended, error, message = self.fetch_error(url, started)
        then: Action = "proxy" if proxy else "next_url"
        failed, slot = self.call(
            WEB,
            "fetch_page",
            started,
            ended,
            error=error,
            message=message,
            then=then,
            step_type="retrieval",
        )
        if not proxy:
            return False, ended
        started = self.after(ended, 0.2, 2.0)
        if rng.random() >= cfg.p_proxy_fails:
            ended = self.after(started, 1.0, 12.0)
            self.call(
                WEB,
                "fetch_page",
                started,
                ended,
                recovers=[failed],
                factors={"via": "proxy"},
                retry_count=1 if self.traits[WEB].counts_retries else 0,
                slot=slot,
                attempt=2,
                step_type="retrieval",
            )
            return True, ended
        ended, error, message = self.fetch_error(url, started)
        self.call(
            WEB,
            "fetch_page",
            started,
            ended,
            error=error,
            message=message,
            then="next_url",
            slot=slot,
            attempt=2,
            step_type="retrieval",
        )
        return False, ended

    def fetch_error(self, url: str, started: datetime) -> tuple[datetime, str, str]:
        error = self.rng.choices(("HTTP403", "HTTP429", "ConnectTimeout"), (45, 30, 25))[0]
        if error == "ConnectTimeout":
            return self.after(started, 10.0, 10.2), error, f"GET {url}: connect timeout (10 s)"
        status = "403 Forbidden" if error == "HTTP403" else "429 Too Many Requests"
        return self.after(started, 0.1, 1.5), error, f"GET {url}: {status}"

    # -- python ------------------------------------------------------------------------------

    def code(self, ready: datetime) -> datetime:
        """1-3 code tasks one after the other; when the last one ends."""
        at = ready
        for _ in range(self.rng.randint(1, 3)):
            at = self.code_task(self.after(at, 1.0, 10.0))
        return at

    def code_task(self, ready: datetime) -> datetime:
        """One code task and its repair loop; when it ends."""
        cfg, rng = self.cfg, self.rng
        failures = 0
        if rng.random() < cfg.p_code_fails:
            failures = rng.choices(range(1, 5), cfg.code_loop_weights)[0]
        given_up = rng.random() < cfg.p_code_given_up
        operation, at = "execute_code", self.after(ready, 2.0, 12.0)  # the LLM writes it
        failed: list[UUID] = []
        for index in range(failures):
            stop = given_up and index == failures - 1
            if operation == "execute_code" and not stop:
                error = rng.choices(("KeyError", "ValueError", "MemoryError"), (40, 40, 20))[0]
            else:
                error = rng.choice(("KeyError", "ValueError"))
            started = self.after(at, 0.05, 0.5)
            if error == "MemoryError":
                ended = self.after(started, 5.0, 90.0)
                message = f"MemoryError: Unable to allocate {rng.uniform(2, 40):.1f} GiB"
            elif error == "KeyError":
                ended = self.after(started, 0.1, 20.0)
                message = f"KeyError: '{rng.choice(_COLUMNS)}'"
            else:
                ended = self.after(started, 0.1, 20.0)
                message = "ValueError: could not convert string to float: 'n/a'"
            then: Action = "give_up" if stop else "chunk" if error == "MemoryError" else "edit"
            event, _ = self.call(
                PYTHON, operation, started, ended, error=error, message=message, then=then
            )
            failed.append(event)
            if stop:
                return ended
            if error == "MemoryError":
                operation = "execute_code_chunked"
            at = self.after(ended, 3.0, 20.0)  # the edit
        started = self.after(at, 0.05, 0.5)
        high = 300.0 if operation == "execute_code_chunked" else 60.0
        ended = started + timedelta(seconds=_log_uniform(rng, 0.5, high))
        self.call(PYTHON, operation, started, ended, recovers=failed)
        return ended

    # -- the critic and the analyst ----------------------------------------------------------

    def review(self, ready: datetime) -> None:
        """The critic checks the answer until it passes, goes to the analyst or is delivered
        with a caveat."""
        cfg, rng = self.cfg, self.rng
        rejections: list[UUID] = []
        at, recomposes = ready, 0
        while True:
            started = self.after(at, 0.2, 3.0)
            ended = self.after(started, 3.0, 20.0)
            rate = cfg.p_rejected_again if rejections else cfg.p_rejected
            if rng.random() >= rate:
                self.call(
                    CRITIC,
                    "check_answer",
                    started,
                    ended,
                    recovers=rejections,
                    step_type="validation",
                )
                return
            then: Action
            if rng.random() < cfg.p_human:
                then = "human"
            elif recomposes == cfg.max_recomposes:
                then = "give_up"
            else:
                then = "recompose"
            event, _ = self.call(
                CRITIC,
                "check_answer",
                started,
                ended,
                error="AnswerRejected",
                message=rng.choice(_REJECTIONS),
                then=then,
                step_type="validation",
            )
            rejections.append(event)
            if then == "human":
                self.human_review(ended, rejections)
                return
            if then == "give_up":
                return
            recomposes += 1
            at = ended
            if rng.random() < cfg.p_requery:
                at = self.queries(rng.randint(1, 2), self.after(at, 1.0, 5.0))
            at = self.compose(at)

    def human_review(self, asked: datetime, rejections: list[UUID]) -> None:
        """``analyst.review_answer`` 10 minutes to 3 hours after ``asked``."""
        cfg, rng = self.cfg, self.rng
        seconds = cfg.human_median_s * math.exp(rng.gauss(0.0, 0.9))
        low, high = cfg.human_range_s
        done = asked + timedelta(seconds=min(max(seconds, low), high))
        started = max(asked + timedelta(seconds=1), done - timedelta(seconds=rng.uniform(60, 900)))
        self.call(ANALYST, "review_answer", started, done, recovers=rejections, step_type="review")


def _request(cfg: AnalysisConfig, rng: random.Random) -> _Request:
    start = cfg.start + timedelta(seconds=rng.uniform(0, cfg.workflow_spread_s))
    skew_s = cfg.clock_skew_ms / 1000
    request = _Request(
        cfg,
        rng,
        uuid.UUID(int=rng.getrandbits(128), version=4),
        traits={agent: _traits(rng, cfg) for agent in AGENTS},
        skew={agent: timedelta(seconds=rng.uniform(-skew_s, skew_s)) for agent in AGENTS},
        pool=rng.choices((1, 2, 3), cfg.pool_weights)[0],
        statement_timeout_s=rng.choice((30.0, 60.0, 120.0)),
    )
    at = request.plan(start)
    count = rng.choices(range(1, 7), cfg.query_weights)[0]
    queried = request.queries(count, at)
    researched = request.web(at) if rng.random() < cfg.p_web else at
    at = max(queried, researched)
    if rng.random() < cfg.p_code:
        at = request.code(at)
    request.review(request.compose(at))
    number_slots(request.slots)
    request.unrecovered = unrecovered_errors(request.rows, request.truth)
    return request


def generate(cfg: AnalysisConfig | None = None) -> Workload:
    """The requests' events in arrival waves and the true recoveries; deterministic per
    config."""
    cfg = cfg or AnalysisConfig()
    rng = random.Random(cfg.seed)
    requests = [_request(cfg, rng) for _ in range(cfg.workflows)]
    events = [row for request in requests for row in numbered(request.rows)]
    how = Delivery(
        start=cfg.start,
        span_s=cfg.workflow_spread_s + 1800.0,
        waves=cfg.waves,
        late_fraction=cfg.late_fraction,
        late_waves=cfg.late_waves,
        duplicate_fraction=cfg.duplicate_fraction,
    )
    # Buffered errors: each flushed its pair's flush delay after it happened.
    wave_length = how.span_s / how.waves
    flush = {
        (request.correlation_id, agent): traits.flush_s / wave_length
        for request in requests
        for agent, traits in request.traits.items()
        if traits.buffers_errors
    }

    def buffered(kind: Kind, row: dict[str, Any]) -> bool:
        return kind == "error" and (row["correlation_id"], row["agent_name"]) in flush

    sent = deliver([e for e in events if not buffered(*e)], rng, how)
    flushed = deliver([e for e in events if buffered(*e)], rng, how, offline=flush)
    waves = [now + later for now, later in zip(sent, flushed, strict=True)]
    for wave in waves:
        rng.shuffle(wave)
    return collect(requests, events, waves)
