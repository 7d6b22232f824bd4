"""Per-session state across hook invocations, safe for parallel hooks.

Owns :class:`SessionStore`: one small JSON file per Claude Code session
(``<dir>/sessions/<sha1 of the session id>.json``) holding what one invocation must know
of the ones before it -- the open turn, step numbers, the errors of each tool still waiting
for a recovery, the tools used since, PreToolUse times. Claude Code runs hooks in parallel
(parallel tool calls), so an invocation holds the file's ``flock`` from reading to writing.

Guarantees: one invocation at a time reads and writes a session's state; a lock held by
another process longer than the timeout makes :meth:`SessionStore.open` return ``None``
instead of waiting (the caller goes on without state); a file that is not valid JSON (a
crash mid-write) is read as a fresh state. Files untouched for :data:`EXPIRE_DAYS` are
removed by :meth:`SessionStore.expire`. Every fresh state holds a random ``nonce`` of its
own, which the ids counted from the state include
(:meth:`~debug_sink.hooks.mapping.map_hook`): a session whose state was lost (expired,
broken) counts its events from 1 again, but never repeats the ids of its first ones. Not
guaranteed: durability across a machine crash (no fsync: the state is a convenience, the
events are in the spool).
"""

from __future__ import annotations

import json
import os
import time
from types import TracebackType

from debug_sink.hooks.files import ensure_dir, lock
from debug_sink.hooks.ids import sha1_hex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

__all__ = ["EXPIRE_DAYS", "SessionState", "SessionStore", "fresh_state"]

#: Session files not written for this long are deleted (a resumed session older than that
#: starts its turn numbering again).
EXPIRE_DAYS: Final = 14
#: A state file larger than this is not read (it cannot be one the command wrote).
_MAX_BYTES: Final = 4 * 1024 * 1024
STATE_VERSION: Final = 1


class SessionState:
    """The locked state of one session: :attr:`data` to read and change, :meth:`save` to
    write it back. Use as a context manager (the lock is released on exit)."""

    __slots__ = ("_fd", "data", "path")

    def __init__(self, path: str, fd: int, data: dict[str, Any]) -> None:
        self.path = path
        self._fd = fd
        self.data = data

    def save(self) -> None:
        """Write :attr:`data` back (still under the lock)."""
        body = json.dumps(self.data, ensure_ascii=False, separators=(",", ":")).encode()
        os.pwrite(self._fd, body, 0)
        os.ftruncate(self._fd, len(body))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the flock
            self._fd = -1

    def __enter__(self) -> SessionState:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SessionStore:
    """The session files under ``<directory>/sessions``."""

    __slots__ = ("directory",)

    def __init__(self, directory: str) -> None:
        self.directory = os.path.join(directory, "sessions")

    def path(self, session_id: str) -> str:
        name = sha1_hex(session_id.encode("utf-8", "surrogatepass"))[:32]
        return os.path.join(self.directory, f"{name}.json")

    def open(self, session_id: str, timeout: float) -> SessionState | None:
        """The session's state, locked; ``None`` if another process held the lock for
        ``timeout`` seconds."""
        ensure_dir(self.directory)
        path = self.path(session_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not lock(fd, timeout):
                os.close(fd)
                return None
            data = _load(fd)
        except BaseException:
            os.close(fd)
            raise
        return SessionState(path, fd, data)

    def expire(self, now: float | None = None) -> int:
        """Delete session files untouched for :data:`EXPIRE_DAYS`; how many were."""
        cutoff = (time.time() if now is None else now) - EXPIRE_DAYS * 86400
        removed = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.name.endswith(".json") and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
        return removed


def fresh_state() -> dict[str, Any]:
    """The state of a session never seen (or whose state was lost): its version and a new
    random nonce (64 bits: the ids of two states of one session never meet)."""
    return {"v": STATE_VERSION, "nonce": os.urandom(8).hex()}


def _load(fd: int) -> dict[str, Any]:
    size = os.fstat(fd).st_size
    if size == 0 or size > _MAX_BYTES:
        return fresh_state()
    try:
        data = json.loads(os.pread(fd, size, 0))
    except (ValueError, RecursionError):
        return fresh_state()
    if not isinstance(data, dict) or data.get("v") != STATE_VERSION:
        return fresh_state()
    return data
