"""Synthetic agent workflows with ground-truth recoveries, to measure the correlator.

Owns :func:`generate` (pure, seeded, deterministic) and :func:`score` (precision / recall of
a set of links against the truth). Loading a workload into the database and measuring the
correlator on it is :mod:`debug_sink.dev.fill`.

The generator simulates what agents do, independently of the correlator's rules: several
agents work in one workflow at once (their events interleave), each runs operations one after
the other; an attempt fails with ``failure_rate``; after a failure the agent

- retries the same operation (each failed retry is another error; the final success, if any,
  recovers every error of the chain: one success, several errors),
- falls back to another operation of its own (the fallback's success recovers the error),
- delegates to another agent (that agent's success recovers it),
- or gives up (the error is never recovered; sometimes the same operation is run again later
  for unrelated work and succeeds, which is *not* a recovery: deliberate ambiguity). With
  ``p_intended_strategy`` such an error names the strategy the agent meant to use (fallback,
  retry) although none followed.

Agents fill the error's recovery fields and the success's ``success_type`` / ``retry_count``
only some of the time (``p_declares`` etc.), agents' clocks are skewed by up to
``clock_skew_ms``, and delivery is out of order: each event arrives after a random delay, a
``late_fraction`` of them one to three waves late. A wave is what lands between two correlator
runs. Truth = the set of (error id, success id) pairs that are recoveries.

Not modelled: workflows spanning days, errors without an agent or operation name.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from uuid import UUID

__all__ = [
    "ERROR_COLUMNS",
    "STEP_COLUMNS",
    "SUCCESS_COLUMNS",
    "Event",
    "Score",
    "SyntheticConfig",
    "Workload",
    "generate",
    "score",
]

Kind = Literal["error", "success", "step"]

ERROR_COLUMNS: Final = (
    "id",
    "correlation_id",
    "error_type",
    "error_category",
    "error_severity",
    "error_message",
    "agent_name",
    "operation_name",
    "execution_step",
    "is_recoverable",
    "recovery_attempted",
    "recovery_successful",
    "recovery_strategy",
    "occurred_at",
)
SUCCESS_COLUMNS: Final = (
    "id",
    "correlation_id",
    "success_type",
    "operation_name",
    "agent_name",
    "execution_step",
    "retry_count",
    "success_factors",
    "occurred_at",
    "recovers_error_ids",
)
STEP_COLUMNS: Final = (
    "id",
    "correlation_id",
    "step_number",
    "attempt",
    "step_type",
    "agent_name",
    "operation_name",
    "status",
    "error_event_id",
    "success_event_id",
    "started_at",
    "completed_at",
    "duration_ms",
    "parent_step_id",
)
#: Agents, their operations, and each operation's fallback and typical errors.
AGENTS: Final[dict[str, tuple[str, ...]]] = {
    "planner": ("plan", "decompose", "route"),
    "researcher": ("search", "fetch", "summarize"),
    "coder": ("generate", "run_tests", "lint"),
    "reviewer": ("review", "score"),
    "writer": ("draft", "format"),
}
FALLBACKS: Final[dict[str, str]] = {
    "plan": "plan_simple",
    "decompose": "plan_simple",
    "route": "route_default",
    "search": "search_cached",
    "fetch": "fetch_cached",
    "summarize": "summarize_short",
    "generate": "generate_small_model",
    "run_tests": "run_tests_subset",
    "lint": "lint_fast",
    "review": "review_light",
    "score": "score_heuristic",
    "draft": "draft_template",
    "format": "format_plain",
}
ERROR_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "search": ("TimeoutError", "RateLimitError"),
    "fetch": ("TimeoutError", "HTTPError"),
    "generate": ("LLMOutputParseError", "ContextLengthExceeded"),
    "run_tests": ("TestFailure", "TimeoutError"),
}
_DEFAULT_ERROR_TYPES: Final = ("ValidationError", "TimeoutError", "ToolError")


@dataclass(frozen=True, slots=True)
class SyntheticConfig:
    """Knobs of :func:`generate`. Probabilities are per event or per decision."""

    workflows: int = 300
    seed: int = 7
    agents: tuple[int, int] = (1, 4)  # agents per workflow (inclusive range)
    tasks_per_agent: tuple[int, int] = (2, 6)  # operations each agent runs
    failure_rate: float = 0.3  # an attempt fails
    p_retry: float = 0.45  # after a failure: retry ...
    p_fallback: float = 0.2  # ... fall back to another operation ...
    p_delegate: float = 0.1  # ... hand over to another agent ... else give up
    max_retries: int = 3
    p_compound: float = 0.05  # two operations fail, one recovery fixes both
    p_rerun_after_giving_up: float = 0.15  # same operation later, unrelated: not a recovery
    # giving up, the error names the strategy the agent meant to use (fallback or retry):
    # the shape of most false links measured on a labeled fleet (issue 13); 0 by default
    p_intended_strategy: float = 0.0
    p_declares: float = 0.7  # the error names its recovery_strategy
    p_recovery_type: float = 0.6  # the recovering success says recovery_success
    p_reports_retries: float = 0.8  # the retried success reports retry_count
    clock_skew_ms: int = 50
    late_fraction: float = 0.1  # events delivered 1-3 waves late
    waves: int = 6
    start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    workflow_spread_s: float = 3600.0  # workflows start within this window


@dataclass(frozen=True, slots=True)
class Event:
    """One row to insert, the wave it arrives in, and its arrival time."""

    kind: Kind
    row: dict[str, Any]
    arrival: datetime
    wave: int = 0


@dataclass(slots=True)
class Workload:
    """Generated events in arrival order, grouped into waves, and the true recoveries.

    A row omits the columns it leaves NULL. ``stated``: the true recoveries whose success
    names its error in ``recovers_error_ids`` (a subset of ``truth``); ``deliveries``: events
    delivered, duplicates included."""

    waves: list[list[Event]]
    truth: set[tuple[UUID, UUID]]
    errors: int
    successes: int
    steps: int
    unrecovered_errors: int
    stated: set[tuple[UUID, UUID]] = field(default_factory=set)

    @property
    def deliveries(self) -> int:
        return sum(len(wave) for wave in self.waves)

    def describe(self) -> dict[str, int]:
        return {
            "waves": len(self.waves),
            "errors": self.errors,
            "successes": self.successes,
            "steps": self.steps,
            "recoveries": len(self.truth),
            "stated": len(self.stated),
            "unrecovered_errors": self.unrecovered_errors,
            "deliveries": self.deliveries,
        }


@dataclass(frozen=True, slots=True)
class Score:
    """Pair-level precision and recall of predicted (error, success) links."""

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        predicted = self.true_positives + self.false_positives
        return self.true_positives / predicted if predicted else 1.0

    @property
    def recall(self) -> float:
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score(predicted: Iterable[tuple[UUID, UUID]], truth: Iterable[tuple[UUID, UUID]]) -> Score:
    got, want = set(predicted), set(truth)
    return Score(len(got & want), len(got - want), len(want - got))


@dataclass(slots=True)
class _Workflow:
    cfg: SyntheticConfig
    rng: random.Random
    correlation_id: UUID
    skew: dict[str, timedelta]
    clocks: dict[str, datetime]
    events: list[tuple[Kind, dict[str, Any]]] = field(default_factory=list)
    truth: set[tuple[UUID, UUID]] = field(default_factory=set)
    unrecovered: int = 0
    step_number: int = 0

    def tick(self, agent: str, low: float, high: float) -> datetime:
        self.clocks[agent] += timedelta(seconds=self.rng.uniform(low, high))
        return self.clocks[agent]

    def stamp(self, agent: str, at: datetime) -> datetime:
        return at + self.skew[agent]

    def attempt(
        self,
        agent: str,
        operation: str,
        *,
        step: int,
        attempt: int,
        fails: bool,
        recovery: dict[str, Any] | None = None,
        success_fields: dict[str, Any] | None = None,
    ) -> UUID:
        """One attempt: a step row and an error or a success; returns the event id."""
        rng = self.rng
        started = self.tick(agent, 0.05, 0.5)
        ended = self.tick(agent, 0.2, 3.0)
        event_id = self.new_id()
        if fails:
            recovery = recovery or {}
            self.events.append(
                (
                    "error",
                    {
                        "id": event_id,
                        "correlation_id": self.correlation_id,
                        "error_type": rng.choice(ERROR_TYPES.get(operation, _DEFAULT_ERROR_TYPES)),
                        "error_category": rng.choice(("agent", "external", "framework")),
                        "error_severity": rng.choice(("low", "medium", "high")),
                        "error_message": f"{operation} failed",
                        "agent_name": agent,
                        "operation_name": operation,
                        "execution_step": step,
                        "is_recoverable": recovery.get("is_recoverable", rng.random() < 0.6),
                        "recovery_attempted": recovery.get("recovery_attempted", False),
                        "recovery_successful": None,
                        "recovery_strategy": recovery.get("recovery_strategy"),
                        "occurred_at": self.stamp(agent, ended),
                    },
                )
            )
        else:
            fields = success_fields or {}
            self.events.append(
                (
                    "success",
                    {
                        "id": event_id,
                        "correlation_id": self.correlation_id,
                        "success_type": fields.get(
                            "success_type", rng.choice(("task_completion", "validation_pass"))
                        ),
                        "operation_name": operation,
                        "agent_name": agent,
                        "execution_step": step,
                        "retry_count": fields.get("retry_count", 0),
                        "success_factors": fields.get("success_factors"),
                        "occurred_at": self.stamp(agent, ended),
                    },
                )
            )
        self.events.append(
            (
                "step",
                {
                    "id": self.new_id(),
                    "correlation_id": self.correlation_id,
                    "step_number": step,
                    "attempt": attempt,
                    "step_type": "execution",
                    "agent_name": agent,
                    "operation_name": operation,
                    "status": "failed" if fails else "completed",
                    "error_event_id": event_id if fails else None,
                    "success_event_id": None if fails else event_id,
                    "started_at": self.stamp(agent, started),
                    "completed_at": self.stamp(agent, ended),
                    "duration_ms": int((ended - started) / timedelta(milliseconds=1)),
                },
            )
        )
        return event_id

    def new_id(self) -> UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def next_step(self) -> int:
        self.step_number += 1
        return self.step_number

    def declared(self, strategy: str) -> dict[str, Any]:
        rng = self.rng
        return {
            "recovery_attempted": rng.random() < 0.9,
            "recovery_strategy": strategy if rng.random() < self.cfg.p_declares else None,
            "is_recoverable": rng.random() < 0.8,
        }

    def recovering_type(self) -> str:
        return (
            "recovery_success"
            if self.rng.random() < self.cfg.p_recovery_type
            else "task_completion"
        )


def _run_task(
    wf: _Workflow, agent: str, operation: str, agents: Sequence[str], later: list[tuple[str, str]]
) -> None:
    cfg, rng = wf.cfg, wf.rng
    step = wf.next_step()
    if rng.random() >= cfg.failure_rate:
        wf.attempt(agent, operation, step=step, attempt=1, fails=False)
        return
    choice = rng.random()
    if choice < cfg.p_retry:
        _retry(wf, agent, operation, step)
    elif choice < cfg.p_retry + cfg.p_fallback:
        _fallback(wf, agent, operation, step)
    elif choice < cfg.p_retry + cfg.p_fallback + cfg.p_delegate and len(agents) > 1:
        _delegate(wf, agent, operation, step, agents)
    else:
        strategy = rng.choice((None, None, "skip", "abort"))
        if cfg.p_intended_strategy and rng.random() < cfg.p_intended_strategy:
            strategy = rng.choice(("fallback", "retry"))
        wf.attempt(
            agent,
            operation,
            step=step,
            attempt=1,
            fails=True,
            recovery={
                "recovery_attempted": strategy is not None and rng.random() < 0.3,
                "recovery_strategy": strategy,
            },
        )
        wf.unrecovered += 1
        if rng.random() < cfg.p_rerun_after_giving_up:
            later.append((agent, operation))


def _retry(wf: _Workflow, agent: str, operation: str, step: int) -> None:
    cfg, rng = wf.cfg, wf.rng
    errors = [
        wf.attempt(
            agent, operation, step=step, attempt=1, fails=True, recovery=wf.declared("retry")
        )
    ]
    for attempt in range(2, cfg.max_retries + 2):
        wf.tick(agent, 0.5, 5.0)  # backoff
        if rng.random() < 0.75:
            retries = attempt - 1 if rng.random() < cfg.p_reports_retries else 0
            fields = {"success_type": wf.recovering_type(), "retry_count": retries}
            if rng.random() < 0.3:
                fields["success_factors"] = {"strategy": "retry", "backoff_ms": 1000}
            success = wf.attempt(
                agent, operation, step=step, attempt=attempt, fails=False, success_fields=fields
            )
            wf.truth.update((error, success) for error in errors)
            return
        last = attempt == cfg.max_retries + 1
        recovery = wf.declared("retry")
        if last and rng.random() < 0.5:
            recovery["recovery_strategy"] = "abort"
        errors.append(
            wf.attempt(agent, operation, step=step, attempt=attempt, fails=True, recovery=recovery)
        )
    wf.unrecovered += len(errors)


def _fallback(wf: _Workflow, agent: str, operation: str, step: int) -> None:
    rng = wf.rng
    error = wf.attempt(
        agent, operation, step=step, attempt=1, fails=True, recovery=wf.declared("fallback")
    )
    fallback_step = wf.next_step()
    if rng.random() < 0.85:
        success = wf.attempt(
            agent,
            FALLBACKS.get(operation, operation + "_fallback"),
            step=fallback_step,
            attempt=1,
            fails=False,
            success_fields={"success_type": wf.recovering_type()},
        )
        wf.truth.add((error, success))
    else:
        wf.attempt(
            agent,
            FALLBACKS.get(operation, operation + "_fallback"),
            step=fallback_step,
            attempt=1,
            fails=True,
            recovery={"recovery_strategy": "abort"},
        )
        wf.unrecovered += 2


def _delegate(wf: _Workflow, agent: str, operation: str, step: int, agents: Sequence[str]) -> None:
    rng = wf.rng
    error = wf.attempt(
        agent,
        operation,
        step=step,
        attempt=1,
        fails=True,
        recovery=wf.declared(rng.choice(("fallback", "escalate"))),
    )
    helper = rng.choice([a for a in agents if a != agent])
    # The helper picks the task up after the error (its own clock may be behind).
    wf.clocks[helper] = max(wf.clocks[helper], wf.clocks[agent])
    success = wf.attempt(
        helper,
        rng.choice(AGENTS[helper]),
        step=wf.next_step(),
        attempt=1,
        fails=False,
        success_fields={"success_type": wf.recovering_type()},
    )
    wf.truth.add((error, success))


def _compound(wf: _Workflow, agent: str) -> None:
    """Two operations of one agent fail, one recovery run fixes both."""
    rng = wf.rng
    first, second = rng.sample(AGENTS[agent], 2)
    errors = [
        wf.attempt(
            agent, op, step=wf.next_step(), attempt=1, fails=True, recovery=wf.declared("fallback")
        )
        for op in (first, second)
    ]
    success = wf.attempt(
        agent,
        "recover_pipeline",
        step=wf.next_step(),
        attempt=1,
        fails=False,
        success_fields={"success_type": "recovery_success"},
    )
    wf.truth.update((error, success) for error in errors)


def _workflow(cfg: SyntheticConfig, rng: random.Random) -> _Workflow:
    count = rng.randint(*cfg.agents)
    agents = rng.sample(sorted(AGENTS), min(count, len(AGENTS)))
    start = cfg.start + timedelta(seconds=rng.uniform(0, cfg.workflow_spread_s))
    skew_s = cfg.clock_skew_ms / 1000
    wf = _Workflow(
        cfg,
        rng,
        uuid.UUID(int=rng.getrandbits(128), version=4),
        skew={a: timedelta(seconds=rng.uniform(-skew_s, skew_s)) for a in agents},
        clocks={a: start + timedelta(seconds=rng.uniform(0, 2)) for a in agents},
    )
    # Each agent's plan; tasks of all agents are interleaved by always advancing the agent
    # whose clock is earliest.
    plans = {
        a: [rng.choice(AGENTS[a]) for _ in range(rng.randint(*cfg.tasks_per_agent))] for a in agents
    }
    later: list[tuple[str, str]] = []
    while any(plans.values()):
        agent = min((a for a in agents if plans[a]), key=lambda a: wf.clocks[a])
        if rng.random() < cfg.p_compound and len(AGENTS[agent]) >= 2:
            _compound(wf, agent)
            plans[agent].pop(0)
            continue
        _run_task(wf, agent, plans[agent].pop(0), agents, later)
    for agent, operation in later:  # same operation, unrelated input, much later
        wf.tick(agent, 5.0, 60.0)
        wf.attempt(agent, operation, step=wf.next_step(), attempt=1, fails=False)
    return wf


def generate(cfg: SyntheticConfig | None = None) -> Workload:
    """Workflows, their events in arrival waves, and the true recoveries. Deterministic for a
    given config (seed included)."""
    cfg = cfg or SyntheticConfig()
    rng = random.Random(cfg.seed)
    arrivals: list[tuple[datetime, Kind, dict[str, Any]]] = []
    truth: set[tuple[UUID, UUID]] = set()
    unrecovered = 0
    workflows = [_workflow(cfg, rng) for _ in range(cfg.workflows)]
    span = cfg.workflow_spread_s + 600.0
    wave_length = span / cfg.waves
    for wf in workflows:
        truth |= wf.truth
        unrecovered += wf.unrecovered
        for kind, row in wf.events:
            at = row.get("occurred_at") or row["started_at"]
            delay = rng.expovariate(1.0)
            if rng.random() < cfg.late_fraction:
                delay += rng.uniform(1, 3) * wave_length
            arrivals.append((at + timedelta(seconds=delay), kind, row))
    arrivals.sort(key=lambda item: item[0])
    waves: list[list[Event]] = [[] for _ in range(cfg.waves)]
    for arrival, kind, row in arrivals:
        index = min(cfg.waves - 1, int((arrival - cfg.start).total_seconds() // wave_length))
        waves[index].append(Event(kind, row, arrival, index))
    for wave in waves:  # delivery order within a wave is arbitrary
        rng.shuffle(wave)
    counts = {
        kind: sum(1 for wf in workflows for k, _ in wf.events if k == kind)
        for kind in ("error", "success", "step")
    }
    return Workload(
        waves=waves,
        truth=truth,
        errors=counts["error"],
        successes=counts["success"],
        steps=counts["step"],
        unrecovered_errors=unrecovered,
    )
