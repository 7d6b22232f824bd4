"""The SDK's traced decorator on generator functions: the step lasts as long as the
iteration and fails with what the generator raises."""

from __future__ import annotations

import uuid

import pytest

from debug_sink.wire.events import EventKind
from tests.sdk_support import memory_manager


def _steps_and_errors(manager) -> tuple[list[str], list[dict]]:
    steps = [s["status"] for s in manager.emitter.events(EventKind.STEP)]
    return steps, manager.emitter.events(EventKind.ERROR)


async def test_traced_generator_that_raises_is_a_failed_step() -> None:
    """traced(): "every call of the function is a step"; "a block or traced call that
    raises is recorded as failed with its error". A traced generator function's step is
    'completed' before its body runs; the exception it raises is never recorded."""
    manager = memory_manager()
    corr = uuid.uuid4()

    @manager.traced(correlation_id=corr)
    def pages():
        yield 1
        raise RuntimeError("page 2 failed")

    with pytest.raises(RuntimeError):
        for _ in pages():
            pass
    await manager.flush(5)
    steps, errors = _steps_and_errors(manager)
    assert steps == ["started", "failed"], (steps, errors)
    assert len(errors) == 1, (steps, errors)


async def test_traced_async_generator_that_raises_is_a_failed_step() -> None:
    """The same for an async generator function (an agent streaming tokens)."""
    manager = memory_manager()
    corr = uuid.uuid4()

    @manager.traced(correlation_id=corr)
    async def stream():
        yield "tok"
        raise RuntimeError("stream broke")

    with pytest.raises(RuntimeError):
        async for _ in stream():
            pass
    await manager.flush(5)
    steps, errors = _steps_and_errors(manager)
    assert steps == ["started", "failed"], (steps, errors)
    assert len(errors) == 1, (steps, errors)
