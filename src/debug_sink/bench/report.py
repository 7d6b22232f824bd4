"""The report of a run: two tables and a closing line on the terminal, every figure in JSON.

Owns how results are shown: :func:`details_table` (the raw figures behind the targets),
:func:`results_table` (one row per target: measured, limit, met / MISSED / not measured) and
:func:`print_report` (both, the closing line, the JSON file).

Guarantees: the tables render whatever subset of sections the results hold (a missing figure
is left out or shown as ``-``); the JSON holds the results exactly as the run produced them.
Not guaranteed: a stable table layout for parsing -- the JSON is the machine-readable output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from debug_sink.bench.config import PG_SETTINGS
from debug_sink.bench.targets import Target, evaluate_targets, lookup

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["details_table", "print_report", "results_table"]


def print_report(results: dict[str, Any], json_path: str) -> None:
    """The tables and the closing line on stdout; the results written to ``json_path``
    (``''``: not written)."""
    from rich.console import Console

    targets = evaluate_targets(results)
    out = Console()
    out.print(details_table(results))
    out.print(results_table(results, targets))
    out.print(
        f"took {results['duration_s']:.0f} s; PostgreSQL "
        f"{results.get('postgres', {}).get('version', '?')} "
        f"({', '.join(f'{k}={v}' for k, v in PG_SETTINGS.items())}, fsync on)"
    )
    if json_path:
        Path(json_path).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
        out.print(f"results written to {json_path}")


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if value else "0"
    return f"{text} {unit}".rstrip()


def _mmm(figure: Any, unit: str = "") -> str:
    """A :func:`~debug_sink.bench.stats.spread` as ``median (min-max)``."""
    if not isinstance(figure, dict) or "median" not in figure:
        return "-"
    return (
        f"{_fmt(figure['median'], unit)} ({_fmt(figure['min'], unit)}"
        f"\u2013{_fmt(figure['max'], unit)})"
    )


def results_table(results: dict[str, Any], targets: Sequence[Target]) -> Table:
    """The summary table: one row per target (value, limit, met / MISSED / not measured)."""
    from rich.table import Table

    table = Table(title="debug-sink bench", title_justify="left")
    table.add_column("target")
    table.add_column("issue", justify="right")
    table.add_column("measured", justify="right")
    table.add_column("limit", justify="right")
    table.add_column("status")
    for t in targets:
        status = {True: "[green]met[/]", False: "[red]MISSED[/]", None: "[dim]not measured[/]"}[
            t.met
        ]
        limit = ("\u2265 " if t.higher_is_better else "\u2264 ") + _fmt(t.limit, t.unit)
        table.add_row(t.name, str(t.issue), _fmt(t.value, t.unit), limit, status)
    notes = results.get("notes") or []
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table


def details_table(results: dict[str, Any]) -> Table:
    """Raw figures behind the targets: rates (median and min-max of the repeats), CPU,
    latencies, query percentiles."""
    from rich.table import Table

    table = Table(title="measurements", title_justify="left")
    table.add_column("measurement")
    table.add_column("value", justify="right")
    tp = results.get("throughput") or {}
    if "sink" in tp:
        table.add_row(
            "workload (events, already in the tables, repeats)",
            f"{tp.get('workload', '?')} ({tp.get('events', 0):,}, "
            f"{tp.get('prefilled_events', 0):,}, {len(tp.get('rounds', []))})",
        )
        for key, label in (
            ("sink", "sink"),
            ("copy_shipped", "(a) raw \\copy, shipped schema"),
            ("copy_seed", "(b) raw \\copy, literal seed schema (empty)"),
            ("typical", "(c) typical consumer (executemany per poll)"),
            ("per_row", "(d) per-row autocommit consumer"),
        ):
            part = tp.get(key) or {}
            if "events_per_s" in part:
                table.add_row(
                    f"{label}: events/s, median (min\u2013max)", _mmm(part["events_per_s"])
                )
        for key, label in (
            ("sink", "sink + PostgreSQL"),
            ("copy_shipped", "(a) psql + PostgreSQL"),
            ("typical", "(c) + PostgreSQL"),
        ):
            part = tp.get(key) or {}
            if part.get("events_per_cpu_s"):
                table.add_row(f"events per CPU-second, {label}", _mmm(part["events_per_cpu_s"]))
    for label, cores in (
        ("one sink", (tp.get("sink") or {}).get("cores_busy")),
        ("(c) typical consumer", (tp.get("typical") or {}).get("cores_busy")),
        ("two sinks", (results.get("scaleout") or {}).get("cores_busy")),
    ):
        if cores and "sinks" in cores:
            table.add_row(
                f"cores busy, {label}: consumer / PostgreSQL / broker = total (medians)",
                " / ".join(f"{cores[p]['median']:.2f}" for p in ("sinks", "postgres", "broker"))
                + f" = {cores['total']['median']:.2f}",
            )
    for rate, lat in (lookup(results, "latency", "rates") or {}).items():
        table.add_row(
            f"latency at {int(rate):,}/s: p50 / p99 (achieved rate)",
            f"{lat['p50_ms']:.0f} / {lat['p99_ms']:.0f} ms ({lat['produced_per_s']:,.0f}/s)",
        )
    for name, q in (lookup(results, "queries", "queries") or {}).items():
        if "p50" in q:
            table.add_row(f"query {name}: p50 / p95", f"{q['p50']:.2f} / {q['p95']:.2f} ms")
        else:
            table.add_row(f"query {name}", str(q.get("note", "-")))
    for name, q in (lookup(results, "pages", "pages") or {}).items():
        if "p50" in q:
            table.add_row(f"page {name}: p50 / p95", f"{q['p50']:.2f} / {q['p95']:.2f} ms")
        else:
            table.add_row(f"page {name}", str(q.get("note", "-")))
    so = results.get("scaleout") or {}
    if isinstance(so.get("events_per_s"), dict):
        table.add_row("two sinks: events/s, median (min\u2013max)", _mmm(so["events_per_s"]))
    rss = results.get("rss") or {}
    if "peak_rss_mb" in rss:
        table.add_row(f"peak RSS, {rss.get('events', 0):,} events", f"{rss['peak_rss_mb']} MB")
    ot = results.get("otlp") or {}
    if "sink" in ot:
        table.add_row(
            "OTLP: spans/s, events/s (JSON path events/s)",
            f"{ot['sink']['spans_per_s']:,.0f}, {ot['sink']['events_per_s']:,.0f}"
            f" ({_fmt(ot.get('json_path_events_per_s'))})",
        )
    if "in_process" in ot:
        table.add_row(
            "OTLP decode+map+validate, one core: spans/s (\u00b5s/span)",
            f"{ot['in_process']['spans_per_s']:,.0f} ({ot['in_process']['us_per_span']:.0f})",
        )
    for name, s in (results.get("sdk") or {}).items():
        if isinstance(s, dict) and "p50" in s:
            table.add_row(
                f"SDK {name}: p50 / p99", f"{s['p50'] * 1000:.0f} / {s['p99'] * 1000:.0f} \u00b5s"
            )
    for key, label in (
        ("broker_up_ms", "debug-sink hook, broker up"),
        ("broker_down_ms", "debug-sink hook, broker down"),
        ("interpreter_ms", "python -c pass (the floor)"),
    ):
        s = lookup(results, "hook", key)
        if isinstance(s, dict) and "p50" in s:
            table.add_row(
                f"{label}, process start to exit: p50 / p99 (runs)",
                f"{s['p50']:.0f} / {s['p99']:.0f} ms ({s['count']})",
            )
    dec = results.get("decode") or {}
    if "decode_us" in dec:
        table.add_row(
            "decode() per event, bench mix (\u00b5s, best of runs)", f"{dec['decode_us']:.1f}"
        )
    return table
