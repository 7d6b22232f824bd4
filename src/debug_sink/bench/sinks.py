"""Sink processes under measurement: started, watched, stopped, and what their logs said.

Owns the ``debug-sink run`` subprocesses of a run (:func:`start_sink`, :func:`drain`,
:func:`stop`) and of the rival consumers (``program``): their environment (the default
settings except no periodic jobs, metrics port off, JSON logs, a short Kafka session timeout
-- 6 s, 3 s with ``--quick``), the reading of their JSON log lines into
:class:`SinkProcess`, their peak memory, and the CPU of sinks, PostgreSQL and the broker
sampled while they drain (:class:`Drain`).

Guarantees: every line a sink logs is kept in ``<run dir>/<label>-<index>.log``; a sink still
running when it is stopped gets SIGTERM, then SIGKILL after a grace period; :func:`drain`
returns only once every sink has exited. Not guaranteed: figures from a sink that timed out
(``timed_out``) describe a complete drain -- they are what it had done.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import orjson

from debug_sink.bench.procfs import cpu_seconds, peak_rss, process_children
from debug_sink.bench.stats import BatchLine, CpuSample, cores_busy, drain_window

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness

__all__ = [
    "Drain",
    "SinkProcess",
    "Stalled",
    "drain",
    "in_group",
    "mean_batch_events",
    "peak_rss_mb",
    "sink_env",
    "start_sink",
    "stop",
]

OnBatch = Callable[[int], None]

#: ``python -m`` arguments of ``debug-sink run``. (``-m debug_sink`` is the ``debug-sink``
#: command; ``-m debug_sink.cli.app`` would warn on stderr: the package imports the module
#: before runpy runs it.)
SINK: Final = ("debug_sink", "run")
#: The rivals of :mod:`debug_sink.bench.typical`, measured like the sink.
TYPICAL: Final = ("debug_sink.bench.typical",)
PER_ROW: Final = ("debug_sink.bench.typical", "--per-row")


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


@dataclass(frozen=True, slots=True)
class Drain:
    """The sinks of one :func:`drain` and the CPU samples taken while they ran."""

    sinks: list[SinkProcess]
    cpu: list[CpuSample]

    def cores_busy(self, after: float | None = None) -> dict[str, float]:
        """Cores busy per component over the drain window (first to last batch commit;
        ``after``: only commits after that time)."""
        stamps = sorted(
            b.at for s in self.sinks for b in s.batches if after is None or b.at > after
        )
        return cores_busy(self.cpu, stamps[0], stamps[-1]) if len(stamps) >= 2 else {}

    def figures(self, produced: dict[str, Any]) -> dict[str, Any]:
        """Rate, batches, parking and memory of the drain of ``produced`` (a backlog: its
        ``events`` and ``bytes``)."""
        batches = [b for s in self.sinks for b in s.batches]
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
            "mean_batch_events": mean_batch_events(batches),
            "mean_batch_ms": round(sum(b.duration_ms for b in batches) / max(1, len(batches)), 1),
            "parked": sum(b.parked for b in batches),
            "released": sum(b.released for b in batches),
            "peak_rss_mb": peak_rss_mb(self.sinks),
            "problems": [p for s in self.sinks for p in s.problems][:10],
        }


def mean_batch_events(batches: Sequence[BatchLine]) -> int:
    """Events per batch, on average (0 without batches)."""
    return round(sum(b.events for b in batches) / max(1, len(batches)))


def peak_rss_mb(sinks: Sequence[SinkProcess]) -> float:
    """The highest peak resident memory of ``sinks``, in MiB."""
    return round(max(s.peak_rss for s in sinks) / 2**20, 1)


def in_group(names: dict[str, str], suffix: str) -> dict[str, str]:
    """``names`` with a consumer group of its own: the same backlog drained afresh."""
    return {**names, "group_id": names["group_id"] + suffix}


def sink_env(h: Harness, dsn: str, names: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBUG_SINK_")}
    values = {
        "postgres_dsn": dsn,
        "kafka_bootstrap_servers": h.bootstrap,
        **names,
        "metrics_port": "0",
        "log_format": "json",
        "log_level": "info",
        # The write path only: periodic jobs would compete for the same two cores.
        "correlator_interval": "0",
        "retention_days": "0",
        # Failure detection only; Tansu holds a join for about half of it.
        "kafka_session_timeout_ms": str(h.cfg.session_timeout_ms),
    }
    env.update({f"DEBUG_SINK_{k.upper()}": v for k, v in values.items()})
    return env


async def start_sink(
    h: Harness,
    env: dict[str, str],
    index: int = 0,
    *,
    exit_when_idle: bool = True,
    on_batch: OnBatch | None = None,
    label: str = "sink",
    program: Sequence[str] = SINK,
) -> tuple[SinkProcess, asyncio.Task[None]]:
    """Start ``program`` (``debug-sink run`` unless told otherwise) with ``env``; the task
    watches it until it exits."""
    args = [sys.executable, "-m", *program]
    if exit_when_idle and program == SINK:
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
    log = h.root / f"{label}-{index}.log"
    watcher = asyncio.create_task(_watch(sink, on_batch, log))
    return sink, watcher


async def stop(
    sinks: Sequence[SinkProcess], watchers: Sequence[asyncio.Task[None]], grace: float = 60
) -> None:
    """SIGTERM to each sink still running, SIGKILL to those still running ``grace`` seconds
    later; returns when every watcher has finished."""
    for sink in sinks:
        if sink.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                sink.proc.send_signal(signal.SIGTERM)
    await asyncio.wait(watchers, timeout=grace)
    for sink in sinks:
        if sink.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                sink.proc.kill()
    await asyncio.gather(*watchers, return_exceptions=True)


class Stalled(RuntimeError):
    """A drain's processes committed nothing for ``stall_s`` seconds short of the backlog."""


async def drain(
    h: Harness,
    dsn: str,
    names: dict[str, str],
    expected: int,
    label: str,
    *,
    processes: int = 1,
    timeout: float = 1800,
    stall_s: float | None = None,
    partial_ok: bool = False,
    program: Sequence[str] = SINK,
) -> Drain:
    """Run ``processes`` sinks with ``--exit-when-idle`` (or another ``program`` that ends
    once it has consumed ``expected`` messages) until they exit. After ``timeout`` they are
    stopped; with ``partial_ok`` what they did is returned (each marked ``timed_out``), else
    it is an error. With ``stall_s``, processes that commit no batch for that long (from
    their start or their last batch) are stopped and :class:`Stalled` is raised."""
    task = h.progress.add_task(label, total=expected)
    last_batch = time.monotonic()

    def advance(events: int) -> None:
        nonlocal last_batch
        last_batch = time.monotonic()
        h.progress.advance(task, events)

    env = {**sink_env(h, dsn, names), "BENCH_EXPECTED": str(expected)}
    started = [
        await start_sink(h, env, i, on_batch=advance, label=names["group_id"], program=program)
        for i in range(processes)
    ]
    sinks = [s for s, _ in started]
    watchers = [w for _, w in started]
    samples: list[CpuSample] = []
    sampler = asyncio.create_task(_sample_cpu(h, sinks, samples))
    deadline = time.monotonic() + timeout
    stalled = False
    try:
        pending: set[asyncio.Task[None]] = set(watchers)
        while pending and time.monotonic() < deadline:
            _, pending = await asyncio.wait(
                pending, timeout=min(1.0, max(0.0, deadline - time.monotonic()))
            )
            if pending and stall_s is not None and time.monotonic() - last_batch > stall_s:
                stalled = True
                break
    finally:
        await _cancel(sampler)
        # One more after the last commit: a drain shorter than the sampling interval (a
        # quick run's) would otherwise end after the last sample and show no CPU at all.
        if samples and (last := _cpu_sample(h, sinks)) is not None:
            samples.append(last)
    if stalled:
        await stop(sinks, watchers)
        raise Stalled(f"{label}: no batch committed for {stall_s:.0f} s")
    if pending:
        for sink in sinks:
            sink.timed_out = sink.proc.returncode is None
        await stop(sinks, watchers)
        if not partial_ok:
            raise RuntimeError(f"{label}: the sink did not finish within {timeout:.0f}s")
        return Drain(sinks, samples)
    for sink in sinks:
        if sink.proc.returncode != 0:
            raise RuntimeError(
                f"{label}: sink exited with {sink.proc.returncode}:\n" + "\n".join(sink.tail)
            )
    return Drain(sinks, samples)


async def _sample_cpu(h: Harness, sinks: Sequence[SinkProcess], into: list[CpuSample]) -> None:
    """Cumulative CPU of the sinks, PostgreSQL and the broker, twice a second, into ``into``
    (where the cores went during a drain)."""
    while (sample := _cpu_sample(h, sinks)) is not None:
        into.append(sample)
        await asyncio.sleep(0.5)


def _cpu_sample(h: Harness, sinks: Sequence[SinkProcess]) -> CpuSample | None:
    """One sample of :func:`_sample_cpu`; None where it cannot be measured (not Linux)."""
    pg_pid, broker_pid = h.postgres.pid, h.kafka.pid
    tree = process_children()  # one scan of /proc for both
    postgres = cpu_seconds(pg_pid, children=tree) if pg_pid else None
    broker = cpu_seconds(broker_pid, children=tree) if broker_pid else None
    if postgres is None or broker is None:
        return None
    return CpuSample(time.time(), sum(s.cpu_s for s in sinks), postgres, broker)


async def _watch(sink: SinkProcess, on_batch: OnBatch | None, log: Path) -> None:
    """Read the sink's JSON log lines (kept in ``log``) and poll its memory until it
    exits."""
    poller = asyncio.create_task(_poll_rss(sink))
    try:
        with log.open("ab") as kept:
            await _read_log(sink, on_batch, kept)
        await sink.proc.wait()
    finally:
        await _cancel(poller)


async def _read_log(sink: SinkProcess, on_batch: OnBatch | None, kept: IO[bytes]) -> None:
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


async def _cancel(task: asyncio.Task[None]) -> None:
    """Stop a side task (a sampler, a poller) and wait until it has stopped."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _log_time(entry: dict[str, Any]) -> float:
    stamp = entry.get("timestamp")
    if isinstance(stamp, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(stamp).timestamp()
    return time.time()


async def _poll_rss(sink: SinkProcess) -> None:
    pid = sink.proc.pid
    try:
        psutil: Any = importlib.import_module("psutil")
        process = psutil.Process(pid)
    except Exception:
        process = None
    while sink.proc.returncode is None:
        peak = peak_rss(pid)
        if peak is None and process is not None:
            with contextlib.suppress(Exception):
                peak = int(process.memory_info().rss)
        if peak:
            sink.peak_rss = max(sink.peak_rss, peak)
        sink.cpu_s = cpu_seconds(pid) or sink.cpu_s
        await asyncio.sleep(0.1)
