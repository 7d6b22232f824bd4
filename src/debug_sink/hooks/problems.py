"""How the hook command tells about problems without ever disturbing Claude Code.

Owns the local log (``<dir>/hook.log``, JSON lines, the shipper's log lines too; kept under
:data:`LOG_MAX_BYTES` by moving it to ``hook.log.1``) and the once-only notices: a problem
(a broken setting, an unreachable broker, a full spool) is written to standard error the first
time it is seen -- Claude Code shows a hook's stderr in its verbose mode -- and then only to
the log, until the condition clears (:func:`clear`) and comes back. Exit codes never carry
problems: the hook always exits 0.

Guarantees: nothing here raises (a log that cannot be written is skipped) and nothing here
writes to standard output (Claude Code reads a hook's stdout as its answer).
"""

from __future__ import annotations

import json
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

__all__ = ["LOG_MAX_BYTES", "clear", "log", "log_path", "notice", "rotate"]

#: The log is moved to hook.log.1 beyond this size (so at most twice this on disk).
LOG_MAX_BYTES: Final = 4 * 1024 * 1024


def log_path(directory: str) -> str:
    return os.path.join(directory, "hook.log")


def rotate(directory: str) -> None:
    """Move the log aside once it is larger than :data:`LOG_MAX_BYTES`."""
    path = log_path(directory)
    try:
        if os.stat(path).st_size > LOG_MAX_BYTES:
            os.replace(path, path + ".1")
    except OSError:
        pass


def log(directory: str, event: str, **fields: Any) -> None:
    """One JSON line in the local log: ``{"timestamp", "level", "event", ...}``."""
    line = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "level": "warning",
        "event": event,
        "pid": os.getpid(),
        **fields,
    }
    try:
        rotate(directory)
        fd = os.open(log_path(directory), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, json.dumps(line, default=str).encode() + b"\n")
        finally:
            os.close(fd)
    except OSError:
        pass


def notice(directory: str | None, key: str, message: str) -> bool:
    """Write ``message`` to standard error unless notice ``key`` was given already (and not
    cleared since); whether it was written. Without a usable directory it is always written
    (nothing can remember it)."""
    if directory is not None:
        try:
            os.makedirs(os.path.join(directory, "notices"), mode=0o700, exist_ok=True)
            fd = os.open(
                os.path.join(directory, "notices", key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
            )
            os.close(fd)
        except FileExistsError:
            return False
        except OSError:
            pass
    where = f" (details: {log_path(directory)})" if directory is not None else ""
    try:
        sys.stderr.write(f"debug-sink hook: {message}{where}; this is said once\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        return False
    return True


def clear(directory: str, key: str) -> None:
    """The condition of notice ``key`` is over: say it again when it comes back."""
    try:
        os.unlink(os.path.join(directory, "notices", key))
    except OSError:
        return  # it was not given, or cannot be cleared
