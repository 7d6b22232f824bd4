"""Every name the bench borrows from the sink's own packages.

Owns the bench's imports from ``debug_sink.sink``, ``debug_sink.db``, ``debug_sink.jobs`` and
``debug_sink.wire``: the bench measures the sink with the sink's own column lists, decoder,
migrations and correlator, and those move as the sink is refactored. No other module of
:mod:`debug_sink.bench` imports from those packages (``tests/unit/bench/test_internals.py``
checks it), so a rename there is fixed in this one file.

Guarantees: importing this module fails at once when a borrowed name has moved, rather than
in the middle of a run. Not guaranteed: that the borrowed names are stable API -- they are
internal to the sink; this module is where that is accepted.
"""

from __future__ import annotations

from debug_sink.db import sqlfiles
from debug_sink.db.migrate import migrate_up
from debug_sink.jobs.correlator import Correlator
from debug_sink.sink.tables import COLUMNS, init_connection, record_of
from debug_sink.wire.events import MODELS, TABLES, EventKind
from debug_sink.wire.validation import Accepted, ValidationConfig, decode

__all__ = [
    "COLUMNS",
    "MODELS",
    "TABLES",
    "Accepted",
    "Correlator",
    "EventKind",
    "ValidationConfig",
    "decode",
    "init_connection",
    "migrate_up",
    "record_of",
    "sqlfiles",
]
