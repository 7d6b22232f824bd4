"""The performance targets (issue 15, and those of issue 7 it kept), and whether a run met them.

Owns :class:`Target` and :func:`evaluate_targets`: which figure of the results each target
reads, its limit, and which way is better.

Guarantees: pure; a figure the results lack (section not run, or failed) gives a target whose
``met`` is None ("not measured"), never an error; a value equal to the limit counts as met.
Not guaranteed: that a met target holds on another machine -- the ratios are measured side
by side in one run for that reason, the absolute limits are not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

__all__ = [
    "AGGREGATE_QUERIES",
    "PER_WORKFLOW_QUERIES",
    "RSS_LIMIT_MB",
    "Target",
    "evaluate_targets",
    "lookup",
]


@dataclass(frozen=True, slots=True)
class Target:
    """One performance target and the value measured for it."""

    name: str
    value: float | None
    limit: float
    higher_is_better: bool
    unit: str = ""
    #: The issue that set it.
    issue: int = 15

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def lookup(results: dict[str, Any], *path: str) -> Any:
    """``results[path[0]][path[1]]...``, or None where a key is missing."""
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


#: Peak resident memory of a sink draining a backlog, at most (issue 15).
RSS_LIMIT_MB: Final = 200.0

#: Per-workflow read paths (target p95 <= 2 ms) and the aggregate ones (<= 50 ms).
PER_WORKFLOW_QUERIES: Final = (
    "errors_by_correlation_id",
    "debug_workflow_context",
    "get_workflow_debug_summary",
    "timeline",
)
AGGREGATE_QUERIES: Final = ("recovery_patterns", "known_fixes")
#: The web view's pages with a target (server time p95 <= 50 ms at 10M events, issue 18).
WEB_PAGES: Final = ("list", "workflow", "known fixes")


def evaluate_targets(results: dict[str, Any]) -> list[Target]:
    """The targets of issue 15, and those of issue 7 it did not replace, against
    ``results`` (a value of None: not measured)."""
    queries = lookup(results, "queries", "queries") or {}
    targets = [
        Target(
            "one sink / raw COPY (medians)",
            lookup(results, "throughput", "ratio_copy_shipped"),
            0.6,
            True,
            "x",
        ),
        Target(
            "two sinks / raw COPY (medians)",
            lookup(results, "scaleout", "ratio_copy_shipped"),
            0.85,
            True,
            "x",
        ),
        Target(
            "one sink / typical consumer (c)",
            lookup(results, "throughput", "ratio_typical"),
            3.0,
            True,
            "x",
        ),
        Target(
            "sink events per CPU-s / raw COPY's",
            lookup(results, "throughput", "ratio_efficiency"),
            0.5,
            True,
            "x",
        ),
        Target(
            "p99 produce -> committed at 10k/s",
            lookup(results, "latency", "rates", "10000", "p99_ms"),
            300.0,
            False,
            "ms",
        ),
        Target(
            "p99 produce -> committed at 2k/s",
            lookup(results, "latency", "rates", "2000", "p99_ms"),
            150.0,
            False,
            "ms",
        ),
        Target(
            "peak RSS draining the backlog",
            lookup(results, "rss", "peak_rss_mb"),
            RSS_LIMIT_MB,
            False,
            "MB",
        ),
    ]
    for name in PER_WORKFLOW_QUERIES:
        targets.append(Target(f"p95 {name}", lookup(queries, name, "p95"), 2.0, False, "ms"))
    # Issue 7's targets that issue 15 did not replace.
    targets.append(
        Target(
            "p95 capture_state_snapshot",
            lookup(queries, "capture_state_snapshot", "p95"),
            5.0,
            False,
            "ms",
            issue=7,
        )
    )
    for name in AGGREGATE_QUERIES:
        targets.append(
            Target(f"p95 {name}", lookup(queries, name, "p95"), 50.0, False, "ms", issue=7)
        )
    pages = lookup(results, "pages", "pages") or {}
    for name in WEB_PAGES:
        targets.append(
            Target(f"p95 page {name}", lookup(pages, name, "p95"), 50.0, False, "ms", issue=18)
        )
    targets += [
        Target(
            "two sinks / one sink",
            lookup(results, "scaleout", "ratio"),
            1.4,
            True,
            "x",
            issue=7,
        ),
        Target(
            "p99 SDK capture_snapshot",
            lookup(results, "sdk", "capture_snapshot", "p99"),
            1.0,
            False,
            "ms",
            issue=7,
        ),
        # Issue 16: the Claude Code hook command, process start to exit, broker up.
        Target(
            "p99 debug-sink hook wall time",
            lookup(results, "hook", "broker_up_ms", "p99"),
            150.0,
            False,
            "ms",
            issue=16,
        ),
    ]
    return targets
