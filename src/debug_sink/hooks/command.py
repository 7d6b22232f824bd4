"""``debug-sink hook`` (and ``debug-sink-hook``): the command Claude Code runs for each hook
event.

Owns the fast entry point: read the hook's JSON from stdin, hand it to
:func:`~debug_sink.hooks.handler.handle`, print its answer, exit 0 -- whatever happens.
With arguments it is the hook's administration (``--flush``, ``--status``, ``--stop``,
``--settings``, and ``--serve``, the shipper itself), delegated to
:mod:`debug_sink.hooks.admin`.

Guarantees for the hook path: exit status 0 always (a broken setting, disk or broker is
reported once on stderr and in the local log, never by the exit status); standard output
holds the answer's JSON or nothing; the process ends within :data:`HARD_LIMIT_S` even if a
file system hangs (a timer ends it). The timer is disarmed (and its signal ignored) before
the interpreter shuts down, so it can never end the process with SIGALRM's default action
instead of exit 0. Imports only the standard library's light modules and
the hook package's fast path -- no pydantic, Kafka or PostgreSQL driver, no asyncio: the
start-up is most of the command's latency (a unit test holds the list).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = ["HARD_LIMIT_S", "main"]

#: Past this, the hook process ends (exit 0) whatever it was doing.
HARD_LIMIT_S: Final = 2.0


def main(argv: Sequence[str] | None = None, *, prog: str = "debug-sink-hook") -> int:
    """``debug-sink-hook [ARGS]`` (also ``debug-sink hook [ARGS]``: ``prog``); the exit
    status (0 for the hook path)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        from debug_sink.hooks.admin import main as admin_main

        status = admin_main(args, prog=prog)
        if status is not None:
            return status
    return run_hook()


def run_hook() -> int:
    """The hook path: stdin in, answer out, exit status 0."""
    _arm_timer()
    directory = None
    try:
        from debug_sink.hooks.config import HookConfig
        from debug_sink.hooks.handler import handle

        config = HookConfig.from_environ()
        directory = config.directory
        raw = sys.stdin.buffer.read()
        output = handle(raw, config)
        if output is not None:
            import json

            sys.stdout.write(json.dumps(output, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    except BaseException as exc:  # the hook must never fail Claude Code
        _report(directory, exc)
    finally:
        _disarm_timer()
    return 0


def _arm_timer() -> None:
    try:
        import signal

        signal.signal(signal.SIGALRM, _out_of_time)
        signal.setitimer(signal.ITIMER_REAL, HARD_LIMIT_S)
    except (ImportError, AttributeError, ValueError, OSError):
        pass  # no timer on this platform or thread


def _disarm_timer() -> None:
    """No SIGALRM from here on: at interpreter shutdown Python restores the default action,
    which would end the process with status -14 instead of 0."""
    try:
        import signal

        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
    except (ImportError, AttributeError, ValueError, OSError):
        pass


def _out_of_time(signum: int, frame: object) -> None:
    try:
        sys.stderr.write(f"debug-sink hook: gave up after {HARD_LIMIT_S} s\n")
        sys.stderr.flush()
    finally:
        os._exit(0)


def _report(directory: str | None, exc: BaseException) -> None:
    try:
        from debug_sink.hooks import problems

        detail = f"{type(exc).__name__}: {exc}"[:500]
        if directory is not None:
            problems.log(directory, "hook_failed", error=detail)
        problems.notice(directory, "internal-" + type(exc).__name__, f"failed: {detail}")
    except BaseException:
        pass
