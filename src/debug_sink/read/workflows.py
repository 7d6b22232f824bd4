"""Finding workflows: the statuses ``debug-sink workflows`` gives them, the id range a prefix
names, the cursor of a page, and the pages of the web view's list.

Owns :data:`WORKFLOW_STATUSES` (decided by the ``workflows`` query of
``sql/debug_queries.sql``, in this order of precedence), :func:`uuid_range`, the page
cursor (:func:`cursor`, :func:`parse_cursor`), and the two pure halves of
``DebugQueries.workflow_page``: :class:`WorkflowPage` and :func:`first_positions`. Pure: no
I/O, imported by the command line without loading a database driver.

How ``workflow_page`` finds a page, at any table size: it reads the *activity stream* --
every event's time, newest first, through the tables' time indexes -- in slices, from the
page's cursor down. A workflow's first position in the stream is its last activity; each
slice's new workflows (:func:`first_positions`) are checked in one query (their last
activity, status, filters) and kept in stream order until the page is full. So a page costs
what it reads -- about the events of the workflows it shows -- however many events are
stored. With a filter few workflows pass, the scan stops after ``scan_events`` events and
the page says how far back it looked (:attr:`WorkflowPage.scanned_to`); its cursor continues
from there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

__all__ = [
    "RUNNING_WITHIN_S",
    "WORKFLOW_STATUSES",
    "WorkflowPage",
    "cursor",
    "first_positions",
    "parse_cursor",
    "uuid_range",
]

#: running: a step is open and the workflow was active within :data:`RUNNING_WITHIN_S`;
#: failed: its last step failed, or is open and the workflow went silent; unrecovered: an
#: error nothing recovered (yet: the correlator links recoveries on its next run);
#: recovered: every error recovered; ok: no errors.
WORKFLOW_STATUSES: Final = ("running", "failed", "unrecovered", "recovered", "ok")
#: A workflow with an open step is running while its last event is at most this old.
RUNNING_WITHIN_S: Final = 900.0
_HEX: Final = frozenset("0123456789abcdef")


def uuid_range(prefix: str) -> tuple[UUID, UUID]:
    """The lowest and highest UUID that start with ``prefix`` (1 to 32 hex digits, hyphens
    ignored): an index range scan finds them, where ``id::text LIKE 'ab%'`` could not.
    ``ValueError`` for anything else."""
    digits = prefix.replace("-", "").lower()
    if not digits or len(digits) > 32 or not set(digits) <= _HEX:
        raise ValueError(f"not a correlation id or a prefix of one: {prefix!r}")
    return UUID(digits.ljust(32, "0")), UUID(digits.ljust(32, "f"))


def cursor(last_event_at: datetime, correlation_id: UUID) -> str:
    """The keyset cursor of a row: ``LAST_ACTIVITY/CORRELATION_ID``."""
    return f"{last_event_at.isoformat()}/{correlation_id}"


def parse_cursor(text: str) -> tuple[datetime, UUID]:
    """The (last activity, correlation id) of a :func:`cursor`; ``ValueError`` otherwise."""
    at, _, corr = text.partition("/")
    try:
        moment, correlation_id = datetime.fromisoformat(at), UUID(corr)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(f"not a cursor: {text!r}")
    return moment, correlation_id


@dataclass(frozen=True, slots=True)
class WorkflowPage:
    """One page of ``DebugQueries.workflow_page``: workflows, latest activity first.

    ``next_before``: where the next page starts (``None``: nothing older is active since the
    window's start). ``scanned_to``: set when the scan stopped at its limit before the page
    was full -- workflows active before that moment were not looked at yet, and
    ``next_before`` continues from there. ``events_read``: rows of the activity stream read.
    """

    rows: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    next_before: tuple[datetime, UUID] | None = None
    scanned_to: datetime | None = None
    events_read: int = 0


def first_positions(
    events: Iterable[tuple[UUID, datetime]], seen: set[UUID]
) -> tuple[list[UUID], list[datetime]]:
    """The workflows of a slice of the activity stream (``(correlation_id, at)``, newest
    first) not in ``seen``, each at its first position, in stream order; ``seen`` gains them.
    """
    ids: list[UUID] = []
    positions: list[datetime] = []
    for correlation_id, at in events:
        if correlation_id not in seen:
            seen.add(correlation_id)
            ids.append(correlation_id)
            positions.append(at)
    return ids, positions
