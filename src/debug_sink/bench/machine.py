"""The machine a run measured on: CPU, memory, disk, load, and the code that ran.

Owns the ``machine`` part of the results and the load averages recorded around each section:
figures from a shared machine are read against what else it was doing.

Guarantees: every probe that fails (no ``/proc``, no git, not installed) leaves its key out or
says ``unknown``; none raises. Not guaranteed: that the git state describes the code that ran
when the package is installed outside a checkout (then only the package version is given).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["code_version", "load_average", "machine_info"]

#: The ``debug_sink`` package: the tree whose commit and local edits the results name.
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def load_average() -> float | None:
    """The 1-minute load average, or None where the system has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_info(root: Path) -> dict[str, Any]:
    """CPUs, platform, Python, CPU model, RAM, the disk free under ``root``, and
    :func:`code_version`."""
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
    info["code"] = code_version()
    return info


def code_version() -> str:
    """The package version and, in a git checkout, the commit (``+dirty`` with local edits
    anywhere in the ``debug_sink`` package, not only in the bench)."""
    try:
        text = version("debug-sink")
    except PackageNotFoundError:
        text = "unknown"
    here = str(_PACKAGE_DIR)
    try:
        head = _git(here, "rev-parse", "--short", "HEAD").strip()
        dirty = _git(here, "status", "--porcelain", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return text
    return f"{text} (git {head}{'+dirty' if dirty.strip() else ''})"


def _git(directory: str, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", directory, *args], capture_output=True, text=True, timeout=5, check=True
    ).stdout
