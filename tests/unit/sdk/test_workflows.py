"""The SDK's workflow registry (debug_sink.sdk.workflows): the errors of failed attempts wait
for the attempt that recovers them, in bounded memory."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from debug_sink.sdk.workflows import PENDING_STEPS, Step, Workflows
from debug_sink.wire.events import MAX_RECOVERS


def step(corr: uuid.UUID, number: int, operation: str = "fetch", attempt: int = 1) -> Step:
    return Step(
        id=uuid.uuid4(),
        correlation_id=corr,
        step_number=number,
        attempt=attempt,
        agent_name="planner",
        operation_name=operation,
        step_type="execution",
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


class TestFailedAttempts:
    """failed() remembers, recovered() takes, retry_number() finds the step to retry."""

    def test_a_success_takes_the_errors_of_its_step_once(self) -> None:
        workflows = Workflows(10)
        corr = uuid.uuid4()
        errors = [uuid.uuid4(), uuid.uuid4()]
        for error in errors:
            workflows.failed(step(corr, 3), error)
        workflows.failed(step(corr, 4, "parse"), uuid.uuid4())

        assert workflows.retry_number(corr, "planner", "fetch") == 3
        assert workflows.recovered(step(corr, 3, attempt=3)) == errors
        assert workflows.recovered(step(corr, 3, attempt=4)) == []
        assert workflows.retry_number(corr, "planner", "fetch") is None
        assert workflows.retry_number(corr, "planner", "parse") == 4

    def test_memory_is_bounded(self) -> None:
        workflows = Workflows(10)
        corr = uuid.uuid4()
        errors = [uuid.uuid4() for _ in range(MAX_RECOVERS + 5)]
        for error in errors:
            workflows.failed(step(corr, 1), error)
        for number in range(2, PENDING_STEPS + 2):
            workflows.failed(step(corr, number), uuid.uuid4())

        assert workflows.recovered(step(corr, 1)) == []  # the oldest failed step: forgotten
        workflows.failed(step(corr, 1), errors[0])
        assert len(workflows.recovered(step(corr, PENDING_STEPS + 1))) == 1
        many = Workflows(10)
        for error in errors:
            many.failed(step(corr, 1), error)
        assert many.recovered(step(corr, 1)) == errors[-MAX_RECOVERS:]
