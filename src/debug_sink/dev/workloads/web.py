"""Browser-automation (web) agents: a held-out labeled workload for the correlator.

Owns :func:`generate` (pure, seeded). Written from a description of a web-agent fleet, without
reading the correlator's rules, weights or tests, with conventions of its own:

- **Shape.** A workflow (one ``correlation_id``) is one task on a website (book a flight,
  download an invoice). ``orchestrator`` plans it (``plan_task``), hands page-level work to
  1-3 browser agents (``browser-1`` ... ``browser-3``; 45% / 35% / 20% of the tasks) with one
  ``dispatch`` each, and compiles the result (``compile_result``) when every browser is done.
  The browsers work **in parallel tabs**. Each browser has 1-3 sub-goals; a sub-goal is a
  ``navigate`` then 2-6 more actions (``click`` 40%, ``fill_form`` 20%, ``extract`` 20%,
  ``navigate`` 12%, ``download`` 8%). The same agent names recur in every task and the same
  operation recurs many times per task and per browser as new work. A browser runs one
  action at a time; while a sub-goal waits (a rate limit, a CAPTCHA) it works on its other
  sub-goals, and a waiting sub-goal whose time has come goes first.
- **Failures of an action** (at most one kind per action, each only where it applies):
  transient (``ElementNotFound`` on click / fill_form / extract / download,
  ``NavigationTimeout`` on navigate) 7%; ``SessionExpired`` 1.5% (any action);
  ``CaptchaRequired`` 2% (navigate, click, fill_form); ``HTTP429`` 3% (navigate, extract,
  download); ``SelectorNotFound`` 3% (click, fill_form, extract).
- **Transient failures** are retried in place by the browser after a wait (exponential
  backoff, base 1-4 s, a trait): 90% of the (task, agent) pairs retry, up to 2-3 retries (a
  trait); a retry fails again 20% of the time; besides, 5% of the first failures are given
  up on at once. Out of retries or giving up, the browser moves on (and drops the rest of
  the sub-goal 40% of the time). How a retry is reported is a trait of the (task, agent)
  pair, drawn with its step rows: ``attempt`` (a step row per attempt, same ``step_number``,
  ``attempt`` + 1; half of them also set ``retry_count``), ``count`` (``retry_count`` on the
  success; only the call's last attempt has a step row) or ``none`` (``retry_count`` 0, each
  attempt a new step with ``attempt`` 1: the retry looks like a fresh call).
- **Session expiry** (``SessionExpired``): the browser runs ``login`` (its own call, 5% of
  them hit a transient ``NavigationTimeout``, retried as above), then the ORIGINAL action
  again as a new step, which succeeds. If the login fails for good, the sub-goal is dropped.
- **CAPTCHAs** (``CaptchaRequired``): escalated to ``captcha_solver``, whose
  ``solve_captcha`` success 10 s to 5 min later (log-uniform) solves it; the browser's
  sub-goal waits for it and then goes on with its next action (the solved action is not
  re-run). 20% are never solved: half of those end with a ``CaptchaUnsolvable`` error of the
  solver, the other half in silence; the sub-goal is dropped.
- **Rate limits** (``HTTP429``): the shared ``scheduler`` reschedules the action
  (``reschedule`` success 0.2-2 s after the error, recovering nothing); the browser re-runs it
  1-10 minutes later, meanwhile doing other work (often the same operations). The re-run hits
  ``HTTP429`` again 15% of the time (rescheduled again); after the third ``HTTP429`` the
  sub-goal is dropped. The re-run is reported as a retry of the same call (``attempt``
  agents: same step, ``attempt`` + 1).
- **Selector drift** (``SelectorNotFound``): the browser asks ``llm_selector`` for a new
  selector (``suggest_selector`` success 2-15 s later, recovering nothing) and re-runs the
  action with it, as a retry of the same call; the re-run succeeds 70% of the time, otherwise
  fails with ``SelectorNotFound`` again and the sub-goal is dropped (later successes of the
  same operation are new work).
- **What agents report** (traits of each (task, agent) pair): step rows 60%;
  ``execution_step`` on errors and successes 50%; ``recovery_strategy`` honest 35% (what
  actually follows the error: ``retry`` for a retry in place or a rescheduled re-run,
  ``reauthenticate`` for a login, ``escalate`` for a CAPTCHA, ``fallback`` for a new
  selector, ``skip`` when the agent moves on, ``abort`` for a rate limit given up on),
  a fixed default whatever follows 25% (``retry`` 50%, ``escalate`` 15%, ``fallback`` 15%,
  ``skip`` 10%, ``abort`` 10%), absent 40%; ``recovery_attempted`` 35%, true when something
  follows the error (a retry, login, escalation, reschedule or new selector);
  ``is_recoverable`` by error type (50%), always (25%) or never (25%). Successes are
  ``task_completion`` except the recovering successes the agent knows about (all but the
  retries of ``none`` agents) in 35% of the pairs: ``recovery_success``.
- **Stated links**: a share ``stated_fraction`` of the (task, agent) pairs name, in
  ``recovers_error_ids`` of each of their recovering successes, exactly the errors it
  recovers (the solver names the browser's ``CaptchaRequired``).
- **Delivery** (:mod:`.delivery`): 300 tasks start within three hours; six waves of 35
  minutes; a random delay per event, 12% of the events 1-3 waves late, 4% delivered twice;
  every agent's clock of a task skewed by up to 300 ms.

Truth, per recovering success (every other success recovers nothing):

- the successful attempt of an action retried in place recovers every earlier failed attempt
  of that call, however the retry is reported (likewise for a ``login``);
- the successful re-run of the original action after a ``login`` recovers the
  ``SessionExpired`` error (the login recovers nothing but its own retried attempts);
- ``captcha_solver.solve_captcha`` recovers the ``CaptchaRequired`` it was escalated;
- the successful re-run after rescheduling recovers every ``HTTP429`` of that action (the
  ``reschedule`` successes recover nothing);
- the successful re-run with a new selector recovers its ``SelectorNotFound`` (the
  ``suggest_selector`` success recovers nothing).

Never recovered: transient errors given up on or out of retries, a ``SessionExpired`` whose
login failed, CAPTCHAs never solved (and ``CaptchaUnsolvable``), the third ``HTTP429``
chain, both ``SelectorNotFound`` of a failed re-run. Not modelled: tasks spanning workflows,
orchestrator errors, a browser whose tab crashes, shared sessions between tabs.
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

__all__ = ["WebConfig", "generate"]

ORCHESTRATOR: Final = "orchestrator"
BROWSERS: Final = ("browser-1", "browser-2", "browser-3")
SOLVER: Final = "captcha_solver"
SCHEDULER: Final = "scheduler"
SELECTOR: Final = "llm_selector"
AGENTS: Final = (ORCHESTRATOR, *BROWSERS, SOLVER, SCHEDULER, SELECTOR)

#: Error type -> (recoverable by its type, error_category, error_severity).
ERRORS: Final[dict[str, tuple[bool, str, str]]] = {
    "ElementNotFound": (True, "external", "low"),
    "NavigationTimeout": (True, "external", "medium"),
    "SessionExpired": (True, "external", "medium"),
    "CaptchaRequired": (True, "external", "medium"),
    "HTTP429": (True, "external", "low"),
    "SelectorNotFound": (True, "agent", "medium"),
    "CaptchaUnsolvable": (False, "external", "high"),
}
#: Operation -> (duration range in s, step_type).
OPERATIONS: Final[dict[str, tuple[tuple[float, float], str]]] = {
    "navigate": ((0.8, 8.0), "navigation"),
    "click": ((0.1, 1.5), "interaction"),
    "fill_form": ((0.5, 6.0), "interaction"),
    "extract": ((0.3, 4.0), "extraction"),
    "download": ((1.0, 20.0), "extraction"),
    "login": ((1.5, 8.0), "authentication"),
    "solve_captcha": ((10.0, 300.0), "escalation"),
    "reschedule": ((0.2, 2.0), "scheduling"),
    "suggest_selector": ((2.0, 15.0), "llm_call"),
    "plan_task": ((1.0, 10.0), "planning"),
    "dispatch": ((0.05, 0.5), "routing"),
    "compile_result": ((0.5, 5.0), "planning"),
}
#: Actions of a sub-goal after its first navigate, and their weights.
ACTIONS: Final = (("click", 0.4), ("fill_form", 0.2), ("extract", 0.2), ("navigate", 0.12))
ACTIONS_DOWNLOAD: Final = ("download", 0.08)
TRANSIENT_ON: Final[dict[str, str]] = {
    "navigate": "NavigationTimeout",
    "click": "ElementNotFound",
    "fill_form": "ElementNotFound",
    "extract": "ElementNotFound",
    "download": "ElementNotFound",
}
CAPTCHA_ON: Final = frozenset({"navigate", "click", "fill_form"})
RATE_LIMIT_ON: Final = frozenset({"navigate", "extract", "download"})
SELECTOR_ON: Final = frozenset({"click", "fill_form", "extract"})

RetryReport = Literal["attempt", "count", "none"]
StrategyMode = Literal["honest", "default", "absent"]
Failure = Literal["transient", "session", "captcha", "rate_limit", "selector"]


@dataclass(frozen=True, slots=True)
class WebConfig:
    """Knobs of :func:`generate`."""

    workflows: int = 300
    seed: int = 8080
    browser_weights: tuple[float, float, float] = (0.45, 0.35, 0.2)  # 1-3 browsers
    subgoals: tuple[int, int] = (1, 3)  # per browser
    actions: tuple[int, int] = (2, 6)  # per sub-goal, after its first navigate
    p_transient: float = 0.07
    p_session_expired: float = 0.015
    p_captcha: float = 0.02
    p_rate_limit: float = 0.03
    p_selector_drift: float = 0.03
    p_retries: float = 0.9  # (task, agent) pairs that retry transient failures in place
    max_retries: tuple[int, int] = (2, 3)
    p_retry_fails: float = 0.2
    p_give_up_at_once: float = 0.05  # a first transient failure given up on, retries or not
    p_drop_after_give_up: float = 0.4  # giving up on an action drops the rest of the sub-goal
    p_login_fails: float = 0.05  # the login after a SessionExpired hits a transient error
    p_captcha_unsolved: float = 0.2
    captcha_range_s: tuple[float, float] = (10.0, 300.0)
    rate_limit_wait_s: tuple[float, float] = (60.0, 600.0)
    p_rate_limited_again: float = 0.15
    max_rate_limits: int = 3
    p_selector_works: float = 0.7
    p_steps: float = 0.6
    p_execution_step: float = 0.5
    strategy_modes: tuple[float, float, float] = (0.35, 0.25, 0.4)  # honest, default, absent
    p_sets_attempted: float = 0.35
    p_recovery_type: float = 0.35
    stated_fraction: float = 0.0  # (task, agent) pairs that name what they recover
    waves: int = 6
    late_fraction: float = 0.12
    late_waves: tuple[float, float] = (1.0, 3.0)
    duplicate_fraction: float = 0.04
    clock_skew_ms: int = 300
    start: datetime = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    workflow_spread_s: float = 10800.0


@dataclass(frozen=True, slots=True)
class Traits:
    """What one agent does and reports in one task."""

    steps: bool  # writes step rows
    retry_report: RetryReport
    reports_retry_count: bool
    retries: bool  # retries transient failures in place
    max_retries: int
    backoff_s: float
    execution_step: bool
    strategy: StrategyMode
    default_strategy: str
    sets_attempted: bool
    recoverable: Literal["by_type", "always", "never"]
    recovery_type: bool  # types the recoveries it knows about recovery_success
    states: bool


def _traits(rng: random.Random, cfg: WebConfig) -> Traits:
    steps = rng.random() < cfg.p_steps
    with_steps: RetryReport = rng.choices(("attempt", "count", "none"), (0.6, 0.2, 0.2))[0]
    without_steps: RetryReport = rng.choices(("count", "none"), (0.55, 0.45))[0]
    report = with_steps if steps else without_steps
    half = rng.random() < 0.5
    mode: StrategyMode = rng.choices(("honest", "default", "absent"), cfg.strategy_modes)[0]
    return Traits(
        steps=steps,
        retry_report=report,
        reports_retry_count=report == "count" or (report == "attempt" and half),
        retries=rng.random() < cfg.p_retries,
        max_retries=rng.randint(*cfg.max_retries),
        backoff_s=rng.uniform(1.0, 4.0),
        execution_step=rng.random() < cfg.p_execution_step,
        strategy=mode,
        default_strategy=rng.choices(
            ("retry", "escalate", "fallback", "skip", "abort"), (0.5, 0.15, 0.15, 0.1, 0.1)
        )[0],
        sets_attempted=rng.random() < cfg.p_sets_attempted,
        recoverable=rng.choices(("by_type", "always", "never"), (0.5, 0.25, 0.25))[0],
        recovery_type=rng.random() < cfg.p_recovery_type,
        states=rng.random() < cfg.stated_fraction,
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
class _Goal:
    """A browser's sub-goal: its remaining actions; when it may go on (``due``); a call whose
    re-run is scheduled at ``due`` (a rate limit); dropped."""

    actions: list[str]
    due: datetime | None = None
    rerun: _Call | None = None
    rerun_operation: str = ""
    dropped: bool = False

    @property
    def active(self) -> bool:
        return not self.dropped and (bool(self.actions) or self.rerun is not None)


@dataclass(slots=True)
class _Task:
    cfg: WebConfig
    rng: random.Random
    correlation_id: UUID
    traits: dict[str, Traits]
    skew: dict[str, timedelta]
    rows: list[tuple[Kind, dict[str, Any], Slot | None]] = field(default_factory=list)
    truth: set[tuple[UUID, UUID]] = field(default_factory=set)
    stated: set[tuple[UUID, UUID]] = field(default_factory=set)
    slots: list[Slot] = field(default_factory=list)
    unrecovered: int = 0

    def new_id(self) -> UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def after(self, at: datetime, low: float, high: float) -> datetime:
        return at + timedelta(seconds=self.rng.uniform(low, high))

    def duration(self, started: datetime, operation: str) -> datetime:
        return self.after(started, *OPERATIONS[operation][0])

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
        strategy: str | None = None,
        follows: bool = False,
        last: bool = True,
        new_step: bool = False,
        recovers: list[UUID] | None = None,
        known: bool = True,
        retry_count: int = 0,
    ) -> UUID:
        """One attempt of ``call``: an error or a success, and its step row as the agent
        reports it. ``strategy``: the honest recovery_strategy (what follows the error);
        ``follows``: something follows the error; ``last``: no other attempt of the call goes
        on this step; ``recovers``: the errors a success recovers (default: the call's
        errors); ``known``: the agent knows it recovered them. An error's ``message`` is
        the error type's, for ``operation``, unless given."""
        if fails and not message:
            message = self.message(error_type, operation)
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
                strategy=strategy,
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
                recovers=list(call.errors) if recovers is None else recovers,
                known=known,
                retry_count=retry_count,
            )
        if traits.steps:
            self.rows.append(
                (
                    "step",
                    {
                        "id": self.new_id(),
                        "correlation_id": self.correlation_id,
                        "attempt": number,
                        "step_type": OPERATIONS[operation][1],
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
        strategy: str | None,
        follows: bool,
    ) -> UUID:
        traits = self.traits[agent]
        by_type, category, severity = ERRORS[error_type]
        reported = {
            "honest": strategy,
            "default": traits.default_strategy,
            "absent": None,
        }[traits.strategy]
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
                    "recovery_strategy": reported,
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
    ) -> UUID:
        traits = self.traits[agent]
        success_id = self.new_id()
        recovery = bool(recovers) and known and traits.recovery_type
        states = bool(recovers) and traits.states
        self.rows.append(
            (
                "success",
                {
                    "id": success_id,
                    "correlation_id": self.correlation_id,
                    "success_type": "recovery_success" if recovery else "task_completion",
                    "operation_name": operation,
                    "agent_name": agent,
                    "retry_count": retry_count,
                    "success_factors": None,
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

    def simple(self, agent: str, operation: str, ready: datetime) -> datetime:
        """A call that succeeds at once and recovers nothing; when it ends."""
        started = self.after(ready, 0.01, 0.3)
        ended = self.duration(started, operation)
        self.attempt(_Call(agent), operation, started, ended, fails=False)
        return ended

    # -- browser actions --------------------------------------------------------------------

    def backoff(self, agent: str, retry: int) -> timedelta:
        base = self.traits[agent].backoff_s
        return timedelta(seconds=base * 2 ** (retry - 1) * self.rng.uniform(0.8, 1.2))

    def retried(
        self, agent: str, operation: str, ready: datetime, error_type: str
    ) -> tuple[bool, datetime]:
        """A call whose first attempt fails with a transient ``error_type``, retried in place
        (or given up on): (succeeded, when it ends)."""
        cfg, rng, traits = self.cfg, self.rng, self.traits[agent]
        call, at, fails = _Call(agent), ready, True
        give_up_now = rng.random() < cfg.p_give_up_at_once
        while True:
            started = self.after(at, 0.05, 0.5)
            ended = self.duration(started, operation)
            if not fails:
                self.attempt(
                    call,
                    operation,
                    started,
                    ended,
                    fails=False,
                    known=traits.retry_report != "none",
                    retry_count=len(call.errors) if traits.reports_retry_count else 0,
                )
                return True, ended
            retry = traits.retries and not give_up_now and len(call.errors) < traits.max_retries
            self.attempt(
                call,
                operation,
                started,
                ended,
                fails=True,
                error_type=error_type,
                strategy="retry" if retry else "skip",
                follows=retry,
                last=not retry,
            )
            if not retry:
                return False, ended
            at = ended + self.backoff(agent, len(call.errors))
            fails = rng.random() < cfg.p_retry_fails

    def message(self, error_type: str, operation: str) -> str:
        rng = self.rng
        selector = f"#{rng.choice(('submit', 'next', 'date', 'price', 'invoice', 'email'))}"
        return {
            "ElementNotFound": f"{operation}: no element matches {selector} yet",
            "NavigationTimeout": f"{operation}: page did not load within 30 s",
            "SessionExpired": f"{operation}: redirected to the login page",
            "CaptchaRequired": f"{operation}: the page shows a CAPTCHA challenge",
            "HTTP429": f"{operation}: 429 Too Many Requests",
            "SelectorNotFound": f"{operation}: selector {selector} matches nothing on the page",
            "CaptchaUnsolvable": "solve_captcha: no solution before the challenge expired",
        }[error_type]

    def failure(self, operation: str) -> Failure | None:
        """Which failure, if any, this attempt of ``operation`` hits."""
        cfg = self.cfg
        roll = self.rng.random()
        chances: list[tuple[Failure, float]] = [
            ("transient", cfg.p_transient),
            ("session", cfg.p_session_expired),
            ("captcha", cfg.p_captcha if operation in CAPTCHA_ON else 0.0),
            ("rate_limit", cfg.p_rate_limit if operation in RATE_LIMIT_ON else 0.0),
            ("selector", cfg.p_selector_drift if operation in SELECTOR_ON else 0.0),
        ]
        for kind, chance in chances:
            if roll < chance:
                return kind
            roll -= chance
        return None

    def action(self, browser: str, goal: _Goal, operation: str, ready: datetime) -> datetime:
        """One action of ``goal``; when the browser is free again. May park or drop the goal."""
        cfg, rng = self.cfg, self.rng
        kind = self.failure(operation)
        if kind is None:
            return self.simple(browser, operation, ready)
        if kind == "transient":
            done, at = self.retried(browser, operation, ready, TRANSIENT_ON[operation])
            if not done and rng.random() < cfg.p_drop_after_give_up:
                goal.dropped = True
            return at
        call = _Call(browser)
        started = self.after(ready, 0.01, 0.3)
        ended = self.duration(started, operation)
        if kind == "session":
            self.attempt(
                call,
                operation,
                started,
                ended,
                fails=True,
                error_type="SessionExpired",
                strategy="reauthenticate",
                follows=True,
            )
            at = self.after(ended, 0.1, 1.0)
            if rng.random() < cfg.p_login_fails:
                logged_in, at = self.retried(browser, "login", at, "NavigationTimeout")
            else:
                at = self.simple(browser, "login", at)
                logged_in = True
            if not logged_in:
                goal.dropped = True
                return at
            rerun = _Call(browser)
            started = self.after(at, 0.1, 1.0)
            ended = self.duration(started, operation)
            self.attempt(
                rerun,
                operation,
                started,
                ended,
                fails=False,
                recovers=list(call.errors),
                retry_count=1 if self.traits[browser].reports_retry_count else 0,
            )
            return ended
        if kind == "captcha":
            self.attempt(
                call,
                operation,
                started,
                ended,
                fails=True,
                error_type="CaptchaRequired",
                strategy="escalate",
                follows=True,
            )
            self.captcha(ended, goal, call.errors[0])
            return ended
        if kind == "rate_limit":
            self.rate_limited(call, operation, started, ended, goal)
            return ended
        # selector drift
        self.attempt(
            call,
            operation,
            started,
            ended,
            fails=True,
            error_type="SelectorNotFound",
            strategy="fallback",
            follows=True,
            last=False,
        )
        at = self.simple(SELECTOR, "suggest_selector", self.after(ended, 0.05, 0.5))
        started = self.after(at, 0.2, 1.0)
        ended = self.duration(started, operation)
        if rng.random() < cfg.p_selector_works:
            self.attempt(
                call,
                operation,
                started,
                ended,
                fails=False,
                retry_count=1 if self.traits[browser].reports_retry_count else 0,
            )
            return ended
        self.attempt(
            call,
            operation,
            started,
            ended,
            fails=True,
            error_type="SelectorNotFound",
            strategy="skip",
        )
        goal.dropped = True
        return ended

    def captcha(self, raised: datetime, goal: _Goal, error: UUID) -> None:
        """``captcha_solver`` on the CAPTCHA ``error``: the goal waits for the solution, or
        is dropped."""
        cfg, rng = self.cfg, self.rng
        opened = self.after(raised, 0.3, 3.0)
        low, high = cfg.captcha_range_s
        delay = math.exp(rng.uniform(math.log(low), math.log(high)))
        solved_at = raised + timedelta(seconds=delay)
        solver = _Call(SOLVER)
        if rng.random() >= cfg.p_captcha_unsolved:
            self.attempt(solver, "solve_captcha", opened, solved_at, fails=False, recovers=[error])
            goal.due = self.after(solved_at, 0.3, 2.0)
            return
        goal.dropped = True
        if rng.random() < 0.5:
            self.attempt(
                solver,
                "solve_captcha",
                opened,
                solved_at,
                fails=True,
                error_type="CaptchaUnsolvable",
                strategy="abort",
            )

    def rate_limited(
        self, call: _Call, operation: str, started: datetime, ended: datetime, goal: _Goal
    ) -> None:
        """An ``HTTP429`` on ``call``: the scheduler reschedules it (the goal waits for the
        re-run) or, at the last one, the goal is dropped."""
        cfg = self.cfg
        again = len(call.errors) + 1 < cfg.max_rate_limits
        self.attempt(
            call,
            operation,
            started,
            ended,
            fails=True,
            error_type="HTTP429",
            strategy="retry" if again else "abort",
            follows=again,
            last=not again,
        )
        if not again:
            goal.dropped = True
            goal.rerun = None
            return
        self.simple(SCHEDULER, "reschedule", self.after(ended, 0.05, 0.5))
        goal.due = self.after(ended, *cfg.rate_limit_wait_s)
        goal.rerun, goal.rerun_operation = call, operation

    def rerun(self, browser: str, goal: _Goal, ready: datetime) -> datetime:
        """The scheduled re-run of a rate-limited action."""
        cfg, rng = self.cfg, self.rng
        call, operation = goal.rerun, goal.rerun_operation
        assert call is not None
        goal.rerun = None
        started = self.after(ready, 0.01, 0.3)
        ended = self.duration(started, operation)
        if rng.random() < cfg.p_rate_limited_again:
            self.rate_limited(call, operation, started, ended, goal)
            return ended
        self.attempt(
            call,
            operation,
            started,
            ended,
            fails=False,
            retry_count=len(call.errors) if self.traits[browser].reports_retry_count else 0,
        )
        return ended

    def browser(self, browser: str, ready: datetime) -> datetime:
        """A browser's sub-goals, interleaved while some wait; when it is done."""
        cfg, rng = self.cfg, self.rng
        operations = [op for op, _ in ACTIONS] + [ACTIONS_DOWNLOAD[0]]
        weights = [w for _, w in ACTIONS] + [ACTIONS_DOWNLOAD[1]]
        goals = [
            _Goal(["navigate", *rng.choices(operations, weights, k=rng.randint(*cfg.actions))])
            for _ in range(rng.randint(*cfg.subgoals))
        ]
        now = ready
        while True:
            active = [g for g in goals if g.active]
            if not active:
                return now
            runnable = [g for g in active if g.due is None or g.due <= now]
            if not runnable:
                now = min(g.due for g in active if g.due is not None)
                continue
            # a re-run whose time has come goes first; else the first sub-goal that can go on
            goal = next((g for g in runnable if g.rerun is not None), runnable[0])
            goal.due = None
            think = self.after(now, 0.3, 4.0)
            if goal.rerun is not None:
                now = self.rerun(browser, goal, think)
            else:
                now = self.action(browser, goal, goal.actions.pop(0), think)


def _task(cfg: WebConfig, rng: random.Random) -> _Task:
    start = cfg.start + timedelta(seconds=rng.uniform(0, cfg.workflow_spread_s))
    browsers = BROWSERS[: rng.choices((1, 2, 3), cfg.browser_weights)[0]]
    skew_s = cfg.clock_skew_ms / 1000
    task = _Task(
        cfg,
        rng,
        uuid.UUID(int=rng.getrandbits(128), version=4),
        traits={agent: _traits(rng, cfg) for agent in AGENTS},
        skew={agent: timedelta(seconds=rng.uniform(-skew_s, skew_s)) for agent in AGENTS},
    )
    at = task.simple(ORCHESTRATOR, "plan_task", start)
    done = []
    for browser in browsers:
        at = task.simple(ORCHESTRATOR, "dispatch", at)
        done.append(task.browser(browser, task.after(at, 0.2, 2.0)))
    task.simple(ORCHESTRATOR, "compile_result", task.after(max(done), 0.2, 2.0))
    number_slots(task.slots)
    task.unrecovered = unrecovered_errors(task.rows, task.truth)
    return task


def generate(cfg: WebConfig | None = None) -> Workload:
    """The tasks' events in arrival waves and the true recoveries; deterministic per config."""
    cfg = cfg or WebConfig()
    rng = random.Random(cfg.seed)
    tasks = [_task(cfg, rng) for _ in range(cfg.workflows)]
    events = [row for task in tasks for row in numbered(task.rows)]
    how = Delivery(
        start=cfg.start,
        span_s=cfg.workflow_spread_s + 1800.0,
        waves=cfg.waves,
        late_fraction=cfg.late_fraction,
        late_waves=cfg.late_waves,
        duplicate_fraction=cfg.duplicate_fraction,
    )
    return workload(tasks, events, rng, how)
