"""One bench run, end to end.

Owns :func:`run_bench`: the temporary directory, the progress display, the services, each
selected scenario in turn with its duration and the load average around it, and the targets
evaluated at the end.

Guarantees: a scenario that fails is recorded (``error`` in its section, a note, the traceback
on the console) and the run goes on with the next one; the services are stopped and, unless
``keep``, the directory removed, however the run ends. Not guaranteed: that a failed
scenario's partial figures are complete -- they are what it had measured.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from debug_sink.bench.config import BenchConfig
from debug_sink.bench.harness import Harness
from debug_sink.bench.machine import load_average, machine_info
from debug_sink.bench.scenarios import SCENARIOS
from debug_sink.bench.scenarios.backlogs import Backlogs
from debug_sink.bench.targets import evaluate_targets

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["run_bench"]


async def run_bench(
    config: BenchConfig, *, console: Console | None = None, keep: bool = False
) -> dict[str, Any]:
    """Run the selected sections; returns the results (targets included)."""
    from rich.console import Console

    console = console or Console(stderr=True)
    root = Path(tempfile.mkdtemp(prefix="debug-sink-bench-"))
    started = time.perf_counter()
    progress = _progress(console)
    h = Harness(config, root, progress)
    backlogs = Backlogs(h)
    results = h.results
    results.update(
        {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": asdict(config),
            "machine": machine_info(root),
        }
    )
    try:
        with progress:
            with h.step("start PostgreSQL and Tansu"):
                await asyncio.to_thread(h.start_services)
            with h.step(f"prepare {config.wal_segments} WAL segments"):
                wal_files = await h.warm_wal(config.wal_segments)
            results["postgres"] = await h.postgres_info()
            results["postgres"]["wal_files_at_start"] = wal_files
            for section in config.sections:
                t = time.perf_counter()
                load_before = load_average()
                try:
                    await SCENARIOS[section](h, backlogs)
                except Exception as exc:
                    results.setdefault(section, {})["error"] = f"{type(exc).__name__}: {exc}"
                    h.notes.append(f"{section} failed: {type(exc).__name__}: {str(exc)[:200]}")
                    console.print(traceback.format_exc(), markup=False, highlight=False)
                part = results.setdefault(section, {})
                part["section_s"] = round(time.perf_counter() - t, 1)
                # Other processes' CPU use (1-minute load averages before and after).
                part["load_average"] = [load_before, load_average()]
    finally:
        await asyncio.to_thread(h.stop_services)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            results["kept"] = str(root)
    if config.quick:
        h.notes.append(
            f"--quick: a {config.events:,}-event backlog (RSS measured on it, not on 1M), "
            f"queries at {config.query_events:,} events; the full run is the reference"
        )
    results["duration_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = [t.as_dict() for t in evaluate_targets(results)]
    return results


def _progress(console: Console) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
