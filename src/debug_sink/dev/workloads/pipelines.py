"""Long item pipelines: a held-out labeled workload for the correlator.

Owns :func:`generate` (pure, seeded). Written from a description of how such agents behave,
not from the correlator's rules or weights, with conventions that differ from
:mod:`debug_sink.dev.synthetic` (the workload the weights were tuned on):

- **Shape.** A workflow is one job: an orchestrator pushes 8-30 items through a fixed
  pipeline of service agents, ``retriever.search -> llm-main.complete -> validator.check ->
  writer.emit``, announcing each item (``orchestrator.dispatch``) and collecting it
  (``orchestrator.collect``). The same operations recur as new work for every item. Up to two
  items are in flight at once and every agent is one worker serving requests in order, so
  the items' events interleave.
- **Retry** in place: same agent, operation and ``step_number``, ``attempt`` + 1, after a
  0.5-8 s backoff (the wire format's convention for a retried step).
- **Fallback** to another agent with the *same* operation (``llm-main.complete`` ->
  ``llm-backup.complete``), or to a degraded operation of the same agent
  (``retriever.search_cache``, ``writer.emit_plain``); sometimes after failed retries. A
  fallback can fail too.
- **Giving up** drops the item: its remaining stages are skipped and the pipeline moves on, so
  the next successes of the same operations are new work, not recoveries.
- **What agents report** is a trait of each agent, drawn per workflow: step rows (75%),
  ``execution_step`` on errors and successes (60%), ``retry_count`` (40%), ``recovery_success``
  as the type of its recovering successes (30%; otherwise every success is
  ``task_completion``), ``recovery_strategy`` on errors (50%). An agent that declares a
  strategy and then gives up names the strategy it *intended* (``fallback`` 40%, ``retry``
  30%, ``skip`` 20%, ``abort`` 10%): the fallback was not available, the retry budget was
  spent. **No agent ever sets** ``recovery_attempted``.
- **Stated links**: a share ``stated_fraction`` of the agents name the errors their recovering
  successes recover (``recovers_error_ids``).
- **Delivery** (:mod:`.delivery`): a random delay per event, 15% of the events 1-4 waves
  late, 3% delivered twice; agents' clocks skewed by up to 200 ms.

Truth: a recovering success recovers every error of its item's stage before it (the failed
attempts, and the failed primary of a fallback). Not modelled: items that span workflows.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from debug_sink.dev.synthetic import Kind, Workload
from debug_sink.dev.workloads.delivery import Delivery, workload

__all__ = ["PipelineConfig", "generate"]


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of the pipeline and how its agent handles a failure."""

    agent: str
    operation: str
    failure_rate: float
    p_retry: float  # after a failure: retry ...
    p_fallback: float  # ... or fall back ... else give up
    fallback: tuple[str, str] | None
    error_types: tuple[str, ...]
    duration_s: tuple[float, float]


STAGES: Final = (
    Stage(
        "retriever",
        "search",
        0.15,
        0.5,
        0.25,
        ("retriever", "search_cache"),
        ("TimeoutError", "HTTPError"),
        (0.3, 2.5),
    ),
    Stage(
        "llm-main",
        "complete",
        0.2,
        0.35,
        0.4,
        ("llm-backup", "complete"),
        ("RateLimitError", "ContextLengthExceeded", "LLMOutputParseError"),
        (1.0, 8.0),
    ),
    Stage("validator", "check", 0.12, 0.3, 0.0, None, ("SchemaValidationError",), (0.1, 1.0)),
    Stage(
        "writer",
        "emit",
        0.08,
        0.6,
        0.2,
        ("writer", "emit_plain"),
        ("IOError", "ConflictError"),
        (0.2, 1.5),
    ),
)
AGENTS: Final = ("orchestrator", "retriever", "llm-main", "llm-backup", "validator", "writer")
#: What an agent that declares strategies names when it gives up (the strategy it intended).
GIVE_UP_STRATEGIES: Final = ("fallback", "retry", "skip", "abort")
GIVE_UP_WEIGHTS: Final = (0.4, 0.3, 0.2, 0.1)


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Knobs of :func:`generate`."""

    workflows: int = 150
    seed: int = 101
    items: tuple[int, int] = (8, 30)
    in_flight: int = 2
    max_retries: int = 2
    p_retry_fails: float = 0.35
    p_fallback_fails: float = 0.15
    stated_fraction: float = 0.0  # agents that name the errors their successes recover
    waves: int = 6
    late_fraction: float = 0.15
    late_waves: tuple[float, float] = (1.0, 4.0)
    duplicate_fraction: float = 0.03
    clock_skew_ms: int = 200
    start: datetime = datetime(2026, 2, 2, 8, 0, tzinfo=UTC)
    workflow_spread_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class Traits:
    """What one agent reports, drawn per workflow."""

    steps: bool
    execution_step: bool
    retry_count: bool
    recovery_type: bool
    declares: bool
    states: bool


@dataclass(slots=True)
class _Job:
    cfg: PipelineConfig
    rng: random.Random
    correlation_id: UUID
    traits: dict[str, Traits]
    skew: dict[str, timedelta]
    free_at: dict[str, datetime]
    events: list[tuple[Kind, dict[str, Any]]] = field(default_factory=list)
    truth: set[tuple[UUID, UUID]] = field(default_factory=set)
    stated: set[tuple[UUID, UUID]] = field(default_factory=set)
    unrecovered: int = 0
    steps: int = 0

    def new_id(self) -> UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def next_step(self) -> int:
        self.steps += 1
        return self.steps

    def run(
        self, agent: str, operation: str, ready: datetime, duration_s: tuple[float, float]
    ) -> tuple[datetime, datetime]:
        """Book ``agent`` (one worker, requests in order): the attempt's start and end."""
        started = max(ready, self.free_at[agent]) + timedelta(seconds=self.rng.uniform(0.01, 0.2))
        ended = started + timedelta(seconds=self.rng.uniform(*duration_s))
        self.free_at[agent] = ended
        return started, ended

    def step_row(
        self,
        agent: str,
        operation: str,
        *,
        number: int,
        attempt: int,
        started: datetime,
        ended: datetime,
        error_id: UUID | None = None,
        success_id: UUID | None = None,
    ) -> None:
        if not self.traits[agent].steps:
            return
        self.events.append(
            (
                "step",
                {
                    "id": self.new_id(),
                    "correlation_id": self.correlation_id,
                    "step_number": number,
                    "attempt": attempt,
                    "step_type": "execution",
                    "agent_name": agent,
                    "operation_name": operation,
                    "status": "failed" if error_id else "completed",
                    "error_event_id": error_id,
                    "success_event_id": success_id,
                    "started_at": started + self.skew[agent],
                    "completed_at": ended + self.skew[agent],
                    "duration_ms": int((ended - started) / timedelta(milliseconds=1)),
                },
            )
        )

    def error(
        self,
        stage: Stage,
        agent: str,
        operation: str,
        *,
        number: int,
        attempt: int,
        ready: datetime,
        next_action: str,
    ) -> tuple[UUID, datetime]:
        """A failed attempt; ``next_action`` is what the agent does next (retry, fallback or
        give_up), which it may declare."""
        traits = self.traits[agent]
        started, ended = self.run(agent, operation, ready, stage.duration_s)
        strategy = None
        if traits.declares:
            if next_action == "give_up":
                strategy = self.rng.choices(GIVE_UP_STRATEGIES, GIVE_UP_WEIGHTS)[0]
            else:
                strategy = next_action
        error_id = self.new_id()
        self.events.append(
            (
                "error",
                {
                    "id": error_id,
                    "correlation_id": self.correlation_id,
                    "error_type": self.rng.choice(stage.error_types),
                    "error_category": "external",
                    "error_severity": self.rng.choice(("medium", "high")),
                    "error_message": f"{operation} failed",
                    "agent_name": agent,
                    "operation_name": operation,
                    "execution_step": number if traits.execution_step else None,
                    "is_recoverable": next_action != "give_up",
                    "recovery_attempted": False,
                    "recovery_strategy": strategy,
                    "occurred_at": ended + self.skew[agent],
                },
            )
        )
        self.step_row(
            agent,
            operation,
            number=number,
            attempt=attempt,
            started=started,
            ended=ended,
            error_id=error_id,
        )
        return error_id, ended

    def success(
        self,
        agent: str,
        operation: str,
        *,
        number: int,
        attempt: int,
        ready: datetime,
        duration_s: tuple[float, float],
        recovers: list[UUID] | None = None,
    ) -> tuple[UUID, datetime]:
        traits = self.traits[agent]
        started, ended = self.run(agent, operation, ready, duration_s)
        success_id = self.new_id()
        recovering = bool(recovers)
        states = recovering and traits.states
        self.events.append(
            (
                "success",
                {
                    "id": success_id,
                    "correlation_id": self.correlation_id,
                    "success_type": (
                        "recovery_success"
                        if recovering and traits.recovery_type
                        else "task_completion"
                    ),
                    "operation_name": operation,
                    "agent_name": agent,
                    "execution_step": number if traits.execution_step else None,
                    "retry_count": attempt - 1 if traits.retry_count else 0,
                    "occurred_at": ended + self.skew[agent],
                    "recovers_error_ids": list(recovers) if states and recovers else None,
                },
            )
        )
        self.step_row(
            agent,
            operation,
            number=number,
            attempt=attempt,
            started=started,
            ended=ended,
            success_id=success_id,
        )
        if recovers:
            self.truth.update((error, success_id) for error in recovers)
            if states:
                self.stated.update((error, success_id) for error in recovers)
        return success_id, ended

    def stage(self, stage: Stage, ready: datetime) -> tuple[bool, datetime]:
        """Run one stage of an item: (done, when the item may go on)."""
        cfg, rng = self.cfg, self.rng
        number = self.next_step()
        if rng.random() >= stage.failure_rate:
            _, ended = self.success(
                stage.agent,
                stage.operation,
                number=number,
                attempt=1,
                ready=ready,
                duration_s=stage.duration_s,
            )
            return True, ended
        draw = rng.random()
        if draw < stage.p_retry:
            action = "retry"
        elif draw < stage.p_retry + stage.p_fallback and stage.fallback is not None:
            action = "fallback"
        else:
            action = "give_up"
        errors: list[UUID] = []
        attempt, at = 1, ready
        while True:
            if action == "retry" and attempt > cfg.max_retries:
                action = (
                    "fallback" if stage.fallback is not None and rng.random() < 0.5 else "give_up"
                )
            error, at = self.error(
                stage,
                stage.agent,
                stage.operation,
                number=number,
                attempt=attempt,
                ready=at,
                next_action=action,
            )
            errors.append(error)
            if action != "retry":
                break
            attempt += 1
            at += timedelta(seconds=rng.uniform(0.5, 8.0))  # backoff
            if rng.random() >= cfg.p_retry_fails:
                _, ended = self.success(
                    stage.agent,
                    stage.operation,
                    number=number,
                    attempt=attempt,
                    ready=at,
                    duration_s=stage.duration_s,
                    recovers=errors,
                )
                return True, ended
        if action == "fallback":
            assert stage.fallback is not None
            agent, operation = stage.fallback
            fallback_step = self.next_step()
            if rng.random() >= cfg.p_fallback_fails:
                _, ended = self.success(
                    agent,
                    operation,
                    number=fallback_step,
                    attempt=1,
                    ready=at,
                    duration_s=stage.duration_s,
                    recovers=errors,
                )
                return True, ended
            error, at = self.error(
                stage,
                agent,
                operation,
                number=fallback_step,
                attempt=1,
                ready=at,
                next_action="give_up",
            )
            errors.append(error)
        self.unrecovered += len(errors)
        return False, at

    def item(self, ready: datetime) -> datetime:
        """One item through the pipeline; when it is done (or dropped)."""
        _, at = self.success(
            "orchestrator",
            "dispatch",
            number=self.next_step(),
            attempt=1,
            ready=ready,
            duration_s=(0.01, 0.1),
        )
        for stage in STAGES:
            done, at = self.stage(stage, at)
            if not done:
                return at
        _, at = self.success(
            "orchestrator",
            "collect",
            number=self.next_step(),
            attempt=1,
            ready=at,
            duration_s=(0.01, 0.1),
        )
        return at


def _job(cfg: PipelineConfig, rng: random.Random) -> _Job:
    start = cfg.start + timedelta(seconds=rng.uniform(0, cfg.workflow_spread_s))
    skew_s = cfg.clock_skew_ms / 1000
    job = _Job(
        cfg,
        rng,
        uuid.UUID(int=rng.getrandbits(128), version=4),
        traits={
            agent: Traits(
                steps=rng.random() < 0.75,
                execution_step=rng.random() < 0.6,
                retry_count=rng.random() < 0.4,
                recovery_type=rng.random() < 0.3,
                declares=rng.random() < 0.5,
                states=rng.random() < cfg.stated_fraction,
            )
            for agent in AGENTS
        },
        skew={a: timedelta(seconds=rng.uniform(-skew_s, skew_s)) for a in AGENTS},
        free_at=dict.fromkeys(AGENTS, start),
    )
    finished: list[datetime] = []
    for index in range(rng.randint(*cfg.items)):
        ready = finished[index - cfg.in_flight] if index >= cfg.in_flight else start
        ready += timedelta(seconds=rng.uniform(0.1, 3.0))
        finished.append(job.item(ready))
    return job


def generate(cfg: PipelineConfig | None = None) -> Workload:
    """The jobs' events in arrival waves and the true recoveries; deterministic per config."""
    cfg = cfg or PipelineConfig()
    rng = random.Random(cfg.seed)
    jobs = [_job(cfg, rng) for _ in range(cfg.workflows)]
    events = [event for job in jobs for event in job.events]
    how = Delivery(
        start=cfg.start,
        span_s=cfg.workflow_spread_s + 1800.0,
        waves=cfg.waves,
        late_fraction=cfg.late_fraction,
        late_waves=cfg.late_waves,
        duplicate_fraction=cfg.duplicate_fraction,
    )
    return workload(jobs, events, rng, how)
