"""``debug-sink hook`` (and ``debug-sink-hook``): the command Claude Code runs for each hook
event.

Owns the fast entry point: read the hook's JSON from stdin, hand it to
:func:`~debug_sink.hooks.handler.handle`, print its answer, exit 0 -- whatever happens.
With arguments it is the hook's administration (``--flush``, ``--status``, ``--stop``,
``--settings``, and ``--serve``, the shipper itself), delegated to
:mod:`debug_sink.hooks.admin`.

Guarantees for the hook path: exit status 0 always (a broken setting, disk or broker is
reported once on stderr and in the local log, never by the exit status); standard output
holds the answer's JSON (ASCII, so UTF-8 whatever the locale's encoding) or nothing; the
process ends within :data:`HARD_LIMIT_S` of its creation -- Python's start-up included, on
Linux (elsewhere of the moment this module runs) --
even if a file system blocks it interruptibly (a timer ends it; a process stuck in the kernel,
uninterruptible, is beyond any timer). An input given up at the bound before its events were
spooled is counted (``time_limit``, in the spool's counters ``--status`` shows) and said on
stderr; an input lost to an unforeseen error is counted too (``hook_failed``): nothing is
lost silently. The timer is disarmed (and its signal ignored) before the interpreter shuts
down, so it can never end the process with SIGALRM's default action instead of exit 0.
Imports only the standard library's light modules and the hook package's fast path -- no
pydantic, Kafka or PostgreSQL driver, no asyncio: the start-up is most of the command's
latency (a unit test holds the list).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

from debug_sink.hooks.files import ensure_dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = ["HARD_LIMIT_S", "main"]

#: Past this (counted from the process's creation where the system tells it), the hook
#: process ends (exit 0) whatever it was doing.
HARD_LIMIT_S: Final = 2.0
#: A process age outside this range is not believed (a /proc of another clock): the bound
#: then counts from the moment the timer is armed.
_PLAUSIBLE_AGE_S: Final = 60.0
#: With less left than this after the start-up, the hook gives up at once (counted) rather
#: than race its timer.
_MIN_LEFT_S: Final = 0.05
#: The counts-log lines of an input the hook gave up (:class:`~debug_sink.hooks.spool.Spool`).
_TIME_LIMIT: Final = b"time_limit\t1\n"
_HOOK_FAILED: Final = b"hook_failed\t1\n"
_GAVE_UP: Final = (
    f"debug-sink hook: gave up after {HARD_LIMIT_S:g} s (its time limit, start-up included); "
    "its event was not spooled and is counted as dropped (time_limit)\n"
).encode()
_GAVE_UP_SPOOLED: Final = (
    f"debug-sink hook: gave up after {HARD_LIMIT_S:g} s (its time limit, start-up included); "
    "its events were spooled\n"
).encode()
_GAVE_UP_UNCOUNTED: Final = (
    f"debug-sink hook: gave up after {HARD_LIMIT_S:g} s (its time limit, start-up included); "
    "its event was not spooled, and the spool's counts log could not be written\n"
).encode()


class _Bound:
    """What the timer's handler may touch: the spool's counts log (opened as soon as the
    directory is known; by the handler itself only if it fires before that), the directory,
    and whether this input's events are spooled or counted. The handler makes system calls
    (``write``, at most ``mkdir``/``open``) and ``_exit``: nothing that imports, takes a
    lock or uses a buffered stream the main thread may be in the middle of."""

    __slots__ = ("counts_fd", "directory", "settled")

    def __init__(self) -> None:
        self.counts_fd = -1
        self.directory: str | None = None
        self.settled = False


_bound = _Bound()


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
    _bound.settled = False
    left = _time_left()
    if left >= _MIN_LEFT_S:
        _arm_timer(left)
    directory = None
    try:
        from debug_sink.hooks.config import HookConfig

        config = HookConfig.from_environ()
        directory = _bound.directory = config.directory
        _open_counts(directory)
        if left < _MIN_LEFT_S:
            _give_up()  # the start-up alone took (about) the whole bound
            return 0
        from debug_sink.hooks.handler import handle

        raw = sys.stdin.buffer.read()
        output = handle(raw, config, settled=_mark_settled)
        if output is not None:
            import json

            # Bytes, all ASCII (escapes for the rest): Claude Code reads UTF-8 JSON, and the
            # text stream's encoding is the locale's (ISO-8859-1, EUC-JP on some machines).
            sys.stdout.buffer.write(json.dumps(output).encode("ascii") + b"\n")
            sys.stdout.buffer.flush()
    except BaseException as exc:  # the hook must never fail Claude Code
        _report(directory, exc)
    finally:
        _disarm_timer()
        _close_counts()
        _bound.directory = None
    return 0


def _mark_settled() -> None:
    """The input's events are spooled, or counted as dropped: giving up loses nothing."""
    _bound.settled = True


def _time_left() -> float:
    """Seconds left of :data:`HARD_LIMIT_S` (negative when the start-up took longer)."""
    age = _process_age()
    return HARD_LIMIT_S - age if age is not None else HARD_LIMIT_S


def _process_age() -> float | None:
    """Seconds since this process was created (Linux: ``/proc/self/stat``'s start time
    against ``CLOCK_BOOTTIME``, to the clock tick); ``None`` where the system cannot say."""
    try:
        import time

        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        # Field 22, counted after the command name (field 2, in parentheses, may hold spaces).
        start_ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return age if 0 <= age <= _PLAUSIBLE_AGE_S else None


def _arm_timer(seconds: float) -> None:
    try:
        import signal

        signal.signal(signal.SIGALRM, _out_of_time)
        signal.setitimer(signal.ITIMER_REAL, seconds)
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


def _open_counts(directory: str) -> None:
    """Open the spool's counts log for :func:`_out_of_time` (no lock needed: one
    ``O_APPEND`` write of a whole line, as :meth:`~debug_sink.hooks.spool.Spool.count` makes
    when the spool's lock is busy)."""
    try:
        spool = ensure_dir(os.path.join(directory, "spool"))
        _bound.counts_fd = os.open(
            os.path.join(spool, "counts.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
        )
    except OSError:
        _bound.counts_fd = -1  # a broken disk: said by the handler's own attempt


def _close_counts() -> None:
    fd, _bound.counts_fd = _bound.counts_fd, -1
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


def _count_lost(line: bytes) -> bool:
    """Count this input as dropped, unless its events are spooled or counted already;
    whether it was counted now."""
    if _bound.settled:
        return False
    if _bound.counts_fd < 0 and _bound.directory is not None:
        _open_counts(_bound.directory)  # the timer came before the run got to it
    if _bound.counts_fd < 0:
        return False
    os.write(_bound.counts_fd, line)
    _mark_settled()
    return True


def _give_up() -> None:
    message = _GAVE_UP_UNCOUNTED
    try:
        if _bound.settled:
            message = _GAVE_UP_SPOOLED
        elif _count_lost(_TIME_LIMIT):
            message = _GAVE_UP
    except OSError:
        pass
    with contextlib.suppress(OSError):
        os.write(2, message)


def _out_of_time(signum: int, frame: object) -> None:
    """SIGALRM: the bound is reached. Python runs this between two bytecodes of the main
    thread, which may be in the middle of anything (a buffered write to stderr, an import):
    so only system calls (:class:`_Bound`), then ``os._exit``."""
    try:
        _give_up()
    finally:
        os._exit(0)


def _report(directory: str | None, exc: BaseException) -> None:
    with contextlib.suppress(BaseException):
        _count_lost(_HOOK_FAILED)
    try:
        from debug_sink.hooks import problems

        detail = f"{type(exc).__name__}: {exc}"[:500]
        if directory is not None:
            problems.log(directory, "hook_failed", error=detail)
        problems.notice(directory, "internal-" + type(exc).__name__, f"failed: {detail}")
    except BaseException:
        pass
