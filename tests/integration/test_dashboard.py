"""The Grafana dashboard kept in the repository asks only for what the sink really exports.

Grafana and Prometheus images cannot be pulled on these machines, so the dashboard is not
rendered here; instead a real sink (with its correlator) writes real events, its /metrics is
scraped over HTTP, and every panel's PromQL is checked: each metric it names is a series of
that scrape (declared by its ``# TYPE`` lines; or Prometheus's own ``up``), each label it
groups or filters by is a label of that series (or one Prometheus adds: ``job``,
``instance``). The PostgreSQL panel's SQL runs
as the read-only role, with Grafana's macros expanded, and finds the links the correlator
made.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg

from debug_sink.dev.embedded import free_port
from debug_sink.jobs.schedule import periodic_jobs
from debug_sink.metrics import Metrics
from debug_sink.sink.runner import Sink
from debug_sink.wire.events import EventKind
from tests import support as s

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards/debug-sink.json"
#: Labels and series that Prometheus adds to what it scrapes.
TARGET_LABELS = {"job", "instance"}
PROMETHEUS_SERIES = {"up"}
#: PromQL words that are not metric names.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "irate",
    "histogram_quantile", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "topk", "bottomk", "abs", "clamp_min", "clamp_max", "delta", "deriv",
}  # fmt: skip


def panels() -> list[dict[str, Any]]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [p for p in document["panels"] if p["type"] != "row"]


def promql_parts(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) a PromQL expression uses."""
    labels: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels |= {g.strip() for g in grouping.split(",") if g.strip()}
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
    bare = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", bare)
    names = {
        word for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare) if word not in PROMQL_WORDS
    }
    return names, labels


def scrape_series(text: str) -> dict[str, set[str]]:
    """{sample name: label names} of a Prometheus text exposition."""
    series: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s", line)
        assert match, line
        names = set(re.findall(r"([a-zA-Z_]\w*)=\"", match.group(2) or ""))
        series.setdefault(match.group(1), set()).update(names)
    return series


#: The sample names of each metric type in the text exposition.
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "info": ("_info",),
}


def exported_names(text: str) -> set[str]:
    """Every sample name the exposition's ``# TYPE`` lines declare: a labelled family has no
    sample until something happens to one of its children (a retry, say), yet it is exported
    and Prometheus sees it as soon as it happens."""
    names = set()
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        # prometheus_client names an empty counter family with its _total
        base = family.removesuffix({"info": "_info", "counter": "_total"}.get(kind, "\0"))
        names |= {base + suffix for suffix in SUFFIXES.get(kind, ("",))}
    return names


def declared_labels() -> dict[str, set[str]]:
    """{family name: label names} as the sink declares them (a labelled family has no sample
    until something happens to one of its children, e.g. a retry)."""
    metrics = Metrics()
    declared = {}
    for value in vars(metrics).values():
        names = getattr(value, "_labelnames", None)
        if names is not None:
            declared[value._name] = set(names)
    return declared


def expand_grafana_macros(sql: str) -> str:
    """Grafana's PostgreSQL macros as Grafana expands them, for the last hour."""
    sql = re.sub(
        r"\$__timeGroupAlias\((\w+),\s*'1m'\)",
        r"date_bin('1 minute', \1, timestamptz 'epoch') AS time",
        sql,
    )
    return re.sub(
        r"\$__timeFilter\((\w+)\)", r"\1 BETWEEN now() - interval '1 hour' AND now()", sql
    )


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


async def test_every_panel_asks_for_a_series_the_sink_exports(db_dsn: str, kafka: Any) -> None:
    await s.create_topics(kafka)
    messages: list[tuple[str, Any]] = []
    for _ in range(20):
        corr = s.uid()
        messages += [
            (s.topic(kafka, EventKind.ERROR), s.error(corr, recovery_strategy="retry")),
            (
                s.topic(kafka, EventKind.SUCCESS),
                s.success(
                    corr,
                    success_type="recovery_success",
                    operation_name="fetch",
                    agent_name="planner",
                    retry_count=1,
                    occurred_at=s.ts(3),
                ),
            ),
            (s.topic(kafka, EventKind.HOOK), s.hook(corr)),
        ]
    messages.append((s.topic(kafka, EventKind.ERROR), b"not json"))  # a dead letter
    await s.produce(kafka, messages)

    port = free_port()
    settings = s.sink_settings(
        db_dsn, kafka, metrics_host="127.0.0.1", metrics_port=port, correlator_interval=0.5
    )
    metrics = Metrics()
    sink = Sink(settings, metrics=metrics, jobs=periodic_jobs(settings, metrics=metrics))
    task = asyncio.create_task(sink.run())
    try:

        async def correlated() -> str | None:
            try:
                text = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/metrics")
            except OSError:  # not listening yet
                return None
            done = 'debug_sink_correlator_runs_total{outcome="ran"}' in text
            written = re.search(r'debug_sink_rows_written_total\{kind="hook"\} 20\.0', text)
            lag = "debug_sink_consumer_lag{" in text  # observed every second
            return text if done and written and lag else None

        text = await s.eventually(correlated, timeout=60, interval=0.25, what="a correlator run")
        # A run may have come before the last errors and successes were written: the panel
        # shows every link once a later run has made them (the sink still runs).
        (sql_panel,) = [
            p for p in panels() if p["datasource"]["type"].endswith("postgresql-datasource")
        ]
        (sql_target,) = sql_panel["targets"]

        async def panel_links() -> int:
            reader = await asyncpg.connect(s.as_reader(db_dsn))
            try:
                rows = await reader.fetch(expand_grafana_macros(sql_target["rawSql"]))
            finally:
                await reader.close()
            return sum(r["links"] for r in rows)

        async def all_linked() -> bool:
            return await panel_links() == 20

        await s.eventually(all_linked, timeout=60, interval=0.25, what="20 links in the panel")
    finally:
        sink.stop()
        await asyncio.wait_for(task, 60)

    series = scrape_series(text)
    exported = exported_names(text) | set(series)
    declared = declared_labels()
    checked = 0
    for panel in panels():
        for target in panel["targets"]:
            if "expr" not in target:
                continue
            names, labels = promql_parts(target["expr"])
            assert names, (panel["title"], target["expr"])
            for name in names:
                where = (panel["title"], target["expr"], name)
                assert name in exported or name in PROMETHEUS_SERIES, where
                family = re.sub(r"_(total|bucket|count|sum|created|info)$", "", name)
                known = series.get(name, set()) | declared.get(family, set()) | TARGET_LABELS
                assert labels <= known | {"le"}, (*where, labels - known)
                checked += 1
    assert checked >= 20
    assert await panel_links() == 20


def test_the_checker_catches_a_wrong_name() -> None:
    """The extraction the test relies on finds names and labels, and only those."""
    names, labels = promql_parts(
        'histogram_quantile(0.95, sum by (le) (rate(debug_sink_batch_seconds_bucket{job="x"}[5m])))'
    )
    assert names == {"debug_sink_batch_seconds_bucket"}
    assert labels == {"le", "job"}
    assert promql_parts("sum(up)")[0] == {"up"}
    assert promql_parts("sum by (topic) (rate(debug_sink_typo_total[1m]))")[0] == {
        "debug_sink_typo_total"
    }
