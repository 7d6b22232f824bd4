"""The demo fleet (``debug-sink demo``, ``debug-sink dev --demo``): synthetic agents that use
the SDK like real ones.

Owns :class:`DemoFleet`, a few concurrent "agents" that run made-up but realistic workflows
through :class:`~debug_sink.sdk.manager.DebugStateManager` into Kafka: a planner hands work to
researchers, coders, reviewers and writers (transformations with the state at hand-over);
every operation is a step with a checkpoint snapshot and an LLM call; operations fail with
several error types (rate limits, timeouts, unparseable model output, context overflow, tool
and validation errors) of different categories and severities; agents retry, fall back to a
cheaper operation or give up, and a successful retry or fallback is recorded as a
``recovery_success``. Agent state carries an ``api_key`` so the redaction is visible.

The point is that ``show``, ``patterns``, ``errors`` and ``known-fixes`` have something real
to display within seconds of ``debug-sink dev --demo``: the first workflows run without
pauses, later ones at a steady pace.

Not a benchmark and not ground truth for the correlator (:mod:`debug_sink.dev.synthetic` is).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from dataclasses import dataclass
from typing import Any, Final, Literal

from debug_sink.sdk.manager import DebugStateManager
from debug_sink.settings import Settings

__all__ = ["DemoFleet"]


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


FAILURES: Final[tuple[Failure, ...]] = (
    Failure(RateLimitError, "RateLimitError", "external", "medium",
            "429 Too Many Requests: rate limit of 500k tokens/min reached", "E429", True),
    Failure(TimeoutError, "TimeoutError", "external", "high",
            "upstream did not answer within 30s", "ETIMEDOUT", True),
    Failure(LLMOutputParseError, "LLMOutputParseError", "agent", "medium",
            "expected a JSON object with keys plan, steps; got prose", "E_PARSE", True),
    Failure(ContextLengthExceededError, "ContextLengthExceeded", "framework", "high",
            "prompt of 131,204 tokens exceeds the 128,000-token context window", "E_CTX", True),
    Failure(ToolError, "ToolError", "external", "medium",
            "web_search returned HTTP 503", "E_TOOL", True),
    Failure(SchemaValidationError, "ValidationError", "agent", "low",
            "field 'summary' is required", "E_SCHEMA", False),
)  # fmt: skip

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


class DemoFleet:
    """Runs ``concurrency`` agents' workflows until stopped (or ``workflows`` are done).

    ``burst`` workflows run without pauses first; after that each step takes ``pace``
    seconds on average. :attr:`workflows_done` counts finished workflows,
    :attr:`correlation_ids` remembers the first few (for the "try this" hints) and
    :attr:`first_workflow` is set once one is done.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        concurrency: int = 4,
        workflows: int | None = None,
        burst: int = 24,
        pace: float = 0.05,
        seed: int | None = None,
        manager: DebugStateManager | None = None,
    ) -> None:
        self.debug = manager or DebugStateManager(settings)
        self.concurrency = concurrency
        self.limit = workflows
        self.burst = burst
        self.pace = pace
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
            fast = self.workflows_started <= self.burst
            await self.workflow(pace=0.0 if fast else self.pace)
            self.workflows_done += 1
            self.first_workflow.set()

    async def _pause(self, pace: float) -> None:
        if pace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.rng.uniform(0.5, 1.5) * pace)

    async def workflow(self, *, pace: float) -> uuid.UUID:
        """One workflow: plan, hand over to two or three agents, deliver."""
        rng, debug = self.rng, self.debug
        corr = uuid.uuid4()
        if len(self.correlation_ids) < 5:
            self.correlation_ids.append(corr)
        request = rng.choice(REQUESTS)
        state: dict[str, Any] = {
            "request": request,
            "plan": [],
            "notes": [],
            "tokens_used": 0,
            "model": rng.choice(MODELS),
            "credentials": {"api_key": f"sk-demo-{uuid.uuid4().hex[:16]}"},
        }
        await debug.capture_snapshot(
            corr, "planner", state, "checkpoint", user_request=request,
            task_description="plan the work",
        )  # fmt: skip
        await self._operation(corr, "planner", "plan", state, pace)
        team = [a for a in AGENTS if rng.random() < 0.75] or ["writer"]
        previous = "planner"
        for agent in team:
            state["owner"] = agent
            await debug.log_transformation_with_state(
                previous, agent, corr, state, reason=f"{agent} takes over",
                confidence_score=round(rng.uniform(0.6, 0.99), 2),
            )  # fmt: skip
            for operation in AGENTS[agent]:
                if self._stopping.is_set():
                    return corr
                await self._operation(corr, agent, operation, state, pace)
            previous = agent
        await debug.capture_success(
            corr, previous, "deliver", success_type="task_completion", agent_state=state,
            quality_score=round(rng.uniform(0.7, 1.0), 2), completion_status="complete",
        )  # fmt: skip
        return corr

    async def _operation(
        self, corr: uuid.UUID, agent: str, operation: str, state: dict[str, Any], pace: float
    ) -> None:
        """Run one operation: retry up to twice, then fall back once, else give up."""
        rng, debug = self.rng, self.debug
        attempt, number, fell_back = 1, None, False
        while True:
            state["current"] = {"agent": agent, "operation": operation, "attempt": attempt}
            step = await debug.start_step(
                corr, agent, operation, step_number=number, attempt=attempt, agent_state=state,
                step_description=f"{agent}: {operation.replace('_', ' ')}",
            )  # fmt: skip
            number = step.step_number
            tokens = rng.randint(300, 6000)
            await debug.record_llm_call(
                corr, state["model"], agent_name=agent, execution_step=number,
                latency_ms=round(rng.uniform(150, 4000), 1), prompt_tokens=tokens,
                completion_tokens=rng.randint(50, 900),
                quality_score=round(rng.uniform(0.5, 1.0), 2),
                success_classification="success" if rng.random() < 0.85 else "partial",
            )  # fmt: skip
            await self._pause(pace)
            state["tokens_used"] += tokens
            failure = rng.choice(FAILURES) if rng.random() < 0.22 else None
            if failure is None:
                state["notes"].append(f"{operation} done")
                recovered = attempt > 1 or fell_back
                success = await debug.capture_success(
                    corr, agent, operation, execution_step=number,
                    success_type="recovery_success" if recovered else "task_completion",
                    retry_count=attempt - 1, execution_time_ms=rng.randint(80, 5000),
                    quality_score=round(rng.uniform(0.6, 1.0), 2),
                    agent_state=state if recovered or rng.random() < 0.3 else None,
                )  # fmt: skip
                await debug.complete_step(step, "completed", success_event_id=success)
                return
            strategy = None
            if failure.recoverable and attempt < 3:
                strategy = "retry_with_backoff" if attempt == 1 else "retry"
            elif not fell_back and operation in FALLBACKS:
                strategy = f"fallback:{FALLBACKS[operation]}"
            error = await debug.capture_error_state(
                corr, agent, _raised(failure), state, failure.severity,
                error_category=failure.category,
                error_type=failure.error_type, operation_name=operation, execution_step=number,
                error_code=failure.code, is_recoverable=failure.recoverable,
                recovery_attempted=strategy is not None, recovery_strategy=strategy,
            )  # fmt: skip
            await debug.complete_step(step, "failed", error_event_id=error)
            if strategy is None:
                return
            if strategy.startswith("fallback:"):
                operation, attempt, number, fell_back = FALLBACKS[operation], 1, None, True
            else:
                attempt += 1


def _raised(failure: Failure) -> Exception:
    """The exception with a real traceback, as an agent would have caught it."""
    try:
        raise failure.exc(failure.message)
    except Exception as exc:
        return exc
