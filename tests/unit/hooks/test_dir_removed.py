"""A hook directory removed while its shipper runs (``rm -rf ~/.local/state/debug-sink``):
the next hook makes the directory again and starts a shipper for it; the old shipper, when it
ends, must leave the new one's socket and status alone -- else the new shipper runs on
unreachable (no wake, no known fixes, no ``--flush``/``--stop``) for as long as hooks keep it
busy."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from debug_sink.hooks import control
from tests import hook_payloads as p
from tests.hook_support import hook as run_hook
from tests.hook_support import stop_shipper

SESSION = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"


def hook(directory: str, n: int, idle_s: int) -> None:
    done = run_hook(
        directory,
        json.dumps(p.session(SESSION)[n % 4]).encode(),
        DEBUG_SINK_HOOK_IDLE_SECONDS=str(idle_s),
    )
    assert done.returncode == 0, done.stderr


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie -- ended, not reaped by its adopter -- does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def until(condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def serving_pid(directory: str) -> int | None:
    answer = control.request(directory, {"op": "status"}, 1.0)
    return answer.get("pid") if answer else None


@pytest.fixture
def hook_dir(tmp_path: Path) -> Iterator[str]:
    directory = str(tmp_path / "hooks")
    yield directory
    for _ in range(2):
        stop_shipper(directory)


def test_the_old_shipper_leaves_the_new_directory_s_shipper_reachable(hook_dir: str) -> None:
    hook(hook_dir, 0, idle_s=1)  # this one's shipper ends soon
    until(lambda: serving_pid(hook_dir) is not None)
    old = serving_pid(hook_dir)
    assert old is not None

    shutil.rmtree(hook_dir)
    hook(hook_dir, 1, idle_s=600)  # the directory again, and a shipper that stays
    until(lambda: serving_pid(hook_dir) not in (None, old))
    new = serving_pid(hook_dir)
    assert new is not None

    until(lambda: not alive(old))
    assert alive(new)
    assert serving_pid(hook_dir) == new, "the running shipper's socket is gone"
    assert control.read_status(hook_dir).get("pid") == new
    assert control.read_status(hook_dir).get("state") != "stopped"
