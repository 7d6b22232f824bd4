"""The local spool: events the hook command made, waiting for the shipper to send them.

Owns :class:`Spool`, the files under ``<dir>/spool``:

- ``events.jsonl`` -- one record per line: ``{"kind": <event kind>, "event": <wire JSON>}``,
  appended by hook processes under the file's ``flock``, one ``write`` per invocation;
- ``shipped`` -- how many bytes of it the broker has acknowledged (written by the shipper
  only);
- ``counters.json`` (and ``counts.log``, for counts made while another process held the
  lock, and by a hook giving up at its time bound) -- what could not be spooled or shipped, by
  reason (``spool_full``, ``spool_busy``, ``spool_write_failed``, ``unreadable_input``,
  ``time_limit``, ``hook_failed``, ``rejected``, ``invalid``, ``corrupt``), and
  ``state_busy`` (a hook that went on without its session's state: its events are spooled).

Guarantees:

- **Bounded.** :meth:`Spool.append` refuses records that would take the unshipped part past
  ``max_bytes``; each refused event is counted (``spool_full``), none is lost silently.
- **Acknowledged, then forgotten.** The shipper reads records from ``shipped`` on
  (:meth:`Spool.read`), sends them, and only after the broker acknowledged them moves
  ``shipped`` past them (:meth:`Spool.commit`); once everything is shipped the file is
  emptied under the lock (:meth:`Spool.compact`). A shipper that dies between the
  acknowledgement and the commit sends those records again: the event ids are deterministic
  and the sink stores an event once, so the rows are exactly once. A position the disk
  refuses (full) raises; the shipper keeps it in memory and goes on from it. Emptying needs
  no room: position 0 is no ``shipped`` file, removed before the file is truncated.
- **Whole records.** Only complete lines are read; a line that is not a record (a write cut
  by a crash) is skipped and counted (``corrupt``), and the next append starts a new line. A
  write the system takes only part of (a full disk) is taken back and counted
  (``spool_write_failed``).

Not guaranteed: durability across a machine crash (no fsync, for the hook's latency).
"""

from __future__ import annotations

import contextlib
import json
import os

from debug_sink.hooks.files import ensure_dir, lock, read_json, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

__all__ = ["LOCK_TIMEOUT", "Spool"]

#: How long an append waits for the spool's lock (the shipper holds it for a truncate only).
LOCK_TIMEOUT: Final = 0.2
_READ_CHUNK: Final = 1024 * 1024


class Spool:
    """The spool of one hook directory."""

    __slots__ = ("_counters", "_counts_log", "_events", "_shipped", "directory", "max_bytes")

    def __init__(self, directory: str, max_bytes: int) -> None:
        self.directory = os.path.join(directory, "spool")
        self.max_bytes = max_bytes
        self._events = os.path.join(self.directory, "events.jsonl")
        self._shipped = os.path.join(self.directory, "shipped")
        self._counters = os.path.join(self.directory, "counters.json")
        self._counts_log = os.path.join(self.directory, "counts.log")

    # -- hook processes ------------------------------------------------------------------

    def append(self, records: list[tuple[str, dict[str, Any]]]) -> bool:
        """Add ``(kind, event)`` records, all or none; ``False`` when they did not fit (then
        they are counted as dropped) or the lock could not be had in time (counted too)."""
        if not records:
            return True
        data = b"".join(
            json.dumps(
                {"kind": kind, "event": event}, ensure_ascii=False, separators=(",", ":")
            ).encode("utf-8", "surrogatepass")
            + b"\n"
            for kind, event in records
        )
        ensure_dir(self.directory)
        # Read and write: the last byte is read to know whether a torn write left a line open.
        fd = os.open(self._events, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if not lock(fd, LOCK_TIMEOUT):
                self.count("spool_busy", len(records))
                return False
            size = os.fstat(fd).st_size
            if size - self.shipped() + len(data) > self.max_bytes:
                self._count_locked("spool_full", len(records))
                return False
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # after a torn write: the records start a line of their own
            if not _write_all(fd, data):
                # A full disk (or file size limit): the cut records are taken back, whole
                # records stay readable, and the loss is counted (if the disk allows).
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                    self._count_locked("spool_write_failed", len(records))
                return False
            return True
        finally:
            os.close(fd)

    def count(self, reason: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``reason``. Without the spool's lock (held too long by
        another process) the count is appended to ``counts.log`` instead, which needs none
        (one short ``O_APPEND`` write) and which :meth:`counters` adds in."""
        ensure_dir(self.directory)
        fd = os.open(self._events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if lock(fd, LOCK_TIMEOUT):
                self._count_locked(reason, n)
                return
        finally:
            os.close(fd)
        self._log_count(reason, n)

    def _count_locked(self, reason: str, n: int) -> None:
        counters = _read_counters(self._counters)
        counters[reason] = counters.get(reason, 0) + n
        try:
            replace(self._counters, json.dumps(counters, sort_keys=True).encode())
        except OSError:
            # No room for a new counters file (a full disk): one short line may still fit.
            self._log_count(reason, n)

    def _log_count(self, reason: str, n: int) -> None:
        log = os.open(self._counts_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(log, f"{reason}\t{n}\n".encode())
        finally:
            os.close(log)

    def counters(self) -> dict[str, int]:
        """Counts by reason of what was not spooled or not shipped."""
        counters = _read_counters(self._counters)
        try:
            with open(self._counts_log, "rb") as f:
                for line in f:
                    reason, _, n = line.decode("utf-8", "replace").strip().partition("\t")
                    if reason and n.isdigit():
                        counters[reason] = counters.get(reason, 0) + int(n)
        except OSError:
            pass
        return counters

    # -- the shipper ----------------------------------------------------------------------

    def shipped(self) -> int:
        """Bytes of ``events.jsonl`` acknowledged by the broker."""
        try:
            with open(self._shipped, "rb") as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def size(self) -> int:
        try:
            return os.stat(self._events).st_size
        except FileNotFoundError:
            return 0

    def unshipped_bytes(self) -> int:
        return max(0, self.size() - self.shipped())

    def read(self, offset: int, limit: int = _READ_CHUNK) -> tuple[list[bytes], int]:
        """Complete lines from ``offset``, at most about ``limit`` bytes (always at least one
        whole line when there is one); and the offset after the last of them."""
        try:
            fd = os.open(self._events, os.O_RDONLY)
        except FileNotFoundError:
            return [], offset
        try:
            chunk = os.pread(fd, limit, offset)
            end = chunk.rfind(b"\n")
            while end < 0 and len(chunk) == limit:  # one line longer than the chunk
                limit *= 2
                chunk = os.pread(fd, limit, offset)
                end = chunk.rfind(b"\n")
        finally:
            os.close(fd)
        if end < 0:
            return [], offset
        return chunk[:end].split(b"\n"), offset + end + 1

    def start(self) -> int:
        """Where the shipper starts: ``shipped``, or 0 if the file was emptied meanwhile."""
        shipped = self.shipped()
        return shipped if shipped <= self.size() else 0

    def commit(self, offset: int) -> None:
        """The broker acknowledged everything before ``offset``. Raises ``OSError`` when the
        position cannot be written (a full disk): the caller keeps it and tries again."""
        if offset == 0:
            # No file is position 0: removing one needs no room on a full disk.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._shipped)
            return
        ensure_dir(self.directory)
        replace(self._shipped, str(offset).encode())

    def compact(self, shipped: int | None = None) -> bool:
        """Empty the file if everything in it is shipped (``shipped``: the shipper's own
        position, when it could not be written); whether it was emptied. Emptying needs no
        room on the disk, and gives some back."""
        try:
            fd = os.open(self._events, os.O_WRONLY)
        except FileNotFoundError:
            return False
        try:
            if not lock(fd, LOCK_TIMEOUT):
                return False
            if os.fstat(fd).st_size != (self.shipped() if shipped is None else shipped):
                return False
            # Position 0 first: a crash between the two sends the records again (the sink
            # stores them once), never skips new ones.
            self.commit(0)
            os.ftruncate(fd, 0)
            return True
        finally:
            os.close(fd)

    def pending_events(self) -> int:
        """How many records are not shipped yet (counts lines)."""
        lines, _ = self.read(self.start(), limit=max(self.unshipped_bytes(), 1))
        return len([line for line in lines if line.strip()])


def _write_all(fd: int, data: bytes) -> bool:
    """Write all of ``data``; ``False`` when the system took only part of it, or refused."""
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            if written <= 0:
                return False
            view = view[written:]
    except OSError:
        return False
    return True


def _read_counters(path: str) -> dict[str, int]:
    data = read_json(path)
    if not isinstance(data, dict):
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}
