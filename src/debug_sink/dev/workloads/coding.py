"""Software-engineering (coding) agents: a held-out labeled workload for the correlator.

Owns :func:`generate` (pure, seeded). Written from a description of a coding fleet, not from
the correlator's rules or weights, with conventions that differ from
:mod:`debug_sink.dev.synthetic` (the tuning workload), :mod:`.pipelines`, :mod:`.branches`
and :mod:`.support`:

- **Shape.** A workflow is one coding task (a ticket: fix a bug, add a feature).
  ``planner`` plans it (``plan_task``) and splits it (``split_subtasks``) into 1-4 subtasks,
  dealt round-robin to 1-3 coders (``coder-1`` ... ``coder-3``; 50% / 35% / 15% of the tasks,
  never more coders than subtasks). The coders work **in parallel**, each on its subtasks
  one after the other. A subtask: the coder reads 1-3 files (``read_file``), asks the LLM for
  a patch, applies it (``apply_patch``), runs a command (``run_command``, 50%), then
  ``tester.run_tests`` until it passes (the fix-and-retest loop), ``tester.run_linter``
  likewise, ``run_tests`` again if the linter made it patch, and finally
  ``reviewer.review_diff``. ``tester`` and ``reviewer`` are services: the runs and reviews of
  parallel subtasks overlap (same agent, same operation, different subtasks). ``run_tests``
  and ``run_linter`` run at least once per subtask, so they recur as new work in every task.
- **LLM calls** (the planner's two operations, every patch, every review) go through
  ``llm_router.complete`` on the primary model: it fails 6% of the time (``RateLimitError``
  60%, ``APITimeoutError`` 40%), 35% in the 8% of tasks where the primary is degraded. The
  router retries in place (if it retries at all, a trait) up to its budget, then **falls
  back** to the secondary model, reported (a router trait, 50/50) as operation
  ``complete_fallback`` (a new step) or as ``complete`` again with ``success_factors``
  ``{"model": "secondary"}`` (these routers put ``{"model": "primary"}`` on primary
  successes). The secondary fails 5% of the time (``APIError``): the call is abandoned and
  so is the caller's work item (the task after a planner call, the subtask after a coder
  call, the review after a reviewer call).
- **Fix-and-retest loop** (the main convention): the first ``run_tests`` of a subtask fails
  (``TestFailure``) in 40% of the subtasks, a re-run after lint fixes in 15%. Each failure is
  followed by a fix (``read_file`` 50%, an LLM call, ``apply_patch``, ``run_command`` 20%)
  and another ``run_tests``; a loop has 1-4 failing runs (45% / 28% / 17% / 10%) and then
  passes, or in 20% of the loops is **given up** after its last failure: the subtask is
  dropped (no lint, no review) and in 30% of those the coder drops its remaining subtasks
  too. The linter loop is the same with ``LintError``: 25% of the first runs fail, 1-3
  failures (70% / 25% / 5%), each followed by an ``apply_patch``; 10% are given up and the
  subtask goes on to review with its lint errors.
- **Transient tool errors** (``read_file`` ``IOError`` 3%, ``run_command`` ``TimeoutError``
  10%, the router's errors above): 85% of the agents retry in place after an exponential
  backoff (1-4 s base), up to 1-3 retries (a trait), a retry failing again 30% of the time
  (60% on a degraded primary). Out of retries, or not retrying, the coder goes on without
  that file or command. How an agent reports a retry is a trait, drawn with its step rows:
  ``attempt`` (36% of the agents: a step row per attempt, same ``step_number``, ``attempt``
  + 1; half of them also set ``retry_count``), ``count`` (34%: ``retry_count`` on the
  success, at most one step row per call) or ``none`` (30%: ``retry_count`` 0, each attempt
  a new step with ``attempt`` 1 -- the retry looks like a fresh call).
- **Human approval**: 7% of the reviews fail with ``PolicyViolation``; the reviewer escalates
  and ``human.approve_change`` succeeds 5 minutes to 2 hours later (log-normal, median 20
  min) -- or, for 25% of the escalations, never within the task. Besides, 4% of the
  passing reviews ask for a routine sign-off (``success_factors``
  ``{"requires_approval": true}``), answered by an ``approve_change`` that recovers nothing.
- **What agents report** (traits of each (task, agent) pair): step rows 60%;
  ``execution_step`` on errors and successes 50%; ``recovery_strategy`` 25%, always the
  agent's configured default (``retry`` 45%, ``fallback`` 20%, ``skip`` 15%, ``escalate``
  10%, ``abort`` 10%) whatever follows; ``recovery_attempted`` 30%, true when a retry,
  fallback, fix or escalation follows the error; ``is_recoverable`` by error type (40%),
  always (20%) or never (40%). Successes are ``task_completion``, except: ``recovery_success``
  for the recovering successes the agent knows about (a retry it reports, the router's
  fallback, a passing re-run, an approval) in 30% of the agents; ``validation_pass`` for
  every other test and linter pass of half the testers. Half the testers put
  ``{"passed": n, "failed": 0}`` in a passing ``run_tests``'s ``success_factors``.
- **Stated links**: a share ``stated_fraction`` of the (task, agent) pairs name, in
  ``recovers_error_ids`` of each recovering success, exactly the errors it recovers.
- **Delivery** (:mod:`.delivery`): 300 tasks start within three hours; six waves of 35
  minutes; a random delay per event, 10% of the events 1-3 waves late, 3% delivered twice;
  in 5% of the tasks one coder is offline (all its events 1-2 waves late); agents' clocks
  skewed by up to 500 ms (approvals after the last wave arrive in it).

Truth, per recovering success (every other success recovers nothing):

- a passing ``run_tests`` (``run_linter``) of a subtask recovers every failed ``run_tests``
  (``run_linter``) of that subtask since its previous pass of that operation -- its loop;
  the failures of a given-up loop are never recovered, not by a pass of another subtask nor
  by a later pass of the same operation;
- the successful attempt of a call retried in place (``read_file``, ``run_command``,
  ``llm_router.complete``) recovers the errors of that call's earlier attempts, however the
  retry is reported;
- the router's secondary success recovers every primary error of that call;
- ``human.approve_change`` recovers the ``PolicyViolation`` it was escalated for.

Never recovered: transient errors out of retries, errors of abandoned LLM calls (``APIError``
and the primary's), given-up loops, escalations never approved. Not modelled: tasks spanning
workflows, merge conflicts between subtasks, the reviewer requesting changes.
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
from debug_sink.dev.workloads.delivery import (
    Delivery,
    Slot,
    number_slots,
    numbered,
    unrecovered_errors,
    workload,
)

__all__ = ["CodingConfig", "generate"]

PLANNER: Final = "planner"
TESTER: Final = "tester"
REVIEWER: Final = "reviewer"
ROUTER: Final = "llm_router"
HUMAN: Final = "human"
CODERS: Final = ("coder-1", "coder-2", "coder-3")
AGENTS: Final = (PLANNER, *CODERS, TESTER, REVIEWER, ROUTER, HUMAN)

#: Error type -> (recoverable by its type, error_category, error_severity).
ERRORS: Final[dict[str, tuple[bool, str, str]]] = {
    "TestFailure": (True, "agent", "medium"),
    "LintError": (True, "agent", "low"),
    "TimeoutError": (True, "external", "medium"),
    "IOError": (True, "framework", "low"),
    "RateLimitError": (True, "external", "low"),
    "APITimeoutError": (True, "external", "medium"),
    "APIError": (False, "external", "high"),
    "PolicyViolation": (False, "agent", "high"),
}
#: A coder's tool calls: (transient error type, duration in s); ``apply_patch`` never fails.
TOOLS: Final[dict[str, tuple[str, tuple[float, float]]]] = {
    "read_file": ("IOError", (0.02, 0.3)),
    "apply_patch": ("IOError", (0.05, 0.8)),
    "run_command": ("TimeoutError", (3.0, 60.0)),
}

RetryReport = Literal["attempt", "count", "none"]


@dataclass(frozen=True, slots=True)
class CodingConfig:
    """Knobs of :func:`generate`."""

    workflows: int = 300
    seed: int = 404
    subtasks: tuple[int, int] = (1, 4)  # per task (inclusive range)
    coder_weights: tuple[float, float, float] = (0.5, 0.35, 0.15)  # 1, 2 or 3 coders
    p_first_run_fails: float = 0.4  # the first run_tests of a subtask fails
    p_rerun_fails: float = 0.15  # the run_tests after lint fixes fails
    loop_weights: tuple[float, float, float, float] = (0.45, 0.28, 0.17, 0.1)  # 1-4 failures
    p_loop_given_up: float = 0.2
    p_drop_rest: float = 0.3  # after a given-up subtask the coder drops its other subtasks
    p_lint_fails: float = 0.25
    lint_weights: tuple[float, float, float] = (0.7, 0.25, 0.05)  # 1-3 failures
    p_lint_given_up: float = 0.1
    p_command: float = 0.5  # a subtask runs a command after its first patch ...
    p_fix_command: float = 0.2  # ... a fix after its patch
    p_read_error: float = 0.03  # IOError
    p_command_timeout: float = 0.1  # TimeoutError
    p_llm_error: float = 0.06
    p_llm_degraded: float = 0.08  # tasks whose primary model is degraded ...
    degraded_llm_error: float = 0.35  # ... and fails this often
    p_retry_fails: float = 0.3  # a retry fails again (a degraded primary: 0.6)
    p_secondary_fails: float = 0.05
    p_policy_violation: float = 0.07
    p_signoff: float = 0.04  # a passing review asks for a routine human sign-off
    p_never_approved: float = 0.25
    human_median_s: float = 1200.0
    human_range_s: tuple[float, float] = (300.0, 7200.0)
    stated_fraction: float = 0.0  # (task, agent) pairs that name what they recover
    waves: int = 6
    late_fraction: float = 0.1
    late_waves: tuple[float, float] = (1.0, 3.0)
    duplicate_fraction: float = 0.03
    p_offline: float = 0.05  # one coder of the task is offline ...
    offline_waves: tuple[float, float] = (1.0, 2.0)  # ... its events this many waves late
    clock_skew_ms: int = 500
    start: datetime = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
    workflow_spread_s: float = 10800.0


@dataclass(frozen=True, slots=True)
class Traits:
    """What one agent does and reports, drawn per task."""

    steps: bool  # writes step rows
    retry_report: RetryReport
    reports_retry_count: bool
    retries: bool  # retries transient errors in place
    max_retries: int
    backoff_s: float
    execution_step: bool
    declares: bool  # fills recovery_strategy ...
    default_strategy: str  # ... always with its configured default
    sets_attempted: bool
    recoverable: Literal["by_type", "always", "never"]
    recovery_type: bool  # types the recoveries it knows about recovery_success
    validation_type: bool  # a tester: its passes are validation_pass
    test_counts: bool  # a tester: passing runs report their counts
    fallback_report: Literal["operation", "factors"]  # a router: how its fallback shows
    states: bool


def _traits(rng: random.Random, stated_fraction: float) -> Traits:
    steps = rng.random() < 0.6
    with_steps: RetryReport = rng.choices(("attempt", "count", "none"), (0.6, 0.2, 0.2))[0]
    without_steps: RetryReport = rng.choices(("count", "none"), (0.55, 0.45))[0]
    report = with_steps if steps else without_steps
    half = rng.random() < 0.5
    return Traits(
        steps=steps,
        retry_report=report,
        reports_retry_count=report == "count" or (report == "attempt" and half),
        retries=rng.random() < 0.85,
        max_retries=rng.randint(1, 3),
        backoff_s=rng.uniform(1.0, 4.0),
        execution_step=rng.random() < 0.5,
        declares=rng.random() < 0.25,
        default_strategy=rng.choices(
            ("retry", "fallback", "skip", "escalate", "abort"), (0.45, 0.2, 0.15, 0.1, 0.1)
        )[0],
        sets_attempted=rng.random() < 0.3,
        recoverable=rng.choices(("by_type", "always", "never"), (0.4, 0.2, 0.4))[0],
        recovery_type=rng.random() < 0.3,
        validation_type=rng.random() < 0.5,
        test_counts=rng.random() < 0.5,
        fallback_report=rng.choice(("operation", "factors")),
        states=rng.random() < stated_fraction,
    )


@dataclass(slots=True)
class _Call:
    """One call of an agent: its step (slot), the attempts on it, the errors logged so far."""

    agent: str
    slot: Slot | None = None
    tries: int = 0
    started: datetime | None = None
    errors: list[UUID] = field(default_factory=list)


@dataclass(slots=True)
class _Task:
    cfg: CodingConfig
    rng: random.Random
    correlation_id: UUID
    traits: dict[str, Traits]
    skew: dict[str, timedelta]
    degraded_llm: bool
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

    def attempt(
        self,
        call: _Call,
        operation: str,
        started: datetime,
        ended: datetime,
        *,
        fails: bool,
        error_type: str = "",
        message: str = "",
        follows: bool = False,
        last: bool = True,
        new_step: bool = False,
        recovers: list[UUID] | None = None,
        known: bool = True,
        retry_count: int = 0,
        factors: dict[str, Any] | None = None,
        validation: bool = False,
        step_type: str = "execution",
    ) -> UUID:
        """One attempt of ``call``: an error or a success, and the step row as the agent
        reports it. ``follows``: a retry, fallback, fix or escalation follows the error;
        ``last``: no other attempt goes on the same step; ``recovers``: the errors a success
        recovers (default: the call's errors); ``known``: the agent knows it recovered them."""
        traits = self.traits[call.agent]
        if call.slot is None or new_step or traits.retry_report == "none":
            call.slot = Slot(started)
            self.slots.append(call.slot)
            call.started, call.tries = started, 1
        else:
            call.tries += 1
        number = call.tries if traits.retry_report == "attempt" else 1
        step_started = call.started if traits.retry_report == "count" else started
        assert step_started is not None
        if fails:
            event = self.error_row(
                call.agent,
                operation,
                call.slot,
                error_type=error_type,
                message=message or f"{operation}: {error_type}",
                at=ended,
                follows=follows,
            )
            call.errors.append(event)
            if traits.retry_report == "count" and not last:
                return event  # this agent's step shows only the call's outcome
        else:
            event = self.success_row(
                call.agent,
                operation,
                call.slot,
                at=ended,
                recovers=call.errors if recovers is None else recovers,
                known=known,
                retry_count=retry_count,
                factors=factors,
                validation=validation,
            )
        if traits.steps:
            self.rows.append(
                (
                    "step",
                    {
                        "id": self.new_id(),
                        "correlation_id": self.correlation_id,
                        "attempt": number,
                        "step_type": step_type,
                        "agent_name": call.agent,
                        "operation_name": operation,
                        "status": "failed" if fails else "completed",
                        "error_event_id": event if fails else None,
                        "success_event_id": None if fails else event,
                        "started_at": step_started + self.skew[call.agent],
                        "completed_at": ended + self.skew[call.agent],
                        "duration_ms": int((ended - step_started) / timedelta(milliseconds=1)),
                    },
                    call.slot,
                )
            )
        return event

    def error_row(
        self,
        agent: str,
        operation: str,
        slot: Slot,
        *,
        error_type: str,
        message: str,
        at: datetime,
        follows: bool,
    ) -> UUID:
        traits = self.traits[agent]
        by_type, category, severity = ERRORS[error_type]
        error_id = self.new_id()
        self.rows.append(
            (
                "error",
                {
                    "id": error_id,
                    "correlation_id": self.correlation_id,
                    "error_type": error_type,
                    "error_category": category,
                    "error_severity": severity,
                    "error_message": message,
                    "agent_name": agent,
                    "operation_name": operation,
                    "is_recoverable": {"by_type": by_type, "always": True, "never": False}[
                        traits.recoverable
                    ],
                    "recovery_attempted": traits.sets_attempted and follows,
                    "recovery_successful": None,
                    "recovery_strategy": traits.default_strategy if traits.declares else None,
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
        slot: Slot,
        *,
        at: datetime,
        recovers: list[UUID],
        known: bool,
        retry_count: int,
        factors: dict[str, Any] | None,
        validation: bool,
    ) -> UUID:
        traits = self.traits[agent]
        success_id = self.new_id()
        if recovers and known and traits.recovery_type:
            success_type = "recovery_success"
        elif validation and traits.validation_type:
            success_type = "validation_pass"
        else:
            success_type = "task_completion"
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
                    "recovers_error_ids": list(recovers) if states else None,
                },
                slot if traits.execution_step else None,
            )
        )
        self.truth.update((error, success_id) for error in recovers)
        if states:
            self.stated.update((error, success_id) for error in recovers)
        return success_id

    # -- calls ------------------------------------------------------------------------------

    def backoff(self, agent: str, attempt: int) -> timedelta:
        base = self.traits[agent].backoff_s
        return timedelta(seconds=base * 2 ** (attempt - 1) * self.rng.uniform(0.8, 1.2))

    def tool(self, agent: str, operation: str, ready: datetime) -> datetime:
        """A tool call of a coder, retried in place on a transient error; when it ends (out
        of retries, the coder goes on without it)."""
        cfg, rng, traits = self.cfg, self.rng, self.traits[agent]
        error_type, duration = TOOLS[operation]
        failure_rate = {"read_file": cfg.p_read_error, "run_command": cfg.p_command_timeout}
        call, at = _Call(agent), ready
        while True:
            started = self.after(at, 0.02, 0.3)
            ended = self.after(started, *duration)
            rate = failure_rate.get(operation, 0.0) if not call.tries else cfg.p_retry_fails
            if rng.random() >= rate:
                retries = len(call.errors)
                self.attempt(
                    call,
                    operation,
                    started,
                    ended,
                    fails=False,
                    known=traits.retry_report != "none",
                    retry_count=retries if traits.reports_retry_count else 0,
                )
                return ended
            retry = traits.retries and len(call.errors) < traits.max_retries
            self.attempt(
                call,
                operation,
                started,
                ended,
                fails=True,
                error_type=error_type,
                follows=retry,
                last=not retry,
            )
            if not retry:
                return ended
            at = ended + self.backoff(agent, len(call.errors))

    def llm(self, ready: datetime) -> tuple[bool, datetime]:
        """One LLM call through the router: primary, retries, fallback to the secondary.
        (answered, when)."""
        cfg, rng, traits = self.cfg, self.rng, self.traits[ROUTER]
        rate = cfg.degraded_llm_error if self.degraded_llm else cfg.p_llm_error
        retry_rate = 0.6 if self.degraded_llm else cfg.p_retry_fails
        by_factors = traits.fallback_report == "factors"
        call, at = _Call(ROUTER), ready
        while True:
            started = self.after(at, 0.01, 0.1)
            if rng.random() >= (retry_rate if call.tries else rate):
                ended = self.after(started, 1.5, 25.0)
                retries = len(call.errors)
                self.attempt(
                    call,
                    "complete",
                    started,
                    ended,
                    fails=False,
                    known=traits.retry_report != "none",
                    retry_count=retries if traits.reports_retry_count else 0,
                    factors={"model": "primary"} if by_factors else None,
                    step_type="llm_call",
                )
                return True, ended
            error_type = rng.choices(("RateLimitError", "APITimeoutError"), (0.6, 0.4))[0]
            if error_type == "RateLimitError":
                ended = self.after(started, 0.1, 0.6)
            else:
                ended = self.after(started, 30.0, 60.0)
            retry = traits.retries and len(call.errors) < traits.max_retries
            self.attempt(
                call,
                "complete",
                started,
                ended,
                fails=True,
                error_type=error_type,
                message=f"primary model: {error_type}",
                follows=True,  # a retry or the fallback
                last=not retry and not by_factors,
                step_type="llm_call",
            )
            if not retry:
                break
            at = ended + self.backoff(ROUTER, len(call.errors))
        operation = "complete" if by_factors else "complete_fallback"
        started = self.after(ended, 0.01, 0.2)
        if rng.random() >= cfg.p_secondary_fails:
            ended = self.after(started, 1.5, 25.0)
            failed = len(call.errors)
            self.attempt(
                call,
                operation,
                started,
                ended,
                fails=False,
                new_step=not by_factors,
                retry_count=failed if by_factors and traits.reports_retry_count else 0,
                factors={"model": "secondary"} if by_factors else None,
                step_type="llm_call",
            )
            return True, ended
        ended = self.after(started, 0.5, 5.0)
        self.attempt(
            call,
            operation,
            started,
            ended,
            fails=True,
            error_type="APIError",
            message="secondary model: 503 Service Unavailable",
            new_step=not by_factors,
            step_type="llm_call",
        )
        return False, ended

    def with_llm(self, agent: str, operation: str, ready: datetime) -> tuple[bool, datetime]:
        """A planner's operation: it asks the LLM once (the router's call inside it) and is
        abandoned with the call."""
        started = self.after(ready, 0.02, 0.5)
        answered, at = self.llm(self.after(started, 0.01, 0.2))
        if not answered:
            return False, at
        ended = self.after(at, 0.05, 2.0)
        self.attempt(_Call(agent), operation, started, ended, fails=False, step_type="planning")
        return True, ended

    def run(
        self,
        operation: str,
        ready: datetime,
        *,
        fails: bool,
        follows: bool = False,
        recovers: list[UUID] | None = None,
    ) -> tuple[UUID, datetime]:
        """One run of ``tester`` (queued on its runner): a failure or a pass that recovers
        ``recovers``."""
        rng, traits = self.rng, self.traits[TESTER]
        tests = operation == "run_tests"
        started = self.after(ready, 0.5, 8.0)
        ended = self.after(started, *((15.0, 240.0) if tests else (2.0, 20.0)))
        passed = rng.randint(20, 400)
        if fails:
            error_type = "TestFailure" if tests else "LintError"
            broken = rng.randint(1, 12)
            message = (
                f"{broken} failed, {passed} passed" if tests else f"{broken} lint errors found"
            )
        else:
            error_type, message = "", ""
        factors = {"passed": passed, "failed": 0} if tests and traits.test_counts else None
        event = self.attempt(
            _Call(TESTER),
            operation,
            started,
            ended,
            fails=fails,
            error_type=error_type,
            message=message,
            follows=follows,
            recovers=recovers or [],
            factors=None if fails else factors,
            validation=True,
            step_type="validation",
        )
        return event, ended

    # -- the task ---------------------------------------------------------------------------

    def fix(self, coder: str, ready: datetime) -> tuple[bool, datetime]:
        """The coder's fix after a failing run: (patched, when)."""
        cfg, rng = self.cfg, self.rng
        at = self.after(ready, 0.5, 5.0)
        if rng.random() < 0.5:
            at = self.tool(coder, "read_file", at)
        answered, at = self.llm(self.after(at, 0.2, 3.0))
        if not answered:
            return False, at
        at = self.tool(coder, "apply_patch", self.after(at, 0.1, 1.0))
        if rng.random() < cfg.p_fix_command:
            at = self.tool(coder, "run_command", self.after(at, 0.1, 1.0))
        return True, at

    def test_loop(self, coder: str, ready: datetime, p_fail: float) -> tuple[bool, datetime]:
        """``run_tests`` until it passes (its pass recovers the loop's failures) or the coder
        gives up: (passed, when)."""
        cfg, rng = self.cfg, self.rng
        failures = 0
        if rng.random() < p_fail:
            failures = rng.choices((1, 2, 3, 4), cfg.loop_weights)[0]
        given_up = rng.random() < cfg.p_loop_given_up
        failed: list[UUID] = []
        at = ready
        for index in range(failures):
            stop = given_up and index == failures - 1
            error, at = self.run("run_tests", at, fails=True, follows=not stop)
            failed.append(error)
            if stop:
                return False, at
            patched, at = self.fix(coder, at)
            if not patched:
                return False, at
        _, at = self.run("run_tests", at, fails=False, recovers=failed)
        return True, at

    def lint_loop(self, coder: str, ready: datetime) -> tuple[bool, datetime]:
        """``run_linter`` until it passes or the coder gives up: (patched, when)."""
        cfg, rng = self.cfg, self.rng
        failures = 0
        if rng.random() < cfg.p_lint_fails:
            failures = rng.choices((1, 2, 3), cfg.lint_weights)[0]
        given_up = rng.random() < cfg.p_lint_given_up
        failed: list[UUID] = []
        at, patched = ready, False
        for index in range(failures):
            stop = given_up and index == failures - 1
            error, at = self.run("run_linter", at, fails=True, follows=not stop)
            failed.append(error)
            if stop:
                return patched, at
            at = self.tool(coder, "apply_patch", self.after(at, 0.5, 5.0))
            patched = True
        _, at = self.run("run_linter", at, fails=False, recovers=failed)
        return patched, at

    def subtask(self, coder: str, ready: datetime) -> tuple[bool, datetime]:
        """One subtask of ``coder``: (given up, when the coder is free again)."""
        cfg, rng = self.cfg, self.rng
        at = ready
        for _ in range(rng.randint(1, 3)):
            at = self.tool(coder, "read_file", self.after(at, 0.1, 2.0))
        answered, at = self.llm(self.after(at, 0.2, 3.0))
        if not answered:
            return True, at
        at = self.tool(coder, "apply_patch", self.after(at, 0.1, 1.0))
        if rng.random() < cfg.p_command:
            at = self.tool(coder, "run_command", self.after(at, 0.1, 1.0))
        passed, at = self.test_loop(coder, at, cfg.p_first_run_fails)
        if not passed:
            return True, at
        patched, at = self.lint_loop(coder, at)
        if patched:
            passed, at = self.test_loop(coder, at, cfg.p_rerun_fails)
            if not passed:
                return True, at
        self.review(at)  # the coder goes on while the reviewer looks at the diff
        return False, at

    def review(self, ready: datetime) -> None:
        """``reviewer.review_diff`` (its LLM call inside); a policy violation is escalated to a
        human, as is a routine sign-off."""
        cfg, rng = self.cfg, self.rng
        started = self.after(ready, 1.0, 30.0)
        answered, at = self.llm(self.after(started, 0.01, 0.2))
        if not answered:
            return
        ended = self.after(at, 0.2, 2.0)
        call = _Call(REVIEWER)
        if rng.random() < cfg.p_policy_violation:
            error = self.attempt(
                call,
                "review_diff",
                started,
                ended,
                fails=True,
                error_type="PolicyViolation",
                message="the diff touches a protected path: human approval required",
                follows=True,
                step_type="review",
            )
            self.approval(ended, [error])
            return
        signoff = rng.random() < cfg.p_signoff
        self.attempt(
            call,
            "review_diff",
            started,
            ended,
            fails=False,
            factors={"requires_approval": True} if signoff else None,
            step_type="review",
        )
        if signoff:
            self.approval(ended, [])

    def approval(self, asked: datetime, errors: list[UUID]) -> None:
        """``human.approve_change`` minutes to hours after ``asked``, recovering ``errors``;
        or never."""
        cfg, rng = self.cfg, self.rng
        if rng.random() < cfg.p_never_approved:
            return
        opened = self.after(asked, 0.5, 5.0)
        seconds = cfg.human_median_s * math.exp(rng.gauss(0.0, 0.8))
        low, high = cfg.human_range_s
        approved = opened + timedelta(seconds=min(max(seconds, low), high))
        self.attempt(
            _Call(HUMAN),
            "approve_change",
            opened,
            approved,
            fails=False,
            recovers=errors,
            step_type="approval",
        )


def _task(cfg: CodingConfig, rng: random.Random) -> tuple[_Task, dict[tuple[UUID, str], float]]:
    start = cfg.start + timedelta(seconds=rng.uniform(0, cfg.workflow_spread_s))
    subtasks = rng.randint(*cfg.subtasks)
    coders = CODERS[: min(subtasks, rng.choices((1, 2, 3), cfg.coder_weights)[0])]
    skew_s = cfg.clock_skew_ms / 1000
    task = _Task(
        cfg,
        rng,
        uuid.UUID(int=rng.getrandbits(128), version=4),
        traits={agent: _traits(rng, cfg.stated_fraction) for agent in AGENTS},
        skew={agent: timedelta(seconds=rng.uniform(-skew_s, skew_s)) for agent in AGENTS},
        degraded_llm=rng.random() < cfg.p_llm_degraded,
    )
    planned, at = task.with_llm(PLANNER, "plan_task", start)
    if planned:
        planned, at = task.with_llm(PLANNER, "split_subtasks", at)
    if planned:
        for index, coder in enumerate(coders):
            mine = len(range(index, subtasks, len(coders)))
            free = task.after(at, 0.1, 3.0)
            for _ in range(mine):
                given_up, free = task.subtask(coder, free)
                if given_up and rng.random() < cfg.p_drop_rest:
                    break
                free = task.after(free, 1.0, 10.0)
    number_slots(task.slots)
    task.unrecovered = unrecovered_errors(task.rows, task.truth)
    offline: dict[tuple[UUID, str], float] = {}
    if rng.random() < cfg.p_offline:
        offline[(task.correlation_id, rng.choice(coders))] = rng.uniform(*cfg.offline_waves)
    return task, offline


def generate(cfg: CodingConfig | None = None) -> Workload:
    """The tasks' events in arrival waves and the true recoveries; deterministic per config."""
    cfg = cfg or CodingConfig()
    rng = random.Random(cfg.seed)
    tasks, offline = [], {}
    for _ in range(cfg.workflows):
        task, away = _task(cfg, rng)
        tasks.append(task)
        offline.update(away)
    events = [row for task in tasks for row in numbered(task.rows)]
    how = Delivery(
        start=cfg.start,
        span_s=cfg.workflow_spread_s + 1800.0,
        waves=cfg.waves,
        late_fraction=cfg.late_fraction,
        late_waves=cfg.late_waves,
        duplicate_fraction=cfg.duplicate_fraction,
    )
    return workload(tasks, events, rng, how, offline=offline)
