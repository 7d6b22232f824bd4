"""What the kernel says about a process: CPU seconds and peak resident memory (Linux ``/proc``).

Owns the reads of ``/proc/PID/stat`` and ``/proc/PID/status`` the bench uses to account where
the cores and the memory went during a drain.

Guarantees: a process that has gone, or a system without ``/proc``, gives None (or an empty
process tree), never an error. Not guaranteed: a consistent snapshot -- processes start and
exit between the reads of one scan; a sample is as exact as the kernel's tick
(``SC_CLK_TCK``).
"""

from __future__ import annotations

import os

__all__ = ["cpu_seconds", "peak_rss", "process_children"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def peak_rss(pid: int) -> int | None:
    """The kernel's peak resident set size of ``pid`` in bytes (``VmHWM``), or None."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def process_children() -> dict[int, list[int]]:
    """Parent pid -> child pids of every living process (Linux ``/proc``; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                children.setdefault(int(stat[1]), []).append(int(entry))
    return children


def cpu_seconds(pid: int, *, children: dict[int, list[int]] | None = None) -> float | None:
    """User + system CPU seconds of ``pid`` and its reaped children -- given the process
    tree (:func:`process_children`), of its living descendants too (PostgreSQL's backends).
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
