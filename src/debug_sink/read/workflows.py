"""Finding workflows: the statuses ``debug-sink workflows`` gives them, the id range a prefix
names, and the cursor of a page.

Owns :data:`WORKFLOW_STATUSES` (decided by the ``workflows`` query of
``sql/debug_queries.sql``, in this order of precedence), :func:`uuid_range` and the page
cursor (:func:`cursor`, :func:`parse_cursor`). Pure: no I/O, imported by the command line
without loading a database driver.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from uuid import UUID

__all__ = ["RUNNING_WITHIN_S", "WORKFLOW_STATUSES", "cursor", "parse_cursor", "uuid_range"]

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
