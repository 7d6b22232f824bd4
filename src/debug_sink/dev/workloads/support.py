"""Customer-support tickets: a held-out labeled workload for the correlator.

Owns :func:`generate` (pure, seeded). Written from a description of a support fleet, not from
the correlator's rules or weights, with conventions that differ from
:mod:`debug_sink.dev.synthetic` (the tuning workload), :mod:`.pipelines` and :mod:`.branches`:

- **Shape.** A workflow is one support ticket of 5-25 planned tool calls. ``triage``
  classifies it (``classify_ticket``) and routes it (``route_ticket``) to 1-3 tool agents,
  run one after the other or, in 45% of the tickets, in parallel: ``billing``
  (``lookup_invoice``, ``issue_refund``), ``kb`` (``search_articles``, ``summarize``), ``crm``
  (``fetch_customer``, ``update_record``). Each tool agent makes its calls one at a time and
  operations recur as new work (several ``search_articles`` for different queries, several
  ``lookup_invoice`` for different invoices). Then ``responder`` drafts one or two replies
  (``draft_reply``) and sends one (``send_reply``). Step numbers follow start order across
  the ticket's agents.
- **Failures** (6-30% of the calls, by operation) depend on the error type: transient ones
  (timeouts, rate limits, gateway errors) are retried by 85% of the agents, the others (not
  found, limits, policy, context length) never. In 6% of the (ticket, operation) pairs the
  operation is degraded: 75% of its calls fail.
- **Retry** in place after an exponential backoff, up to 1-3 retries (a trait). How an agent
  reports retries is a trait: ``attempt`` (45%: a step row per attempt, same
  ``step_number``, ``attempt`` + 1; half of them also set ``retry_count``), ``count`` (30%: no
  step rows at all, only ``retry_count`` on the eventual success; half of these log no error
  for an attempt their client retries silently, so a success with ``retry_count`` > 0 may
  recover no reported error, typed ``recovery_success`` all the same by some) or ``none``
  (25%: ``retry_count`` always 0; half of them write step rows, every attempt a new step with
  ``attempt`` 1).
- **Circuit breaker** (half of the agents, after 3 or 4 failed attempts of an operation in a
  row, across calls): the agent stops calling that operation for the rest of the ticket --
  the errors are never recovered, its remaining calls of it are skipped (``skipped`` step
  rows from the agents that write steps), the ticket goes on with the other work.
- **Alternative tool** (70% of the agents, on 65% of the failures they do not retry): the
  same agent switches to another operation of its own (``kb.search_articles`` ->
  ``kb.search_web``, ``billing.issue_refund`` -> ``billing.issue_credit``, ...) whose success
  recovers the failed call; reported (a trait) as ``recovery_success``, as a plain
  ``task_completion``, with ``success_factors`` ``{"strategy": "alternative_tool"}``, or both
  (a success after retries likewise, with ``{"strategy": "retry"}``). The alternative can
  fail too (then escalation or giving up).
- **Escalation** (55% of the remaining failures of the operations a human can finish:
  refunds, records, invoices, customers, replies, triage) to
  ``human_handoff.resolve_manually``: the human's success comes 2 minutes to 4 hours later
  (log-normal, median 20 min) and recovers the escalated errors; an escalation made while
  the ticket already waits for a human usually joins that handoff (one success, errors of
  several agents and operations). 30% of the handoffs are never resolved within the ticket.
  Independently, 12% of the tickets get a human review once the reply is sent
  (``resolve_manually`` too, ``validation_pass``) that recovers nothing.
- **Giving up**: the error is never recovered and the agent goes straight on with its next
  call, often the same operation for new input (a success of the same agent and operation
  seconds later that is *not* a recovery).
- **What errors say** (traits of each agent): ``recovery_strategy`` in half of the agents --
  the action that follows (``retry``; ``fallback`` or ``alternative_tool`` for the
  alternative, depending on the agent; ``escalate``), 15% of the time the agent's configured
  default instead; on giving up ``skip`` or what it meant to do (``retry``, ``fallback``,
  ``escalate``), or nothing; when the breaker opens ``retry``, ``skip`` or ``circuit_open``.
  ``recovery_attempted`` is set by 40% of the agents, when a retry, alternative or escalation
  follows (and by half of them also when the circuit breaker opens); the others never set
  it. ``is_recoverable`` by error type (50%), always (20%) or never (30%). Errors and
  successes carry ``execution_step`` for 55% of the agents.
- **Stated links**: a share ``stated_fraction`` of the (ticket, agent) pairs name the errors
  their recovering successes recover (``recovers_error_ids``).
- **Delivery** (:mod:`.delivery`): tickets start within three hours, six waves of 40
  minutes by default; a random delay per event, 12% of the events 1-4 waves late, 4%
  delivered twice; agents' clocks skewed by up to 800 ms (a human resolution after the last
  wave arrives in it).

Truth: a recovering success recovers every *reported* error of the call it completes -- the
failed attempts of a retried call, and the failed primary (with its attempts) of an
alternative tool; a human resolution recovers every error of every escalation it took in
(including a failed alternative). Not modelled: tickets reopened in a later workflow,
re-routing by triage after a tool agent gives up.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from uuid import UUID

from debug_sink.dev.synthetic import Kind, Workload
from debug_sink.dev.workloads.delivery import Delivery, Slot, number_slots, numbered, workload

__all__ = ["SupportConfig", "generate"]

HUMAN: Final = "human_handoff"
TOOL_AGENTS: Final = ("billing", "kb", "crm")
AGENTS: Final = ("triage", "billing", "kb", "crm", "responder", HUMAN)

#: Error type -> (transient: worth retrying, error_category).
ERRORS: Final[dict[str, tuple[bool, str]]] = {
    "TimeoutError": (True, "external"),
    "RateLimitError": (True, "external"),
    "HTTPError503": (True, "external"),
    "PaymentGatewayError": (True, "external"),
    "ConflictError": (True, "external"),
    "SMTPTemporaryError": (True, "external"),
    "LLMOutputParseError": (True, "agent"),
    "InvoiceNotFound": (False, "user"),
    "CustomerNotFound": (False, "user"),
    "RefundLimitExceeded": (False, "agent"),
    "PermissionDenied": (False, "framework"),
    "NoResultsError": (False, "agent"),
    "ContextLengthExceeded": (False, "agent"),
    "ContentPolicyViolation": (False, "agent"),
    "InvalidRecipient": (False, "user"),
    "RoutingError": (False, "agent"),
}


@dataclass(frozen=True, slots=True)
class Operation:
    """A tool an agent calls: how often and how it fails, and what the agent can do then."""

    failure_rate: float
    duration_s: tuple[float, float]
    errors: tuple[str, ...]
    alternative: str | None = None  # another operation of the same agent
    escalates: bool = False  # a human can finish it
    success_type: str = "task_completion"


OPERATIONS: Final[dict[tuple[str, str], Operation]] = {
    ("triage", "classify_ticket"): Operation(
        0.12, (0.8, 3.0), ("LLMOutputParseError", "RateLimitError"), escalates=True
    ),
    ("triage", "route_ticket"): Operation(
        0.06, (0.1, 0.6), ("RoutingError", "TimeoutError"), "route_default", escalates=True
    ),
    ("triage", "route_default"): Operation(0.02, (0.05, 0.2), ("TimeoutError",)),
    ("billing", "lookup_invoice"): Operation(
        0.24,
        (0.3, 2.0),
        ("TimeoutError", "HTTPError503", "InvoiceNotFound"),
        "query_ledger",
        escalates=True,
    ),
    ("billing", "query_ledger"): Operation(0.1, (1.0, 4.0), ("TimeoutError",)),
    ("billing", "issue_refund"): Operation(
        0.3,
        (0.5, 3.0),
        ("PaymentGatewayError", "RefundLimitExceeded", "TimeoutError"),
        "issue_credit",
        escalates=True,
    ),
    ("billing", "issue_credit"): Operation(0.08, (0.3, 1.5), ("PaymentGatewayError",)),
    ("kb", "search_articles"): Operation(
        0.26, (0.2, 1.5), ("TimeoutError", "RateLimitError", "NoResultsError"), "search_web"
    ),
    ("kb", "search_web"): Operation(0.12, (1.0, 5.0), ("TimeoutError", "RateLimitError")),
    ("kb", "summarize"): Operation(
        0.18, (1.5, 6.0), ("ContextLengthExceeded", "RateLimitError"), "extract_snippets"
    ),
    ("kb", "extract_snippets"): Operation(0.04, (0.2, 0.8), ("TimeoutError",)),
    ("crm", "fetch_customer"): Operation(
        0.2,
        (0.2, 1.2),
        ("TimeoutError", "CustomerNotFound", "HTTPError503"),
        "fetch_customer_cached",
        escalates=True,
    ),
    ("crm", "fetch_customer_cached"): Operation(0.05, (0.05, 0.3), ("TimeoutError",)),
    ("crm", "update_record"): Operation(
        0.26,
        (0.3, 2.0),
        ("ConflictError", "PermissionDenied", "TimeoutError"),
        "queue_update",
        escalates=True,
    ),
    ("crm", "queue_update"): Operation(0.05, (0.1, 0.5), ("TimeoutError",)),
    ("responder", "draft_reply"): Operation(
        0.2,
        (2.0, 9.0),
        ("LLMOutputParseError", "ContentPolicyViolation", "RateLimitError"),
        "draft_from_template",
        escalates=True,
        success_type="validation_pass",
    ),
    ("responder", "draft_from_template"): Operation(0.03, (0.1, 0.5), ("TimeoutError",)),
    ("responder", "send_reply"): Operation(
        0.14, (0.3, 1.5), ("SMTPTemporaryError", "InvalidRecipient"), escalates=True
    ),
}
#: A tool agent's first call and the weights of its later calls (new work each time).
PLANS: Final[dict[str, tuple[str, dict[str, float]]]] = {
    "billing": ("lookup_invoice", {"lookup_invoice": 0.6, "issue_refund": 0.4}),
    "kb": ("search_articles", {"search_articles": 0.65, "summarize": 0.35}),
    "crm": ("fetch_customer", {"fetch_customer": 0.4, "update_record": 0.6}),
}

RetryReport = Literal["attempt", "count", "none"]
Marks = Literal["type", "factors", "both", "plain"]
Action = Literal["retry", "alternative", "escalate", "give_up", "breaker"]


@dataclass(frozen=True, slots=True)
class SupportConfig:
    """Knobs of :func:`generate`."""

    workflows: int = 300
    seed: int = 303
    tool_calls: tuple[int, int] = (5, 25)  # planned calls per ticket (inclusive range)
    p_parallel: float = 0.45  # the tool agents of a ticket run in parallel
    p_degraded: float = 0.06  # a (ticket, operation) is degraded ...
    degraded_failure_rate: float = 0.75  # ... and fails this often
    p_retry_fails: float = 0.35  # a retry of a transient failure fails again
    p_alternative: float = 0.65  # after a failure that is not retried: alternative tool ...
    p_escalate: float = 0.55  # ... else escalate (if a human can finish it) ... else give up
    p_escalate_after_alternative: float = 0.4  # the alternative failed too
    p_join_handoff: float = 0.75  # an escalation joins a handoff still waiting
    p_unresolved: float = 0.3  # a handoff the human never resolves within the ticket
    p_approval: float = 0.12  # a ticket gets a human review (recovers nothing)
    human_median_s: float = 1200.0
    stated_fraction: float = 0.0  # (ticket, agent) pairs that name what they recover
    waves: int = 6
    late_fraction: float = 0.12
    late_waves: tuple[float, float] = (1.0, 4.0)
    duplicate_fraction: float = 0.04
    clock_skew_ms: int = 800
    start: datetime = datetime(2026, 4, 6, 8, 0, tzinfo=UTC)
    workflow_spread_s: float = 10800.0


@dataclass(frozen=True, slots=True)
class Traits:
    """What one agent does and reports, drawn per ticket."""

    retry_report: RetryReport
    steps: bool  # writes step rows
    logs_attempts: bool  # logs an error for an attempt that is retried
    reports_retry_count: bool
    execution_step: bool
    retries: bool  # retries transient failures
    max_retries: int
    backoff_s: float
    breaker: int | None  # failed attempts in a row that open its circuit breaker
    uses_alternative: bool
    alternative_word: str  # what it calls switching tools when it declares it
    declares: bool
    default_strategy: str  # what it declares when it does not say what it does
    sets_attempted: bool
    attempted_on_breaker: bool
    recoverable: Literal["by_type", "always", "never"]
    marks: Marks
    states: bool


def _traits(rng: random.Random, stated_fraction: float) -> Traits:
    report: RetryReport = rng.choices(("attempt", "count", "none"), (0.45, 0.3, 0.25))[0]
    return Traits(
        retry_report=report,
        steps=report == "attempt" or (report == "none" and rng.random() < 0.5),
        logs_attempts=report != "count" or rng.random() < 0.5,
        reports_retry_count=report == "count" or (report == "attempt" and rng.random() < 0.5),
        execution_step=rng.random() < 0.55,
        retries=rng.random() < 0.85,
        max_retries=rng.randint(1, 3),
        backoff_s=rng.uniform(0.5, 2.0),
        breaker=rng.choice((3, 4)) if rng.random() < 0.5 else None,
        uses_alternative=rng.random() < 0.7,
        alternative_word=rng.choice(("fallback", "alternative_tool")),
        declares=rng.random() < 0.5,
        default_strategy=rng.choice(("retry", "retry", "fallback", "escalate")),
        sets_attempted=rng.random() < 0.4,
        attempted_on_breaker=rng.random() < 0.5,
        recoverable=rng.choices(("by_type", "always", "never"), (0.5, 0.2, 0.3))[0],
        marks=rng.choices(("type", "factors", "both", "plain"), (0.3, 0.2, 0.2, 0.3))[0],
        states=rng.random() < stated_fraction,
    )


@dataclass(slots=True)
class _Handoff:
    """Errors handed to a human, and when (if ever) the human resolves them."""

    opened: datetime
    resolved: datetime | None
    errors: list[UUID] = field(default_factory=list)


@dataclass(slots=True)
class _Ticket:
    cfg: SupportConfig
    rng: random.Random
    correlation_id: UUID
    traits: dict[str, Traits]
    skew: dict[str, timedelta]
    free_at: dict[str, datetime]
    degraded: set[tuple[str, str]]
    rows: list[tuple[Kind, dict[str, Any], Slot | None]] = field(default_factory=list)
    truth: set[tuple[UUID, UUID]] = field(default_factory=set)
    stated: set[tuple[UUID, UUID]] = field(default_factory=set)
    unrecovered: int = 0
    failures_in_a_row: dict[tuple[str, str], int] = field(default_factory=dict)
    open_breakers: set[tuple[str, str]] = field(default_factory=set)
    handoffs: list[_Handoff] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)

    def new_id(self) -> UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    # -- rows -------------------------------------------------------------------------------

    def book(self, agent: str, operation: str, ready: datetime) -> tuple[datetime, datetime]:
        """The agent makes one call at a time: the call's start and end."""
        started = max(ready, self.free_at[agent]) + timedelta(seconds=self.rng.uniform(0.02, 0.3))
        ended = started + timedelta(
            seconds=self.rng.uniform(*OPERATIONS[agent, operation].duration_s)
        )
        self.free_at[agent] = ended
        return started, ended

    def step_row(
        self,
        agent: str,
        operation: str,
        slot: Slot,
        *,
        attempt: int,
        started: datetime,
        ended: datetime,
        status: str,
        error_id: UUID | None = None,
        success_id: UUID | None = None,
        step_type: str = "execution",
    ) -> None:
        if not self.traits[agent].steps:
            return
        self.rows.append(
            (
                "step",
                {
                    "id": self.new_id(),
                    "correlation_id": self.correlation_id,
                    "attempt": attempt,
                    "step_type": step_type,
                    "agent_name": agent,
                    "operation_name": operation,
                    "status": status,
                    "error_event_id": error_id,
                    "success_event_id": success_id,
                    "started_at": started + self.skew[agent],
                    "completed_at": ended + self.skew[agent],
                    "duration_ms": int((ended - started) / timedelta(milliseconds=1)),
                },
                slot,
            )
        )

    def error_row(
        self,
        agent: str,
        operation: str,
        slot: Slot,
        *,
        error_type: str,
        at: datetime,
        action: Action,
    ) -> UUID:
        """An error; ``action`` is what the agent does next, which it may declare."""
        rng, traits = self.rng, self.traits[agent]
        transient, category = ERRORS[error_type]
        strategy: str | None = None
        if traits.declares:
            if action == "give_up":
                strategy = rng.choices(
                    ("skip", "retry", "fallback", "escalate", None), (0.35, 0.25, 0.15, 0.1, 0.15)
                )[0]
            elif action == "breaker":
                strategy = rng.choices(("retry", "skip", "circuit_open"), (0.5, 0.3, 0.2))[0]
            elif rng.random() < 0.15:
                strategy = traits.default_strategy
            else:
                strategy = traits.alternative_word if action == "alternative" else action
        attempted = False
        if traits.sets_attempted:
            attempted = action in ("retry", "alternative", "escalate") or (
                action == "breaker" and traits.attempted_on_breaker
            )
        recoverable = {"by_type": transient, "always": True, "never": False}[traits.recoverable]
        error_id = self.new_id()
        self.rows.append(
            (
                "error",
                {
                    "id": error_id,
                    "correlation_id": self.correlation_id,
                    "error_type": error_type,
                    "error_category": category,
                    "error_severity": rng.choices(("low", "medium", "high"), (0.3, 0.5, 0.2))[0],
                    "error_message": f"{operation}: {error_type}",
                    "agent_name": agent,
                    "operation_name": operation,
                    "is_recoverable": recoverable,
                    "recovery_attempted": attempted,
                    "recovery_successful": None,
                    "recovery_strategy": strategy,
                    "occurred_at": at + self.skew[agent],
                },
                slot if traits.execution_step else None,
            )
        )
        return error_id

    def success_row(
        self,
        agent: str,
        operation: str,
        slot: Slot | None,
        *,
        at: datetime,
        success_type: str,
        retry_count: int = 0,
        factors: dict[str, Any] | None = None,
        recovers: list[UUID] | None = None,
    ) -> UUID:
        traits = self.traits[agent]
        success_id = self.new_id()
        states = bool(recovers) and traits.states
        self.rows.append(
            (
                "success",
                {
                    "id": success_id,
                    "correlation_id": self.correlation_id,
                    "success_type": success_type,
                    "operation_name": operation,
                    "agent_name": agent,
                    "retry_count": retry_count,
                    "success_factors": factors,
                    "occurred_at": at + self.skew[agent],
                    "recovers_error_ids": list(recovers) if states and recovers else None,
                },
                slot if traits.execution_step else None,
            )
        )
        if recovers:
            self.truth.update((error, success_id) for error in recovers)
            if states:
                self.stated.update((error, success_id) for error in recovers)
        return success_id

    # -- behaviour --------------------------------------------------------------------------

    def new_slot(self, at: datetime) -> Slot:
        slot = Slot(at)
        self.slots.append(slot)
        return slot

    def failure_rate(self, agent: str, operation: str, attempt: int) -> float:
        rate = OPERATIONS[agent, operation].failure_rate
        if attempt > 1:
            rate = self.cfg.p_retry_fails
        if (agent, operation) in self.degraded:
            rate = max(rate, self.cfg.degraded_failure_rate)
        return rate

    def call(self, agent: str, operation: str, ready: datetime) -> datetime:
        """One planned call with whatever the agent does when it fails; when the agent is
        free again."""
        rng, traits = self.rng, self.traits[agent]
        spec = OPERATIONS[agent, operation]
        key = (agent, operation)
        if key in self.open_breakers:  # the breaker is open: the call is skipped
            at = max(ready, self.free_at[agent])
            self.step_row(
                agent,
                operation,
                self.new_slot(at),
                attempt=1,
                started=at,
                ended=at,
                status="skipped",
            )
            return at
        errors: list[UUID] = []
        attempt, at = 1, ready
        slot: Slot | None = None
        error_type = ""
        while True:
            started, ended = self.book(agent, operation, at)
            if slot is None or traits.retry_report == "none":
                slot, attempt_no = self.new_slot(started), 1
            else:
                attempt_no = attempt
            if rng.random() >= self.failure_rate(agent, operation, attempt):
                self.failures_in_a_row[key] = 0
                retries = attempt - 1
                # an agent marks a success after retries as a recovery, whether or not it
                # logged the failed attempts
                marks = traits.marks if retries else "plain"
                factors = None
                if marks in ("factors", "both"):
                    factors = {"strategy": "retry", "attempts": attempt}
                success = self.success_row(
                    agent,
                    operation,
                    slot,
                    at=ended,
                    success_type=(
                        "recovery_success" if marks in ("type", "both") else spec.success_type
                    ),
                    retry_count=retries if traits.reports_retry_count else 0,
                    factors=factors,
                    recovers=errors,
                )
                self.step_row(
                    agent,
                    operation,
                    slot,
                    attempt=attempt_no,
                    started=started,
                    ended=ended,
                    status="completed",
                    success_id=success,
                )
                return ended
            if not error_type or rng.random() < 0.2:
                error_type = rng.choice(spec.errors)
            self.failures_in_a_row[key] = self.failures_in_a_row.get(key, 0) + 1
            action = self.next_action(agent, operation, error_type, attempt)
            if action != "retry" or traits.logs_attempts:
                error = self.error_row(
                    agent, operation, slot, error_type=error_type, at=ended, action=action
                )
                errors.append(error)
                self.step_row(
                    agent,
                    operation,
                    slot,
                    attempt=attempt_no,
                    started=started,
                    ended=ended,
                    status="failed",
                    error_id=error,
                )
            if action != "retry":
                break
            at = ended + timedelta(
                seconds=traits.backoff_s * 2 ** (attempt - 1) * rng.uniform(0.8, 1.2)
            )
            attempt += 1
        if action == "alternative":
            assert spec.alternative is not None
            return self.alternative(agent, operation, spec.alternative, errors, ended)
        if action == "escalate":
            self.escalate(errors, ended)
        else:
            if action == "breaker":
                self.open_breakers.add(key)
            self.unrecovered += len(errors)
        return ended

    def next_action(self, agent: str, operation: str, error_type: str, attempt: int) -> Action:
        """What the agent does after a failed attempt."""
        cfg, rng, traits = self.cfg, self.rng, self.traits[agent]
        spec = OPERATIONS[agent, operation]
        if traits.breaker is not None and self.failures_in_a_row[agent, operation] >= (
            traits.breaker
        ):
            return "breaker"
        transient, _ = ERRORS[error_type]
        if transient and traits.retries and attempt <= traits.max_retries:
            return "retry"
        if spec.alternative and traits.uses_alternative and rng.random() < cfg.p_alternative:
            return "alternative"
        if spec.escalates and rng.random() < cfg.p_escalate:
            return "escalate"
        return "give_up"

    def alternative(
        self, agent: str, operation: str, alternative: str, errors: list[UUID], ready: datetime
    ) -> datetime:
        """Switch to another tool of the same agent; its success recovers ``errors``."""
        cfg, rng, traits = self.cfg, self.rng, self.traits[agent]
        spec = OPERATIONS[agent, alternative]
        started, ended = self.book(agent, alternative, ready)
        slot = self.new_slot(started)
        if rng.random() >= self.failure_rate(agent, alternative, 1):
            factors = None
            if traits.marks in ("factors", "both"):
                factors = {"strategy": "alternative_tool", "replaces": operation}
            success = self.success_row(
                agent,
                alternative,
                slot,
                at=ended,
                success_type=(
                    "recovery_success" if traits.marks in ("type", "both") else "task_completion"
                ),
                factors=factors,
                recovers=errors,
            )
            self.step_row(
                agent,
                alternative,
                slot,
                attempt=1,
                started=started,
                ended=ended,
                status="completed",
                success_id=success,
            )
            return ended
        escalate = OPERATIONS[agent, operation].escalates and (
            rng.random() < cfg.p_escalate_after_alternative
        )
        error = self.error_row(
            agent,
            alternative,
            slot,
            error_type=rng.choice(spec.errors),
            at=ended,
            action="escalate" if escalate else "give_up",
        )
        self.step_row(
            agent,
            alternative,
            slot,
            attempt=1,
            started=started,
            ended=ended,
            status="failed",
            error_id=error,
        )
        errors = [*errors, error]
        if escalate:
            self.escalate(errors, ended)
        else:
            self.unrecovered += len(errors)
        return ended

    def escalate(self, errors: list[UUID], at: datetime) -> None:
        """Hand ``errors`` to a human: a handoff still waiting takes them in, or a new one."""
        cfg, rng = self.cfg, self.rng
        opened = at + timedelta(seconds=rng.uniform(0.5, 5.0))
        waiting = [
            h
            for h in self.handoffs
            if (h.resolved is None or h.resolved > opened + timedelta(seconds=30))
            and len(h.errors) + len(errors) <= 16
        ]
        if waiting and rng.random() < cfg.p_join_handoff:
            waiting[-1].errors.extend(errors)
            return
        resolved = None
        if rng.random() >= cfg.p_unresolved:
            resolved = opened + self.human_delay()
        self.handoffs.append(_Handoff(opened, resolved, list(errors)))

    def human_delay(self) -> timedelta:
        """Minutes to hours: log-normal around the median, 2 min to 4 h."""
        seconds = self.cfg.human_median_s * math.exp(self.rng.gauss(0.0, 1.0))
        return timedelta(seconds=min(max(seconds, 120.0), 14400.0))

    def human(self, handoff: _Handoff, *, approval: bool = False) -> None:
        """The human's resolution of ``handoff`` (if it comes): a success and a step."""
        if handoff.resolved is None:
            self.unrecovered += len(handoff.errors)
            return
        traits = self.traits[HUMAN]
        recovering = bool(handoff.errors)
        slot = self.new_slot(handoff.opened)
        factors: dict[str, Any] | None = None
        if approval:
            success_type = "validation_pass"
            factors = {"reason": "approval"} if traits.marks in ("factors", "both") else None
        else:
            success_type = (
                "recovery_success" if traits.marks in ("type", "both") else "task_completion"
            )
            if traits.marks in ("factors", "both"):
                factors = {"strategy": "escalation", "resolved_by": "human"}
        success = self.success_row(
            HUMAN,
            "resolve_manually",
            slot,
            at=handoff.resolved,
            success_type=success_type,
            factors=factors,
            recovers=handoff.errors if recovering else None,
        )
        self.step_row(
            HUMAN,
            "resolve_manually",
            slot,
            attempt=1,
            started=handoff.opened,
            ended=handoff.resolved,
            status="completed",
            success_id=success,
            step_type="escalation",
        )

    def run_plan(self, agent: str, plan: list[str], ready: datetime) -> datetime:
        at = ready
        for operation in plan:
            at = self.call(agent, operation, at)
            at += timedelta(seconds=self.rng.uniform(0.1, 2.0))  # the agent reads the result
        return at


def _plan(rng: random.Random, agent: str, calls: int) -> list[str]:
    first, later = PLANS[agent]
    return [first, *rng.choices(list(later), list(later.values()), k=calls - 1)]


def _ticket(cfg: SupportConfig, rng: random.Random) -> _Ticket:
    start = cfg.start + timedelta(seconds=rng.uniform(0, cfg.workflow_spread_s))
    skew_s = cfg.clock_skew_ms / 1000
    ticket = _Ticket(
        cfg,
        rng,
        uuid.UUID(int=rng.getrandbits(128), version=4),
        traits={agent: _traits(rng, cfg.stated_fraction) for agent in AGENTS},
        skew={agent: timedelta(seconds=rng.uniform(-skew_s, skew_s)) for agent in AGENTS},
        free_at=dict.fromkeys(AGENTS, start),
        degraded={key for key in OPERATIONS if rng.random() < cfg.p_degraded},
    )
    tool_agents = rng.sample(TOOL_AGENTS, rng.choices((1, 2, 3), (0.45, 0.4, 0.15))[0])
    drafts = rng.choice((1, 1, 2))
    tool_calls = max(len(tool_agents), rng.randint(*cfg.tool_calls) - 3 - drafts)
    # split the tool calls between the agents, each at least one
    cuts = sorted(rng.sample(range(1, tool_calls), len(tool_agents) - 1))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, tool_calls], strict=True)]
    at = ticket.call("triage", "classify_ticket", start)
    at = ticket.call("triage", "route_ticket", at)
    if rng.random() < cfg.p_parallel:
        at = max(
            ticket.run_plan(agent, _plan(rng, agent, size), at)
            for agent, size in zip(tool_agents, sizes, strict=True)
        )
    else:
        for agent, size in zip(tool_agents, sizes, strict=True):
            at = ticket.run_plan(agent, _plan(rng, agent, size), at)
    at = ticket.run_plan("responder", ["draft_reply"] * drafts + ["send_reply"], at)
    for handoff in ticket.handoffs:
        ticket.human(handoff)
    if rng.random() < cfg.p_approval:
        opened = at - timedelta(seconds=rng.uniform(1.0, 10.0))
        ticket.human(_Handoff(opened, opened + ticket.human_delay()), approval=True)
    number_slots(ticket.slots)
    return ticket


def generate(cfg: SupportConfig | None = None) -> Workload:
    """The tickets' events in arrival waves and the true recoveries; deterministic per
    config."""
    cfg = cfg or SupportConfig()
    rng = random.Random(cfg.seed)
    tickets = [_ticket(cfg, rng) for _ in range(cfg.workflows)]
    events = [row for ticket in tickets for row in numbered(ticket.rows)]
    how = Delivery(
        start=cfg.start,
        span_s=cfg.workflow_spread_s + 3600.0,
        waves=cfg.waves,
        late_fraction=cfg.late_fraction,
        late_waves=cfg.late_waves,
        duplicate_fraction=cfg.duplicate_fraction,
    )
    return workload(tickets, events, rng, how)
