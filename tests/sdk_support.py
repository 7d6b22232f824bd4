"""Helpers for the SDK, query and show tests: deterministic managers and a fast write path.

:func:`write_direct` stores what a :class:`~debug_sink.sdk.emitter.MemoryEmitter` holds through
the sink's own decode -> BatchWriter path (no Kafka, no consumer-group join), so query and
CLI tests get the rows the sink would write, in well under a second.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from debug_sink.jobs.correlator import Correlator
from debug_sink.sdk.emitter import Emitter, EmitterConfig, MemoryEmitter, OutgoingMessage
from debug_sink.sdk.manager import DebugStateManager
from debug_sink.settings import Settings
from debug_sink.sink.batch import Batch, Item, Origin
from debug_sink.sink.tables import create_pool
from debug_sink.sink.writer import BatchWriter
from debug_sink.wire.validation import Accepted, ValidationConfig, decode

T = TypeVar("T")

T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
NAMESPACE = uuid.UUID("8d3c1c4e-6f43-4a8e-9a55-0c1f6f0e2b7d")


class FakeClock:
    """A wall clock and a monotonic clock that advance only when told (or by ``tick``)."""

    def __init__(self, start: datetime = T0, tick_ms: float = 0.0) -> None:
        self.now = start
        self.tick = timedelta(milliseconds=tick_ms)
        self.mono = 1000.0

    def advance(self, ms: float) -> None:
        self.now += timedelta(milliseconds=ms)
        self.mono += ms / 1000

    def wall(self) -> datetime:
        value = self.now
        self.now += self.tick
        return value

    def monotonic(self) -> float:
        return self.mono


def id_factory(tag: str) -> Callable[[], uuid.UUID]:
    """Deterministic UUIDs: uuid5(NAMESPACE, f"{tag}-{n}") for n = 1, 2, ..."""
    counter = itertools.count(1)
    return lambda: uuid.uuid5(NAMESPACE, f"{tag}-{next(counter)}")


def memory_manager(
    settings: Settings | None = None,
    *,
    clock: FakeClock | None = None,
    tag: str | None = None,
    **kwargs: Any,
) -> DebugStateManager:
    """A DebugStateManager on a MemoryEmitter, optionally with fake clocks and ids."""
    settings = settings or Settings.model_construct()
    config = kwargs.pop("emitter_config", None) or EmitterConfig(max_queue_events=100_000)
    extra: dict[str, Any] = {}
    if clock is not None:
        extra.update(clock=clock.wall, monotonic=clock.monotonic)
    if tag is not None:
        extra["new_id"] = id_factory(tag)
    return DebugStateManager(emitter=MemoryEmitter(settings, config), **extra, **kwargs)


def completes_without_suspending(call: Coroutine[Any, Any, T]) -> T:
    """Run ``call`` to its end in one step; fail if it suspends on the way.

    A coroutine that suspends awaited something not ready yet -- room in a queue, the
    broker, a sleep. One that completes in one step awaited nothing at all, however slow the
    machine: this checks "did not wait" without a clock.
    """
    try:
        call.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    call.close()
    raise AssertionError("the call suspended: it waited for something instead of returning")


async def returns_while_blocked(call: Awaitable[T], *, hang_after: float = 60.0) -> T:
    """Await ``call`` while the caller keeps the transport blocked (a paused MemoryEmitter, a
    stopped broker) and never releases it meanwhile: the call must return on its own.

    ``hang_after`` is no limit on how long the call may take; it only turns a call that waits
    for the blocked transport -- and so would never return -- into a failure instead of a
    hang until the per-test timeout.
    """
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=hang_after)
    if not done:
        task.cancel()
        raise AssertionError("the call did not return while the transport was blocked")
    return task.result()


def watch_transport(emitter: Emitter) -> list[str]:
    """The names of the tasks that await ``emitter``'s transport (connect, probe, send),
    recorded from now on: only the emitter's own sender task should."""
    tasks: list[str] = []
    for name in ("_open_transport", "_probe", "_send"):
        method = getattr(emitter, name)

        async def watched(*args: Any, _method: Any = method) -> Any:
            current = asyncio.current_task()
            tasks.append(current.get_name() if current is not None else "<no task>")
            return await _method(*args)

        setattr(emitter, name, watched)
    return tasks


def settings_for(dsn: str, **overrides: Any) -> Settings:
    return Settings(postgres_dsn=dsn, metrics_port=0, **overrides)


async def write_direct(settings: Settings, messages: Iterable[OutgoingMessage]) -> None:
    """Decode ``messages`` as the sink does and write them in one batch with BatchWriter."""
    config = ValidationConfig(
        topics=settings.topics,
        max_state_bytes=settings.max_state_bytes,
        max_depth=settings.max_depth,
        redact_patterns=settings.redact_patterns,
    )
    batch = Batch()
    offsets: dict[str, int] = {}
    timestamp_ms = int(T0.timestamp() * 1000)
    for message in messages:
        offset = offsets.get(message.topic, 0)
        offsets[message.topic] = offset + 1
        result = decode(message.topic, message.value, timestamp_ms=timestamp_ms, config=config)
        assert isinstance(result, Accepted), result
        batch.items.append(
            Item(
                Origin(message.topic, 0, offset),
                message.key,
                message.value,
                (),
                timestamp_ms,
                result,
            )
        )
        batch.next_offsets[(message.topic, 0)] = offset + 1
        batch.first_offsets.setdefault((message.topic, 0), offset)
    pool = await create_pool(settings, max_size=2)
    try:
        writer = BatchWriter(pool, group_id=f"direct-{uuid.uuid4().hex[:8]}", park_grace=600)
        result = await writer.write(batch)
        assert not result.dead_letters, result.dead_letters
        assert result.parked == 0, "every parent is in the same batch"
    finally:
        await pool.close()


async def correlate(dsn: str) -> None:
    """One correlator run, as the sink's periodic job would do it."""
    result = await Correlator(dsn).run_once()
    assert result.ran


async def record_review(
    settings: Settings, corr: uuid.UUID, tag: str = "review"
) -> tuple[list[OutgoingMessage], dict[str, Any]]:
    """A recorded code-review workflow with deterministic ids and times.

    router hands over to reviewer; step 1 (fetch_diff) makes an LLM call and times out;
    its retry (step 1, attempt 2) succeeds; step 2 (review) makes an LLM call and succeeds;
    a linter whose clock is 30 s behind runs step 3 and succeeds. Returns the messages the
    SDK sent and the ids worth asserting on.
    """
    clock = FakeClock()
    manager = memory_manager(settings, clock=clock, tag=tag)
    ids: dict[str, Any] = {}
    transformation = await manager.log_transformation_with_state(
        "router",
        "reviewer",
        corr,
        {"request": "review PR 482", "route": "code"},
        reason="the request asks for a code review",
        confidence_score=0.87,
    )
    ids["transformation"] = transformation.transformation_id
    clock.advance(100)
    try:
        async with manager.step(
            corr, "fetch_diff", agent_name="reviewer", agent_state={"pr": 482, "retries": 0}
        ) as step:
            clock.advance(50)
            ids["llm_1"] = await manager.record_llm_call(
                corr,
                "gpt-4o",
                agent_name="reviewer",
                quality_score=0.4,
                success_classification="partial",
                latency_ms=900,
            )
            clock.advance(30_000)
            assert step.state is not None
            step.state["last_error"] = "timeout"
            step.state["api_token"] = "ghp_secret"
            raise TimeoutError("GitHub API did not answer within 30 s")
    except TimeoutError:
        pass
    ids["step_1"] = step.id
    clock.advance(2000)
    async with manager.step(
        corr,
        "fetch_diff",
        agent_name="reviewer",
        step_number=1,
        attempt=2,
        agent_state={"pr": 482, "retries": 1},
    ) as retry:
        clock.advance(1200)
        assert retry.state is not None
        retry.state["files"] = 7
    ids["retry"] = retry.id
    clock.advance(100)
    async with manager.step(corr, "review", agent_name="reviewer") as review:
        clock.advance(400)
        ids["llm_2"] = await manager.record_llm_call(
            corr,
            "gpt-4o",
            agent_name="reviewer",
            quality_score=0.92,
            latency_ms=1840,
            prompt_tokens=3120,
            completion_tokens=412,
        )
        clock.advance(600)
    ids["review"] = review.id
    await manager.close()

    skewed = FakeClock(start=clock.now - timedelta(seconds=30))
    linter = memory_manager(settings, clock=skewed, tag=f"{tag}-linter")
    skewed.advance(10)
    async with linter.step(corr, "lint", agent_name="linter", step_number=3) as lint:
        skewed.advance(250)
    ids["lint"] = lint.id
    await linter.close()

    messages = [*_messages(manager), *_messages(linter)]
    for message in messages:
        body = message.json()
        if message.kind.value == "error":
            ids["error"] = message.event_id
        if message.kind.value == "success" and body["execution_step"] == 1:
            ids["recovery"] = message.event_id
    return messages, ids


def _messages(manager: DebugStateManager) -> list[OutgoingMessage]:
    emitter = manager.emitter
    assert isinstance(emitter, MemoryEmitter)
    return list(emitter.messages)
