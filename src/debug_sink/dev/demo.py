"""The demo fleet (``debug-sink demo``, ``debug-sink dev --demo``): synthetic agents that use
the SDK like real ones.

Owns :class:`DemoFleet`, a few concurrent "agents" that run made-up but realistic workflows
through :class:`~debug_sink.sdk.manager.DebugStateManager` into Kafka: a planner hands work to
researchers, coders, reviewers and writers (transformations with the state at hand-over);
every operation is a step with a checkpoint snapshot and an LLM call; operations fail with
several error types (rate limits, timeouts, unparseable model output, context overflow, tool
and validation errors) of different categories and severities; agents retry, fall back to a
cheaper operation or give up, and a successful retry or fallback is recorded as a
``recovery_success``. A fallback runs as a child step of the operation that failed and states
the errors it recovers (a *stated* link); a retry's recovery is left to the correlator's
inference. A workflow whose operation gives up stops there and delivers a partial answer (its
last step failed: the web view and ``debug-sink workflows`` call it failed). Agent state
carries an ``api_key`` so the redaction is visible.

The point is that ``show``, ``workflows``, ``patterns``, ``errors`` and ``known-fixes`` have
something real to display within seconds of ``debug-sink dev --demo``: the first workflows
are emitted without pauses, later ones at a steady pace.

Time adds up. Each workflow is planned first (:func:`plan_workflow`, pure: every random
choice, every duration), then emitted on a virtual clock that starts the plan's duration
before the moment of emission and advances by exactly the durations the events report: an
LLM call of 3.5 s moves the clock 3.5 s, a TimeoutError comes after the 30 s it names, a
retry waits its backoff. So a workflow spans what its steps took, a recovery comes as long
after its error as the retry took, and no event is dated in the future -- the demo's
history ends now. (The events are sent faster than that: the clock is the agents', read
through :class:`~debug_sink.sdk.manager.DebugStateManager`'s ``clock`` and ``monotonic``.)

Not a benchmark and not ground truth for the correlator (:mod:`debug_sink.dev.synthetic` is).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from debug_sink.sdk.manager import DebugStateManager
from debug_sink.settings import Settings

__all__ = ["DemoFleet", "VirtualClock", "WorkflowPlan", "plan_workflow"]


class RateLimitError(Exception):
    """The model provider answered 429."""


class LLMOutputParseError(Exception):
    """The model's answer was not the JSON the agent asked for."""


class ContextLengthExceededError(Exception):
    """The prompt no longer fits the model's context window."""


class ToolError(Exception):
    """A tool the agent called failed."""


class SchemaValidationError(Exception):
    """The agent's output did not validate."""


@dataclass(frozen=True, slots=True)
class Failure:
    exc: type[Exception]
    error_type: str
    category: Literal["agent", "framework", "external", "user"]
    severity: Literal["low", "medium", "high", "critical"]
    message: str
    code: str
    recoverable: bool
    #: How long the failing attempt takes (ms): the LLM call, then the work until it fails.
    llm_ms: tuple[int, int]
    work_ms: tuple[int, int]


FAILURES: Final[tuple[Failure, ...]] = (
    Failure(RateLimitError, "RateLimitError", "external", "medium",
            "429 Too Many Requests: rate limit of 500k tokens/min reached", "E429", True,
            (80, 400), (0, 30)),
    Failure(TimeoutError, "TimeoutError", "external", "high",
            "upstream did not answer within 30s", "ETIMEDOUT", True,
            (150, 4000), (30_000, 30_050)),
    Failure(LLMOutputParseError, "LLMOutputParseError", "agent", "medium",
            "expected a JSON object with keys plan, steps; got prose", "E_PARSE", True,
            (800, 4000), (5, 60)),
    Failure(ContextLengthExceededError, "ContextLengthExceeded", "framework", "high",
            "prompt of 131,204 tokens exceeds the 128,000-token context window", "E_CTX", True,
            (60, 250), (0, 20)),
    Failure(ToolError, "ToolError", "external", "medium",
            "web_search returned HTTP 503", "E_TOOL", True,
            (150, 4000), (200, 2500)),
    Failure(SchemaValidationError, "ValidationError", "agent", "low",
            "field 'summary' is required", "E_SCHEMA", False,
            (150, 4000), (10, 200)),
)  # fmt: skip
#: Waits before the next attempt (ms), by the strategy chosen after a failure.
BACKOFF_MS: Final = {"retry_with_backoff": (1000, 4000), "retry": (300, 900), "fallback": (50, 300)}

#: Agents, their operations, and each operation's cheaper fallback.
AGENTS: Final[dict[str, tuple[str, ...]]] = {
    "researcher": ("web_search", "fetch_page", "summarize"),
    "coder": ("generate_patch", "run_tests"),
    "reviewer": ("review",),
    "writer": ("draft_answer",),
}
FALLBACKS: Final[dict[str, str]] = {
    "plan": "plan_simple",
    "web_search": "search_cache",
    "fetch_page": "fetch_cached",
    "summarize": "summarize_short",
    "generate_patch": "generate_with_small_model",
    "run_tests": "run_tests_subset",
    "review": "review_checklist",
    "draft_answer": "draft_from_template",
}
MODELS: Final = ("gpt-4o-mini", "claude-sonnet", "llama-3.1-70b")
REQUESTS: Final = (
    "Why did last night's payments batch fail?",
    "Fix the flaky test in the checkout service",
    "Summarise this week's customer complaints",
    "Upgrade the HTTP client library and make CI green",
    "Draft a post-mortem for the search outage",
    "Find every caller of the deprecated billing API",
)


# -- time ---------------------------------------------------------------------------------


class VirtualClock:
    """An agent's clock during one workflow: starts at ``start``, moves only by
    :meth:`advance`."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self._origin = start

    def advance(self, ms: float) -> None:
        self.now += timedelta(milliseconds=ms)

    def seconds(self) -> float:
        """Monotonic seconds since the start (step durations are measured on it)."""
        return (self.now - self._origin).total_seconds()


#: The clock of the workflow the current task is emitting (each worker task has its own).
_CLOCK: contextvars.ContextVar[VirtualClock | None] = contextvars.ContextVar(
    "demo_clock", default=None
)


def _now() -> datetime:
    clock = _CLOCK.get()
    return clock.now if clock is not None else datetime.now(UTC)


def _monotonic() -> float:
    clock = _CLOCK.get()
    return clock.seconds() if clock is not None else 0.0


# -- plans --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of an operation: a step with a checkpoint, an LLM call, then a success or
    a failure (and the strategy chosen after it, and the wait before the next attempt)."""

    agent: str
    operation: str
    attempt: int
    #: A fallback is a new step; a retry is the same step number's next attempt.
    new_step: bool
    #: This attempt runs the cheaper fallback of a failed operation.
    fallback: bool
    llm_ms: float
    prompt_tokens: int
    completion_tokens: int
    llm_quality: float
    partial: bool
    work_ms: int
    failure: Failure | None
    strategy: str | None
    wait_ms: int
    quality: float
    success_state: bool

    @property
    def duration_ms(self) -> float:
        return self.llm_ms + self.work_ms + self.wait_ms


@dataclass(frozen=True, slots=True)
class Handover:
    source: str
    target: str
    confidence: float
    gap_ms: int


@dataclass(slots=True)
class WorkflowPlan:
    """Everything one workflow does, and how long each part takes (see the module doc)."""

    request: str
    model: str
    api_key: str
    #: Hand-overs and attempts in the order they happen.
    parts: list[Handover | Attempt] = field(default_factory=list)
    deliver_ms: int = 0
    deliver_quality: float = 1.0
    #: An operation failed for good: the workflow stops there and delivers a partial answer
    #: (its last step failed: ``debug-sink workflows`` calls it failed).
    gave_up: bool = False

    @property
    def duration_ms(self) -> float:
        return self.deliver_ms + sum(
            p.duration_ms if isinstance(p, Attempt) else p.gap_ms for p in self.parts
        )


def _operation(rng: random.Random, agent: str, operation: str) -> list[Attempt]:
    """An operation's attempts: retry up to twice, then fall back once, else give up."""
    attempts: list[Attempt] = []
    attempt, fell_back, new_step = 1, False, True
    while True:
        failure = rng.choice(FAILURES) if rng.random() < 0.22 else None
        llm_range, work_range = (
            ((150, 4000), (80, 5000)) if failure is None else (failure.llm_ms, failure.work_ms)
        )
        strategy = None
        if failure is not None:
            if failure.recoverable and attempt < 3:
                strategy = "retry_with_backoff" if attempt == 1 else "retry"
            elif not fell_back and operation in FALLBACKS:
                strategy = f"fallback:{FALLBACKS[operation]}"
        kind = (strategy or "").split(":")[0]
        wait = rng.randint(*BACKOFF_MS[kind]) if kind in BACKOFF_MS else 0
        attempts.append(
            Attempt(
                agent=agent,
                operation=operation,
                attempt=attempt,
                new_step=new_step,
                fallback=fell_back,
                llm_ms=round(rng.uniform(*llm_range), 1),
                prompt_tokens=rng.randint(300, 6000),
                completion_tokens=rng.randint(50, 900),
                llm_quality=round(rng.uniform(0.5, 1.0), 2),
                partial=rng.random() >= 0.85,
                work_ms=rng.randint(*work_range),
                failure=failure,
                strategy=strategy,
                wait_ms=wait,
                quality=round(rng.uniform(0.6, 1.0), 2),
                success_state=rng.random() < 0.3,
            )
        )
        if failure is None or strategy is None:
            return attempts
        if strategy.startswith("fallback:"):
            operation, attempt, fell_back, new_step = FALLBACKS[operation], 1, True, True
        else:
            attempt, new_step = attempt + 1, False


def plan_workflow(rng: random.Random) -> WorkflowPlan:
    """One workflow, decided up front: plan, hand over to two or three agents, deliver."""
    plan = WorkflowPlan(
        request=rng.choice(REQUESTS),
        model=rng.choice(MODELS),
        api_key=f"sk-demo-{rng.getrandbits(64):016x}",
    )
    work = [("planner", "plan")]
    team = [a for a in AGENTS if rng.random() < 0.75] or ["writer"]
    previous = "planner"
    handovers = {}
    for agent in team:
        handovers[len(work)] = Handover(
            previous, agent, round(rng.uniform(0.6, 0.99), 2), rng.randint(20, 300)
        )
        work += [(agent, operation) for operation in AGENTS[agent]]
        previous = agent
    for index, (agent, operation) in enumerate(work):
        if index in handovers:
            plan.parts.append(handovers[index])
        attempts = _operation(rng, agent, operation)
        plan.parts += attempts
        if attempts[-1].failure is not None:  # gave up: the workflow stops here
            plan.gave_up = True
            break
    plan.deliver_ms = rng.randint(100, 800)
    plan.deliver_quality = round(rng.uniform(0.7, 1.0) * (0.5 if plan.gave_up else 1.0), 2)
    return plan


# -- the fleet ----------------------------------------------------------------------------


class DemoFleet:
    """Runs ``concurrency`` agents' workflows until stopped (or ``workflows`` are done).

    ``burst`` workflows are emitted without pauses first, as history: each ends at a random
    moment of the last ``history_s`` seconds; after that each step takes ``pace`` seconds of
    real time on average (its reported durations are those of the plan) and ends now.
    :attr:`workflows_done` counts finished workflows, :attr:`correlation_ids` remembers the
    first few (for the "try this" hints) and :attr:`first_workflow` is set once one is done.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        concurrency: int = 4,
        workflows: int | None = None,
        burst: int = 24,
        pace: float = 0.05,
        history_s: float = 120.0,
        seed: int | None = None,
        manager: DebugStateManager | None = None,
    ) -> None:
        self.debug = manager or DebugStateManager(settings, clock=_now, monotonic=_monotonic)
        self.concurrency = concurrency
        self.limit = workflows
        self.burst = burst
        self.pace = pace
        self.history_s = history_s
        self.rng = random.Random(seed)
        self.workflows_started = 0
        self.workflows_done = 0
        self.correlation_ids: list[uuid.UUID] = []
        self.first_workflow = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Run until :meth:`stop` or the limit; then deliver what is queued and close."""
        try:
            await self.debug.start()
            workers = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]
            try:
                await asyncio.gather(*workers)
            finally:
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
        finally:
            await self.debug.close(timeout=10)

    async def _worker(self) -> None:
        while not self._stopping.is_set():
            if self.limit is not None and self.workflows_started >= self.limit:
                return
            self.workflows_started += 1
            if self.workflows_started <= self.burst:
                await self.workflow(pace=0.0, ago_s=self.rng.uniform(0, self.history_s))
            else:
                await self.workflow(pace=self.pace)
            self.workflows_done += 1
            self.first_workflow.set()

    async def _pause(self, pace: float) -> None:
        if pace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.rng.uniform(0.5, 1.5) * pace)

    async def workflow(
        self, *, pace: float, ago_s: float = 0.0, plan: WorkflowPlan | None = None
    ) -> uuid.UUID:
        """Plan one workflow (unless given) and emit it on its own clock, which ends
        ``ago_s`` seconds before now."""
        plan = plan or plan_workflow(self.rng)
        end = datetime.now(UTC) - timedelta(seconds=ago_s)
        clock = VirtualClock(end - timedelta(milliseconds=plan.duration_ms))
        _CLOCK.set(clock)
        corr = uuid.uuid4()
        if len(self.correlation_ids) < 5:
            self.correlation_ids.append(corr)
        state: dict[str, Any] = {
            "request": plan.request,
            "plan": [],
            "notes": [],
            "tokens_used": 0,
            "model": plan.model,
            "credentials": {"api_key": plan.api_key},
        }
        debug = self.debug
        await debug.capture_snapshot(
            corr, "planner", state, "checkpoint", user_request=plan.request,
            task_description="plan the work",
        )  # fmt: skip
        last_agent, number = "planner", None
        operation = _Operation()
        for part in plan.parts:
            if self._stopping.is_set():
                return corr
            if isinstance(part, Handover):
                clock.advance(part.gap_ms)
                state["owner"] = part.target
                await debug.log_transformation_with_state(
                    part.source, part.target, corr, state, reason=f"{part.target} takes over",
                    confidence_score=part.confidence,
                )  # fmt: skip
                continue
            if part.new_step and not part.fallback:
                operation = _Operation()
            number = None if part.new_step else number
            number = await self._attempt(corr, part, number, state, clock, operation=operation)
            last_agent = part.agent
            await self._pause(pace)
        clock.advance(plan.deliver_ms)
        await debug.capture_success(
            corr, last_agent, "deliver", success_type="task_completion", agent_state=state,
            quality_score=plan.deliver_quality,
            completion_status="partial" if plan.gave_up else "complete",
            execution_time_ms=plan.deliver_ms,
        )  # fmt: skip
        return corr

    async def _attempt(
        self,
        corr: uuid.UUID,
        a: Attempt,
        number: int | None,
        state: dict[str, Any],
        clock: VirtualClock,
        *,
        operation: _Operation,
    ) -> int:
        """Emit one attempt at the clock's time, moving the clock as the attempt reports;
        returns its step number. A fallback runs as a child step of the operation's first
        step and states the errors it recovers; a retry's recovery is left to the
        correlator's inference."""
        debug = self.debug
        state["current"] = {"agent": a.agent, "operation": a.operation, "attempt": a.attempt}
        step = await debug.start_step(
            corr, a.agent, a.operation, step_number=number, attempt=a.attempt, agent_state=state,
            step_description=f"{a.agent}: {a.operation.replace('_', ' ')}",
            parent_step_id=operation.first_step if a.fallback else None,
        )  # fmt: skip
        if operation.first_step is None:
            operation.first_step = step.id
        clock.advance(a.llm_ms)
        await debug.record_llm_call(
            corr, state["model"], agent_name=a.agent, execution_step=step.step_number,
            latency_ms=a.llm_ms, prompt_tokens=a.prompt_tokens,
            completion_tokens=a.completion_tokens, quality_score=a.llm_quality,
            success_classification="partial" if a.partial else "success",
        )  # fmt: skip
        clock.advance(a.work_ms)
        state["tokens_used"] += a.prompt_tokens
        if a.failure is None:
            state["notes"].append(f"{a.operation} done")
            recovered = a.attempt > 1 or a.fallback
            success = await debug.capture_success(
                corr, a.agent, a.operation, execution_step=step.step_number,
                success_type="recovery_success" if recovered else "task_completion",
                retry_count=a.attempt - 1, execution_time_ms=round(a.llm_ms + a.work_ms),
                quality_score=a.quality,
                agent_state=state if recovered or a.success_state else None,
                recovers=list(operation.errors) if a.fallback and operation.errors else None,
            )  # fmt: skip
            operation.errors.clear()
            await debug.complete_step(step, "completed", success_event_id=success)
        else:
            failure = a.failure
            error = await debug.capture_error_state(
                corr, a.agent, _raised(failure), state, failure.severity,
                error_category=failure.category,
                error_type=failure.error_type, operation_name=a.operation,
                execution_step=step.step_number, error_code=failure.code,
                is_recoverable=failure.recoverable, recovery_attempted=a.strategy is not None,
                recovery_strategy=a.strategy,
            )  # fmt: skip
            await debug.complete_step(step, "failed", error_event_id=error)
            operation.errors.append(error)
        clock.advance(a.wait_ms)
        return step.step_number


@dataclass(slots=True)
class _Operation:
    """What the attempts of one operation (and its fallback) share: the step the fallback
    runs under, and the errors not recovered yet."""

    first_step: uuid.UUID | None = None
    errors: list[uuid.UUID] = field(default_factory=list)


def _raised(failure: Failure) -> Exception:
    """The exception with a real traceback, as an agent would have caught it."""
    try:
        raise failure.exc(failure.message)
    except Exception as exc:
        return exc
