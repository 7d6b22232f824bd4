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
    return table
