"""Fan-out / fan-in workflows with parallel branches: a held-out labeled workload.

Owns :func:`generate` (pure, seeded). Written from a description of how such agents behave,
not from the correlator's rules or weights, with conventions that differ from
:mod:`debug_sink.dev.synthetic` (the tuning workload) and :mod:`.pipelines`:

- **Shape.** ``planner.plan`` splits a job into 3-8 shards processed **in parallel** by a pool
  of workers that all report one agent name, ``worker``: several branches run the *same
  operation of the same agent at the same time*. A branch is a parent step (``step_type``
  ``branch``); its operations ``extract -> normalize -> verify`` (verify in half the
  branches) are child steps (``parent_step_id``). Image shards start with
  ``ocr.extract_ocr`` (a single OCR agent) instead of ``worker.extract``. Then
  ``reducer.merge`` and ``planner.report``.
- **Step numbers** are claimed in start order across branches, so they interleave; a retry
  keeps its step number with ``attempt`` + 1. Whether errors and successes carry
  ``execution_step`` is a trait of the workflow (half of them): otherwise only the step rows
  (``error_event_id`` / ``success_event_id``) know the numbers.
- **Retry** in the branch after a 1-5 s backoff, possibly on another worker instance (its own
  clock skew, up to 300 ms). Successes always report ``retry_count``; no agent of this fleet
  ever types a success ``recovery_success``.
- **Delegation**: a failed ``worker.extract`` is handed to ``ocr.extract_ocr`` (another agent
  and operation), directly or after failed retries; the OCR agent also does first-try work for
  image shards, so its successes are not all recoveries.
- **Giving up** drops the shard; the reducer merges the others (new work).
- ``recovery_attempted`` is set on an error exactly when a retry or delegation follows.
  ``recovery_strategy`` is declared in 60% of the workflows: ``retry``, ``delegate``, and on
  giving up ``skip`` (40%), ``retry`` (20%: the budget was spent) or nothing.
- **Stated links**: agents (by name, per workflow) state their recoveries with probability
  ``stated_fraction``.
- **Delivery** (:mod:`.delivery`): 10% of the events 1-3 waves late, 5% delivered twice, and
  in 15% of the workflows one agent (worker or OCR) is offline: all its events two waves late.

Truth: a recovering success recovers every error of its shard's operation before it.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from debug_sink.dev.synthetic import Kind, Workload
from debug_sink.dev.workloads.delivery import Delivery, Slot, number_slots, numbered, workload

__all__ = ["BranchConfig", "generate"]

#: Failure rate of an attempt, per operation.
FAILURE_RATES: Final = {"extract": 0.2, "normalize": 0.1, "verify": 0.15, "extract_ocr": 0.12}
ERROR_TYPES: Final = {
    "extract": ("ParseError", "TimeoutError"),
    "normalize": ("ValidationError",),
    "verify": ("AssertionFailed", "TimeoutError"),
    "extract_ocr": ("OCRError", "TimeoutError"),
}
AGENTS: Final = ("planner", "worker", "ocr", "reducer")


@dataclass(frozen=True, slots=True)
class BranchConfig:
    """Knobs of :func:`generate`."""

    workflows: int = 400
    seed: int = 202
    shards: tuple[int, int] = (3, 8)
    p_image: float = 0.3
    p_retry: float = 0.5  # after a failure: retry ...
    p_delegate: float = 0.25  # ... or hand a failed extract to OCR ... else give up
    max_retries: int = 3
    p_retry_fails: float = 0.3
    p_delegate_fails: float = 0.1
    p_declares: float = 0.6  # workflows whose agents declare recovery_strategy
    p_execution_step: float = 0.5  # workflows whose errors / successes carry execution_step
    stated_fraction: float = 0.0
    waves: int = 6
    late_fraction: float = 0.1
    late_waves: tuple[float, float] = (1.0, 3.0)
    duplicate_fraction: float = 0.05
    p_offline: float = 0.15
    instance_skew_ms: int = 300
    start: datetime = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
    workflow_spread_s: float = 3600.0


@dataclass(slots=True)
class _Job:
    cfg: BranchConfig
    rng: random.Random
    correlation_id: UUID
    declares: bool
    execution_step: bool
    states: dict[str, bool]
    skew: dict[str, timedelta]
    ocr_free_at: datetime
    rows: list[tuple[Kind, dict[str, Any], Slot | None]] = field(default_factory=list)
    truth: set[tuple[UUID, UUID]] = field(default_factory=set)
    stated: set[tuple[UUID, UUID]] = field(default_factory=set)
    unrecovered: int = 0

    def new_id(self) -> UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def instance_skew(self) -> timedelta:
        skew_s = self.cfg.instance_skew_ms / 1000
        return timedelta(seconds=self.rng.uniform(-skew_s, skew_s))

    def attempt(
        self,
        agent: str,
        operation: str,
        slot: Slot,
        attempt: int,
        ready: datetime,
        *,
        parent: UUID | None,
        fails: bool,
        next_action: str | None = None,
        recovers: list[UUID] | None = None,
    ) -> tuple[UUID, datetime]:
        """One attempt of an operation: its step row and its error or success."""
        rng = self.rng
        if agent == "ocr":  # one OCR worker, requests in order
            started = max(ready, self.ocr_free_at) + timedelta(seconds=rng.uniform(0.05, 0.3))
            skew = self.skew["ocr"]
        else:  # any instance of the pool
            started = ready + timedelta(seconds=rng.uniform(0.02, 0.2))
            skew = self.skew[agent] if agent != "worker" else self.instance_skew()
        if attempt == 1:
            slot.first_start = started
        ended = started + timedelta(seconds=rng.uniform(0.5, 6.0))
        if agent == "ocr":
            self.ocr_free_at = ended
        event_id = self.new_id()
        if fails:
            strategy = None
            if self.declares:
                if next_action == "give_up":
                    strategy = rng.choices(("skip", "retry", None), (0.4, 0.2, 0.4))[0]
                else:
                    strategy = next_action
            row: dict[str, Any] = {
                "id": event_id,
                "correlation_id": self.correlation_id,
                "error_type": rng.choice(ERROR_TYPES[operation]),
                "error_category": "agent",
                "error_severity": rng.choice(("low", "medium", "high")),
                "error_message": f"{operation} failed",
                "agent_name": agent,
                "operation_name": operation,
                "is_recoverable": True,
                "recovery_attempted": next_action in ("retry", "delegate"),
                "recovery_strategy": strategy,
                "occurred_at": ended + skew,
            }
            self.rows.append(("error", row, slot if self.execution_step else None))
        else:
            states = bool(recovers) and self.states[agent]
            row = {
                "id": event_id,
                "correlation_id": self.correlation_id,
                "success_type": "task_completion",
                "operation_name": operation,
                "agent_name": agent,
                "retry_count": attempt - 1,
                "occurred_at": ended + skew,
                "recovers_error_ids": list(recovers) if states and recovers else None,
            }
            self.rows.append(("success", row, slot if self.execution_step else None))
            if recovers:
                self.truth.update((error, event_id) for error in recovers)
                if states:
                    self.stated.update((error, event_id) for error in recovers)
        step = {
            "id": self.new_id(),
            "correlation_id": self.correlation_id,
            "attempt": attempt,
            "step_type": "execution",
            "agent_name": agent,
            "operation_name": operation,
            "status": "failed" if fails else "completed",
            "error_event_id": event_id if fails else None,
            "success_event_id": None if fails else event_id,
            "started_at": started + skew,
            "completed_at": ended + skew,
            "duration_ms": int((ended - started) / timedelta(milliseconds=1)),
            "parent_step_id": parent,
        }
        self.rows.append(("step", step, slot))
        return event_id, ended

    def operation(
        self, agent: str, operation: str, ready: datetime, parent: UUID, slots: list[Slot]
    ) -> tuple[bool, datetime]:
        """Run one operation of a branch, with its recovery: (done, when)."""
        cfg, rng = self.cfg, self.rng
        slot = Slot(ready)
        slots.append(slot)
        fails = rng.random() < FAILURE_RATES[operation]
        if not fails:
            _, at = self.attempt(agent, operation, slot, 1, ready, parent=parent, fails=False)
            return True, at
        draw = rng.random()
        can_delegate = operation == "extract"
        if draw < cfg.p_retry:
            action = "retry"
        elif draw < cfg.p_retry + cfg.p_delegate and can_delegate:
            action = "delegate"
        else:
            action = "give_up"
        errors: list[UUID] = []
        attempt, at = 1, ready
        while True:
            if action == "retry" and attempt > cfg.max_retries:
                action = "delegate" if can_delegate and rng.random() < 0.5 else "give_up"
            error, at = self.attempt(
                agent,
                operation,
                slot,
                attempt,
                at,
                parent=parent,
                fails=True,
                next_action=action,
            )
            errors.append(error)
            if action != "retry":
                break
            attempt += 1
            at += timedelta(seconds=rng.uniform(1.0, 5.0))
            if rng.random() >= cfg.p_retry_fails:
                _, at = self.attempt(
                    agent,
                    operation,
                    slot,
                    attempt,
                    at,
                    parent=parent,
                    fails=False,
                    recovers=errors,
                )
                return True, at
        if action == "delegate":
            ocr_slot = Slot(at)
            slots.append(ocr_slot)
            handed = at + timedelta(seconds=rng.uniform(0.1, 2.0))
            if rng.random() >= cfg.p_delegate_fails:
                _, at = self.attempt(
                    "ocr",
                    "extract_ocr",
                    ocr_slot,
                    1,
                    handed,
                    parent=parent,
                    fails=False,
                    recovers=errors,
                )
                return True, at
            error, at = self.attempt(
                "ocr",
                "extract_ocr",
                ocr_slot,
                1,
                handed,
                parent=parent,
                fails=True,
                next_action="give_up",
            )
            errors.append(error)
        self.unrecovered += len(errors)
        return False, at

    def branch(self, ready: datetime, slots: list[Slot]) -> datetime:
        """One shard: a parent step and its operations; when it ends."""
        rng = self.rng
        branch_id = self.new_id()
        slot = Slot(ready)
        slots.append(slot)
        first = ("ocr", "extract_ocr") if rng.random() < self.cfg.p_image else ("worker", "extract")
        plan = [first, ("worker", "normalize")]
        if rng.random() < 0.5:
            plan.append(("worker", "verify"))
        at = ready
        done = True
        for agent, operation in plan:
            done, at = self.operation(agent, operation, at, branch_id, slots)
            if not done:
                break
        self.rows.append(
            (
                "step",
                {
                    "id": branch_id,
                    "correlation_id": self.correlation_id,
                    "attempt": 1,
                    "step_type": "branch",
                    "agent_name": "worker",
                    "operation_name": "shard",
                    "status": "completed" if done else "failed",
                    "started_at": ready,
                    "completed_at": at,
                    "duration_ms": int((at - ready) / timedelta(milliseconds=1)),
                },
                slot,
            )
        )
        return at

    def single(self, agent: str, operation: str, ready: datetime, slots: list[Slot]) -> datetime:
        slot = Slot(ready)
        slots.append(slot)
        _, at = self.attempt(agent, operation, slot, 1, ready, parent=None, fails=False)
        return at


def _job(cfg: BranchConfig, rng: random.Random) -> tuple[_Job, dict[tuple[UUID, str], float]]:
    start = cfg.start + timedelta(seconds=rng.uniform(0, cfg.workflow_spread_s))
    job = _Job(
        cfg,
        rng,
        uuid.UUID(int=rng.getrandbits(128), version=4),
        declares=rng.random() < cfg.p_declares,
        execution_step=rng.random() < cfg.p_execution_step,
        states={agent: rng.random() < cfg.stated_fraction for agent in AGENTS},
        skew={agent: timedelta(seconds=rng.uniform(-0.1, 0.1)) for agent in AGENTS},
        ocr_free_at=start,
    )
    slots: list[Slot] = []
    at = job.single("planner", "plan", start, slots)
    ends = [
        job.branch(at + timedelta(seconds=rng.uniform(0, 2.0)), slots)
        for _ in range(rng.randint(*cfg.shards))
    ]
    at = job.single("reducer", "merge", max(ends), slots)
    job.single("planner", "report", at, slots)
    number_slots(slots)
    offline: dict[tuple[UUID, str], float] = {}
    if rng.random() < cfg.p_offline:
        offline[(job.correlation_id, rng.choice(("worker", "ocr")))] = 2.0
    return job, offline


def generate(cfg: BranchConfig | None = None) -> Workload:
    """The jobs' events in arrival waves and the true recoveries; deterministic per config."""
    cfg = cfg or BranchConfig()
    rng = random.Random(cfg.seed)
    jobs, offline = [], {}
    for _ in range(cfg.workflows):
        job, away = _job(cfg, rng)
        jobs.append(job)
        offline.update(away)
    events = [row for job in jobs for row in numbered(job.rows)]
    how = Delivery(
        start=cfg.start,
        span_s=cfg.workflow_spread_s + 600.0,
        waves=cfg.waves,
        late_fraction=cfg.late_fraction,
        late_waves=cfg.late_waves,
        duplicate_fraction=cfg.duplicate_fraction,
    )
    return workload(jobs, events, rng, how, offline=offline)
