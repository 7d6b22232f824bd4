"""Talking to the shipper from a hook process: is it there, wake it, ask it, start it.

Owns the client side of the shipper's Unix socket (``<dir>/shipper.sock``: one JSON request
line, one JSON answer line), the shipper's status file (``<dir>/status.json``) and starting a
shipper in the background (:func:`spawn`).

The shipper is one process per hook directory (it holds ``<dir>/shipper.lock``); a hook
process starts it when none answers and none holds the lock, in a new session with its
standard streams on ``/dev/null`` and the log, so it neither holds Claude Code's pipes open
nor dies with the hook's process group. The hook takes the lock itself and hands it to the
shipper it starts (an inherited descriptor, ``--lock-fd``): a burst of parallel hooks starts
one shipper, not one per hook that found none yet (each costs a Python start-up on a CPU the
hooks need). The status file may ask not to start one before a
time (``retry_after``: after a configuration error, so that a broken setting costs one
attempt a minute, not one per tool call).

The socket's path may be longer than a Unix socket address holds (about 107 bytes: a hook
directory deep in a project): then it is bound and reached through the directory's open
descriptor, ``/proc/self/fd/<fd>/shipper.sock`` (Linux), which names the same file in the
same directory -- its permissions (0700, the user's) are the socket's protection, as for a
short path; nothing is put in a shared place another user could take first. Where there is
no ``/proc``, a shipper of such a directory runs without its socket (hooks then do not wait
for known fixes, and ``--status``/``--stop``/``--flush`` cannot reach it).

Guarantees: :func:`request` never waits past its timeout and never raises (``None``: no
answer). Imports the C ``_socket`` module, not :mod:`socket` (whose import costs the hook
command ~20 ms of its start-up).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Mapping

from debug_sink.hooks.files import ensure_dir, read_json
from debug_sink.hooks.problems import log_path, rotate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

try:
    import _socket as socket_module
except ImportError:  # pragma: no cover - CPython always has it
    import socket as socket_module  # type: ignore[no-redef]

__all__ = [
    "LOCK_FD",
    "LOCK_NAME",
    "SOCKET_NAME",
    "STATUS_NAME",
    "read_status",
    "request",
    "running",
    "socket_address",
    "socket_path",
    "spawn",
]

SOCKET_NAME: Final = "shipper.sock"
LOCK_NAME: Final = "shipper.lock"
#: The descriptor of the held ``shipper.lock`` in a shipper a hook started.
LOCK_FD: Final = 3
STATUS_NAME: Final = "status.json"
#: The longest answer read (a known-fixes answer is a few hundred bytes).
_MAX_ANSWER: Final = 1024 * 1024
#: Unix socket paths are limited to about 107 bytes (103 on BSDs).
_MAX_SOCKET_PATH: Final = 100


def socket_path(directory: str) -> str:
    """Where the shipper's socket is (the name to ``unlink``; to bind or connect, use
    :func:`socket_address`)."""
    return os.path.join(directory, SOCKET_NAME)


def socket_address(directory: str) -> tuple[str, int] | None:
    """The address to bind or connect the directory's socket with, and a descriptor to
    close once that is done (``-1``: none); ``None`` when the path is too long to use and
    the system offers no way around it. A short path is itself; a long one goes through the
    directory's descriptor (module doc)."""
    path = socket_path(directory)
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path, -1
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_PATH", 0))
    except OSError:
        return None
    via = f"/proc/self/fd/{fd}"
    if len(via) + 1 + len(SOCKET_NAME) <= _MAX_SOCKET_PATH and os.path.isdir(via):
        return f"{via}/{SOCKET_NAME}", fd
    os.close(fd)
    return None


def request(directory: str, message: Mapping[str, Any], timeout: float) -> dict[str, Any] | None:
    """Send ``message`` to the shipper and return its answer; ``None`` if no shipper
    answered within ``timeout`` seconds (or its socket cannot be reached)."""
    if timeout <= 0:
        return None
    try:
        sock = socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM)
    except OSError:
        return None
    try:
        sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        address = socket_address(directory)
        if address is None:
            return None
        path, fd = address
        try:
            sock.connect(path)
        finally:
            if fd >= 0:
                os.close(fd)
        sock.sendall(json.dumps(message).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n") and len(answer) < _MAX_ANSWER:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        data = json.loads(answer) if answer.strip() else None
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None
    finally:
        sock.close()


def running(directory: str) -> bool:
    """Whether a shipper holds the directory's lock (it may still be starting)."""
    try:
        fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the lock if we took it
    return False


def read_status(directory: str) -> dict[str, Any]:
    """The shipper's last status (``{}`` when it never wrote one)."""
    data = read_json(os.path.join(directory, STATUS_NAME))
    return data if isinstance(data, dict) else {}


def spawn(directory: str, *, now: float | None = None, reap: bool = False) -> int | None:
    """Start a shipper for ``directory`` unless one runs or the status says to wait; its pid,
    or ``None`` when none was started. ``reap``: a thread waits for it to end (for a process
    that lives on, such as an agent using the SDK helper; a hook process just exits)."""
    now = time.time() if now is None else now
    retry_after = read_status(directory).get("retry_after")
    if isinstance(retry_after, int | float) and now < retry_after:
        return None
    try:
        ensure_dir(directory)
        lock = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # a shipper runs, or another hook is starting one
        rotate(directory)
        pid = _spawn(directory, lock)
    finally:
        os.close(lock)  # the shipper's copy keeps the lock (or, if none started, it is free)
    if reap and pid is not None:
        import threading

        threading.Thread(
            target=_reap, args=(pid,), name="debug-sink-shipper-reaper", daemon=True
        ).start()
    return pid


def _spawn(directory: str, lock: int) -> int | None:
    """Start ``--serve`` holding ``lock`` (the locked ``shipper.lock``), as the child's
    descriptor :data:`LOCK_FD` (never ``lock`` itself: a ``dup2`` onto the same number
    keeps its close-on-exec flag on some C libraries)."""
    child_fd = LOCK_FD if lock != LOCK_FD else LOCK_FD + 1
    argv = [
        sys.executable,
        "-m",
        "debug_sink.hooks",
        "--serve",
        "--dir",
        directory,
        "--lock-fd",
        str(child_fd),
    ]
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (
            os.POSIX_SPAWN_OPEN,
            2,
            log_path(directory),
            os.O_WRONLY | os.O_APPEND | os.O_CREAT,
            0o600,
        ),
        (os.POSIX_SPAWN_DUP2, lock, child_fd),
    ]
    try:
        return os.posix_spawn(
            sys.executable, argv, dict(os.environ), file_actions=actions, setsid=True
        )
    except NotImplementedError:  # no POSIX_SPAWN_SETSID on this platform
        argv[-1] = str(lock)
        return _spawn_portably(argv, directory, lock)
    except OSError:
        return None


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        return  # reaped elsewhere (a SIGCHLD handler)


def _spawn_portably(argv: list[str], directory: str, lock: int) -> int | None:
    import subprocess

    try:
        with open(log_path(directory), "ab") as log:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
                pass_fds=(lock,),
            )
    except OSError:
        return None
    return child.pid
