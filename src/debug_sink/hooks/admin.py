"""The hook's administration: ``debug-sink-hook --flush | --status | --stop | --settings``.

Owns the flags shared by ``debug-sink-hook`` and ``debug-sink hook`` (:func:`add_arguments`)
and what they do (:func:`run`):

- ``--flush [--timeout S]``: ship the spool now -- through the running shipper, or in this
  process when none runs; exit 0 once it is empty, 3 when events are left (the broker is
  away);
- ``--status [--json]``: the spool (events and bytes waiting, what was dropped and why), the
  shipper (running, its pid, the broker's state), the hook directory;
- ``--stop``: stop the running shipper (the next hook starts one again);
- ``--settings``: the ``hooks`` block of ``.claude/settings.json`` that runs the command for
  every hook event;
- ``--serve`` (internal): be the shipper; hook processes start it this way.

A usage error exits 1 (see :class:`_Parser`). Only the commands configure logging:
``--serve`` logs JSON lines to its standard error (the hook log), ``--flush`` warnings to the
terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, Final, NoReturn, TextIO, cast

from debug_sink.hooks import control
from debug_sink.hooks.config import HookConfig
from debug_sink.hooks.spool import Spool

__all__ = ["DEFAULT_COMMAND", "HOOK_EVENTS", "add_arguments", "main", "run", "settings_block"]

#: The hook events the settings block registers (every one Claude Code documents that the
#: command maps or records).
HOOK_EVENTS: Final = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "PostToolUseFailure",
    "Notification",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "Stop",
    "SessionEnd",
)
#: What the settings block runs: the name the README and ``debug-sink --help`` give.
DEFAULT_COMMAND: Final = "debug-sink hook"
EXIT_LEFT: Final = 3
EXIT_USAGE: Final = 1
_DEFAULT_FLUSH_S: Final = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The administration flags (none given: handle one hook event from stdin)."""
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--flush", action="store_true", help="ship the spool now (exit 3 if events are left)"
    )
    what.add_argument("--status", action="store_true", help="the spool and the shipper")
    what.add_argument("--stop", action="store_true", help="stop the background shipper")
    what.add_argument(
        "--settings",
        action="store_true",
        help="print the hooks block of .claude/settings.json for every hook event",
    )
    what.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--dir", help="hook directory (default: $DEBUG_SINK_HOOK_DIR, else the XDG state dir)"
    )
    parser.add_argument("--lock-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--timeout",
        type=float,
        default=_DEFAULT_FLUSH_S,
        help=f"--flush: seconds to wait for the broker (default {_DEFAULT_FLUSH_S:g})",
    )
    parser.add_argument("--json", action="store_true", help="--status: machine-readable")
    parser.add_argument(
        "--command",
        default=DEFAULT_COMMAND,
        help=f"--settings: the command to run (default: {DEFAULT_COMMAND})",
    )


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1, not argparse's 2: Claude Code reads a hook's exit status 2 as
    "block this tool call", and a typo in settings.json must not block the agent."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str], *, prog: str = "debug-sink-hook") -> int | None:
    parser = _Parser(
        prog=prog,
        description="Claude Code hook command of debug-sink: without arguments it reads one "
        "hook event's JSON from stdin (see .claude/settings.json); with one it administers "
        "the spool and its shipper.",
    )
    add_arguments(parser)
    return run(parser.parse_args(list(argv)))


def run(args: argparse.Namespace) -> int | None:
    """Do what the flags say; the exit status. ``None`` when no flag asks for anything but
    the hook itself (``--dir`` alone: it is set for the hook path, which the caller runs)."""
    if args.dir:
        os.environ["DEBUG_SINK_HOOK_DIR"] = os.path.abspath(args.dir)
    directory = os.path.abspath(args.dir) if args.dir else HookConfig.from_environ().directory
    if args.serve:
        return serve(directory, lock_fd=_inherited_lock(directory, args.lock_fd))
    if args.flush:
        return flush(directory, args.timeout)
    if args.status:
        return status(directory, as_json=args.json)
    if args.stop:
        return stop(directory)
    if args.settings:
        _print(json.dumps(settings_block(args.command), indent=2))
        return 0
    return None


def settings_block(command: str = DEFAULT_COMMAND) -> dict[str, Any]:
    """``{"hooks": {...}}`` for .claude/settings.json: ``command`` for every hook event, one
    matcher (``*``: every tool, every source)."""
    entry = [{"matcher": "*", "hooks": [{"type": "command", "command": command, "timeout": 5}]}]
    return {"hooks": dict.fromkeys(HOOK_EVENTS, entry)}


# -- the shipper ----------------------------------------------------------------------------


def take_lock(directory: str) -> int | None:
    """The shipper lock's fd, held; ``None`` when another shipper holds it."""
    from debug_sink.hooks.files import ensure_dir

    ensure_dir(directory)
    fd = os.open(os.path.join(directory, control.LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _inherited_lock(directory: str, fd: int | None) -> int | None:
    """``fd`` when it is the directory's ``shipper.lock``, locked (the hook that started this
    shipper took it and passed it on); else ``None`` (take it here)."""
    if fd is None:
        return None
    try:
        held = os.fstat(fd)
        path = os.stat(os.path.join(directory, control.LOCK_NAME))
        if (held.st_dev, held.st_ino) == (path.st_dev, path.st_ino):
            # The same open file holds the lock already: this only confirms it.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.set_inheritable(fd, False)
            return fd
    except OSError:
        pass
    return None


def serve(directory: str, *, lock_fd: int | None = None) -> int:
    """Be the directory's shipper until idle; 0 also when another one is (it ships)."""
    fd = lock_fd if lock_fd is not None else take_lock(directory)
    if fd is None:
        return 0
    from debug_sink.errors import ConfigurationError
    from debug_sink.hooks.shipper import serve as ship
    from debug_sink.logs import configure_logging

    level = os.environ.get("DEBUG_SINK_LOG_LEVEL", "info").lower()
    configure_logging(
        level if level in ("debug", "info", "warning", "error") else "info",
        "json",
        stream=cast("TextIO", _LogStream()),
    )
    try:
        ship(directory)
    except ConfigurationError:
        return 1
    finally:
        os.close(fd)
    return 0


class _LogStream:
    """The shipper's log lines to its standard error (the hook log, often on the disk it
    ships from): whole lines, one ``write`` each (the hooks append to the same file), and a
    line the disk refuses (full) is skipped -- a print that raises would end the shipper."""

    def __init__(self, fd: int = 2) -> None:
        self._fd = fd
        self._partial = ""

    def write(self, text: str) -> int:
        lines, newline, self._partial = (self._partial + text).rpartition("\n")
        if newline:
            with contextlib.suppress(OSError):
                os.write(self._fd, (lines + newline).encode("utf-8", "replace"))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def flush(directory: str, timeout: float) -> int:
    """Ship the spool now: 0 when it is empty after, 3 when events are left."""
    answer = control.request(directory, {"op": "flush", "timeout": timeout}, timeout + 5)
    if answer is None:
        fd = take_lock(directory)
        if fd is None:  # a shipper is starting: ask it once it listens
            answer = _ask_when_up(directory, {"op": "flush", "timeout": timeout}, timeout)
        else:
            try:
                answer = _flush_here(directory, timeout)
            finally:
                os.close(fd)
    if answer is None:
        print("debug-sink hook: no answer from the shipper", file=sys.stderr)
        return EXIT_LEFT
    left = int(answer.get("pending_bytes", answer.get("left_bytes", 0)) or 0)
    pending = Spool(directory, 1).pending_events() if left else 0
    total = answer.get("shipped_total")
    _print(
        f"shipped {answer.get('shipped', 0)} events"
        + (f" ({total} since the shipper started)" if total is not None else "")
        + f", dropped {answer.get('dropped', 0)}, {pending} waiting in the spool ({left} bytes)"
    )
    return 0 if left == 0 else EXIT_LEFT


def _flush_here(directory: str, timeout: float) -> dict[str, Any] | None:
    from debug_sink.errors import ConfigurationError
    from debug_sink.hooks.shipper import serve as ship
    from debug_sink.logs import configure_logging

    configure_logging("warning", "auto")
    try:
        result = ship(directory, drain=True, timeout=timeout)
    except ConfigurationError as exc:
        print(f"debug-sink hook: error: {exc}", file=sys.stderr)
        return None
    return result.as_dict()


def _ask_when_up(directory: str, message: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = control.request(directory, message, deadline - time.monotonic() + 5)
        if answer is not None:
            return answer
        if not control.running(directory):
            return None
        time.sleep(0.1)
    return None


def stop(directory: str, timeout: float = 15.0) -> int:
    """Stop the running shipper and wait until it is gone."""
    if control.request(directory, {"op": "stop"}, 5) is None and not control.running(directory):
        _print("no shipper running")
        return 0
    deadline = time.monotonic() + timeout
    while control.running(directory):
        if time.monotonic() > deadline:
            print("debug-sink hook: the shipper did not stop", file=sys.stderr)
            return 1
        control.request(directory, {"op": "stop"}, 1)
        time.sleep(0.05)
    _print("shipper stopped")
    return 0


def status(directory: str, *, as_json: bool) -> int:
    """What is waiting, what was dropped, whether a shipper runs."""
    spool = Spool(directory, 1)
    live = control.request(directory, {"op": "status"}, 2)
    document: dict[str, Any] = {
        "directory": directory,
        "pending_events": spool.pending_events(),
        "pending_bytes": spool.unshipped_bytes(),
        "dropped": spool.counters(),
        "shipper": live if live is not None else {"running": control.running(directory)},
        "last_status": control.read_status(directory),
    }
    if as_json:
        _print(json.dumps(document, indent=2, default=str))
        return 0
    last = document["last_status"]
    lines = [
        f"hook directory: {directory}",
        f"waiting in the spool: {document['pending_events']} events "
        f"({document['pending_bytes']} bytes)",
        "dropped: "
        + (", ".join(f"{k} {v}" for k, v in sorted(document["dropped"].items())) or "none"),
        "shipper: " + _shipper_line(live, document["shipper"]),
    ]
    if last.get("state"):
        lines.append(
            f"last state: {last['state']}"
            + (f" -- {last['problem']}" if last.get("problem") else "")
        )
    _print("\n".join(lines))
    return 0


def _shipper_line(live: dict[str, Any] | None, shipper: dict[str, Any]) -> str:
    if live is not None:
        return f"running (pid {live.get('pid')})"
    if shipper.get("running"):
        return "running (not answering on its socket)"
    return "not running"


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
