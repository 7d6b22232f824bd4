"""Small files shared by concurrent hook processes: bounded locks, atomic replacement.

Owns :func:`lock` (``flock`` that gives up after a deadline instead of waiting for ever:
a hook must return, whatever another process does), :func:`replace` (write a file whole,
atomically), :func:`read_json` and :func:`ensure_dir` (0700: the spool holds tool inputs and
outputs before redaction). POSIX only, like Claude Code's hooks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

__all__ = ["ensure_dir", "lock", "read_json", "replace"]

_POLL_S: Final = 0.001


def ensure_dir(path: str) -> str:
    """``path``, created (with its parents) readable by this user only if missing -- every
    directory it creates, not only the last (``makedirs`` gives the parents the umask's)."""
    if not os.path.isdir(path):
        parent = os.path.dirname(os.path.abspath(path))
        if parent != path and not os.path.isdir(parent):
            ensure_dir(parent)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    return path


def lock(fd: int, timeout: float) -> bool:
    """Take an exclusive ``flock`` on ``fd``, waiting at most ``timeout`` seconds; ``False``
    when another process held it all that time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)


def replace(path: str, data: bytes) -> None:
    """Write ``path`` whole: readers see the old content or the new, never a part. On a
    failure (a full disk: ``OSError``, raised) ``path`` keeps its old content and no
    temporary file is left behind."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                if written <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp)
                view = view[written:]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: str) -> Any:
    """The JSON in ``path``; ``None`` when it is missing or not JSON."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None
