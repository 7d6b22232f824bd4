"""The generated workload: realistic events of agent workflows, as Kafka messages.

Owns what the bench sends: per workflow 16 events (:func:`workflow_events`) with ~1 KB and
~8 KB agent states, a multi-frame stack trace and real references between events, encoded
once (:func:`iter_workload`) with a placeholder timestamp (:data:`STAMP`) that is set when a
message is sent (:meth:`Message.stamped`).

Guarantees: deterministic for ``(tag, workflow number)``; ids are valid version-4 UUIDs and
never repeat across workflows; parents precede their children in produce order; every message
passes the sink's validation once stamped. Pure: no I/O, no randomness, no clock except
:func:`now_stamp`. Not guaranteed: that the mix resembles any particular user's traffic
beyond what docs/PERFORMANCE.md describes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from debug_sink.bench.internals import EventKind

__all__ = [
    "EVENTS_PER_WORKFLOW",
    "ROWS_PER_KIND",
    "ROWS_PER_WORKFLOW",
    "STACK_TRACE",
    "STAMP",
    "STATE_1K",
    "STATE_8K",
    "Message",
    "bench_uuid",
    "iter_workload",
    "now_stamp",
    "stamp_at",
    "workflow_events",
    "workflows_for",
    "workload_mix",
]

#: A timestamp that stands for "when this message is sent": replaced in the encoded value.
STAMP: Final = "2000-01-01T00:00:00.000000+00:00"
_STAMP_BYTES: Final = STAMP.encode()

#: Events and rows per generated workflow (:func:`workflow_events`): a step's two lifecycle
#: events fold into one row.
EVENTS_PER_WORKFLOW: Final = 16
ROWS_PER_KIND: Final[dict[EventKind, int]] = {
    EventKind.SNAPSHOT: 4,
    EventKind.TRANSFORMATION: 1,
    EventKind.ERROR: 1,
    EventKind.SUCCESS: 1,
    EventKind.STEP: 3,
    EventKind.HOOK: 3,
}
ROWS_PER_WORKFLOW: Final = sum(ROWS_PER_KIND.values())


@dataclass(frozen=True, slots=True)
class Message:
    """One Kafka message of the workload; timestamps in ``value`` are :data:`STAMP`."""

    kind: EventKind
    key: bytes
    value: bytes

    def stamped(self, when: str) -> bytes:
        """The value with every timestamp set to ``when`` (ISO 8601 with an offset)."""
        return self.value.replace(_STAMP_BYTES, when.encode())


def bench_uuid(tag: int, n: int) -> str:
    """A deterministic, valid version-4 UUID string for ``(tag, n)``: fast, no randomness."""
    return (
        f"{tag & 0xFFFFFFFF:08x}-{(n >> 48) & 0xFFFF:04x}-4{(n >> 36) & 0xFFF:03x}-"
        f"8{(n >> 24) & 0xFFF:03x}-{n & 0xFFFFFFFFFFFF:012x}"
    )


_FILES: Final = [f"src/agents/module_{i:02d}.py" for i in range(10)]
#: ~1 KB agent state (canonical JSON, with the per-event keys).
STATE_1K: Final[dict[str, Any]] = {
    "task": "review pull request #482 and report blocking issues before the release",
    "files_reviewed": _FILES,
    "context": {
        "repository": "acme/shop",
        "branch": "feature/cart-totals",
        "base": "main",
        "delegated_by": "router",
        "depth": 2,
    },
    "llm": {"model": "gpt-4o", "max_tokens": 4096, "temperature": 0.2, "prompt_tokens": 3120},
    "plan": ["fetch the diff", "run the linters", "read the changed modules", "write the review"],
    "findings": [
        {"file": "src/app/models.py", "line": 88, "severity": "major", "note": "rounding error"},
        {"file": "src/app/api.py", "line": 141, "severity": "minor", "note": "missing test"},
    ],
    "retries": 1,
    "notes": "cart totals are computed twice; the second pass uses float arithmetic " * 2,
}
_MESSAGES_7K: Final = [
    {
        "role": "user" if i % 2 else "assistant",
        "content": f"turn {i}: " + "the agent explains what it found in the diff and why. " * 6,
        "tokens": 90 + i,
    }
    for i in range(20)
]
#: ~8 KB agent state: the 1 KB one plus a conversation.
STATE_8K: Final[dict[str, Any]] = {**STATE_1K, "conversation": _MESSAGES_7K}
STACK_TRACE: Final = (
    "Traceback (most recent call last):\n"
    + "".join(
        f'  File "/app/agents/reviewer/step_{i}.py", line {40 + i * 7}, in run_step_{i}\n'
        f"    result = await self.client.call(request, timeout=self.timeout_s)\n"
        for i in range(12)
    )
    + "TimeoutError: GitHub API did not answer within 30 s\n"
)


#: The id of slot ``slot`` (0..31) of workflow ``w``: see :func:`workflow_events`.
IdScheme = Callable[[int, int], str]


def workflow_events(
    w: int, tag: int, *, references: bool = True, ids: IdScheme | None = None
) -> list[tuple[EventKind, dict[str, Any]]]:
    """The 16 events of workflow ``w`` in causal (produce) order: 4 snapshots (three ~1 KB
    states, one ~8 KB), a transformation, 3 steps (started and ended: 6 events), an error
    with a stack trace, a success and 3 LLM hook events. Parents precede their children.
    ``references=False`` leaves out every reference to another event (a diagnostic: nothing
    can wait for a parent). ``ids(w, slot)`` names the ids (default: :func:`bench_uuid`,
    increasing with ``w``)."""
    base = w * 32

    def uid(slot: int) -> str:
        return ids(w, slot) if ids is not None else bench_uuid(tag, base + slot)

    corr, session = uid(31), uid(30)
    agent, op = f"agent_{w % 12}", f"op_{w % 17}"
    common = {"schema_version": 1, "correlation_id": corr, "session_id": session}
    snaps = [uid(k) for k in range(4)]

    def snapshot(k: int, kind: str, state: dict[str, Any], parent: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": snaps[k],
            **common,
            "snapshot_type": kind,
            "agent_name": agent,
            "agent_state": {**state, "workflow": w, "checkpoint": k},
            "execution_step": k,
            "task_description": "review the diff and report blocking issues",
            "memory_usage_mb": 212.5,
            "cpu_time_ms": 840 + k,
            "wall_time_ms": 15230 + k,
            "captured_at": STAMP,
        }
        if parent:
            body["parent_snapshot_id"] = parent
        return body

    def step(n: int, status: str, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": uid(10 + n),
            **common,
            "step_number": n,
            "step_type": "execution",
            "agent_name": agent,
            "operation_name": op,
            "status": status,
            "started_at": STAMP,
            **extra,
        }
        if status != "started":
            body["completed_at"] = STAMP
            body["duration_ms"] = 900 + n
        return body

    def hook(n: int) -> dict[str, Any]:
        return {
            "id": uid(20 + n),
            **common,
            "source": "PostToolUse",
            "resource_id": "gpt-4o",
            "payload": {
                "quality_metrics": {"quality_score": 0.9, "latency_ms": 1840 + n},
                "success_classification": "success",
                "usage": {"prompt_tokens": 3120, "completion_tokens": 412, "total_tokens": 3532},
            },
            "metadata": {"agent_name": agent, "execution_step": n},
            "created_at": STAMP,
        }

    error_id, success_id = uid(5), uid(6)
    events = [
        (EventKind.SNAPSHOT, snapshot(0, "checkpoint", STATE_1K, None)),
        (
            EventKind.TRANSFORMATION,
            {
                "id": uid(4),
                **common,
                "source_agent": "router",
                "target_agent": agent,
                "reason": "the request asks for a code review",
                "confidence_score": 0.87,
                "state_snapshot_id": snaps[0],
                "created_at": STAMP,
            },
        ),
        (EventKind.STEP, step(1, "started", pre_state_snapshot_id=snaps[0])),
        (EventKind.STEP, step(1, "completed", pre_state_snapshot_id=snaps[0])),
        (EventKind.HOOK, hook(1)),
        (EventKind.SNAPSHOT, snapshot(1, "checkpoint", STATE_1K, snaps[0])),
        (EventKind.STEP, step(2, "started", pre_state_snapshot_id=snaps[1])),
        (EventKind.SNAPSHOT, snapshot(2, "error", STATE_8K, snaps[1])),
        (
            EventKind.ERROR,
            {
                "id": error_id,
                **common,
                "error_type": "TimeoutError",
                "error_category": "external",
                "error_severity": "high",
                "error_message": "GitHub API did not answer within 30 s",
                "error_stack_trace": STACK_TRACE,
                "error_code": "504",
                "agent_name": agent,
                "operation_name": op,
                "execution_step": 2,
                "state_snapshot_id": snaps[2],
                "is_recoverable": True,
                "recovery_attempted": True,
                "recovery_strategy": "retry",
                "metadata": {"endpoint": "/repos/acme/shop/pulls/482", "timeout_s": 30},
                "occurred_at": STAMP,
            },
        ),
        (
            EventKind.STEP,
            step(2, "failed", pre_state_snapshot_id=snaps[1], error_event_id=error_id),
        ),
        (EventKind.HOOK, hook(2)),
        (EventKind.STEP, step(3, "started", pre_state_snapshot_id=snaps[2])),
        (EventKind.SNAPSHOT, snapshot(3, "success", STATE_1K, snaps[2])),
        (
            EventKind.SUCCESS,
            {
                "id": success_id,
                **common,
                "success_type": "recovery_success",
                "operation_name": op,
                "agent_name": agent,
                "execution_step": 3,
                "state_snapshot_id": snaps[3],
                "quality_score": 0.92,
                "completion_status": "full",
                "execution_time_ms": 2140,
                "retry_count": 1,
                "success_factors": {"strategy": "retry", "backoff_ms": 2000},
                "occurred_at": STAMP,
            },
        ),
        (
            EventKind.STEP,
            step(
                3,
                "completed",
                pre_state_snapshot_id=snaps[2],
                post_state_snapshot_id=snaps[3],
                success_event_id=success_id,
            ),
        ),
        (EventKind.HOOK, hook(3)),
    ]
    if not references:
        for _, body in events:
            for name in _REFERENCE_FIELDS.intersection(body):
                del body[name]
    return events


_REFERENCE_FIELDS: Final = frozenset(
    {
        "parent_snapshot_id",
        "state_snapshot_id",
        "pre_state_snapshot_id",
        "post_state_snapshot_id",
        "error_event_id",
        "success_event_id",
    }
)


def iter_workload(
    workflows: int, *, tag: int = 1, first: int = 0, references: bool = True
) -> Iterator[Message]:
    """The messages of workflows ``first .. first + workflows - 1``, in produce order;
    deterministic for ``(tag, workflow number)``. Kafka key = the workflow's correlation id."""
    dumps = orjson.dumps
    for w in range(first, first + workflows):
        events = workflow_events(w, tag, references=references)
        key = events[0][1]["correlation_id"].encode()
        for kind, body in events:
            yield Message(kind, key, dumps(body))


def workload_mix(messages: Iterable[Message]) -> dict[str, float]:
    """Share of each event kind in ``messages`` (0..1), keyed by kind."""
    counts = Counter(m.kind.value for m in messages)
    total = sum(counts.values()) or 1
    return {kind: counts[kind] / total for kind in sorted(counts)}


def workflows_for(events: int) -> int:
    """Whole workflows for about ``events`` events (a workflow is never cut: a cut one would
    leave children waiting for parents that never come)."""
    return max(1, round(events / EVENTS_PER_WORKFLOW))


def stamp_at(epoch: float) -> str:
    """``epoch`` (seconds) as a :data:`STAMP`-shaped timestamp, for :meth:`Message.stamped`."""
    return f"{datetime.fromtimestamp(epoch, UTC):%Y-%m-%dT%H:%M:%S.%f}+00:00"


def now_stamp() -> str:
    """The current time as a :data:`STAMP`-shaped timestamp: a message's send time."""
    return stamp_at(time.time())
