"""The one error tree of debug-sink.

Driver errors (asyncpg, aiokafka) are translated into these at exactly one boundary each,
with ``raise ... from exc``; everything above that boundary reasons about these classes only::

    DebugSinkError
    ├── TransientError            retry with backoff; nothing is skipped or committed
    │   ├── DatabaseUnavailable   connection refused/lost, server starting or shutting down
    │   └── BrokerUnavailable     broker unreachable or restarting
    └── PermanentError            retrying cannot help; report clearly and stop
        ├── ConfigurationError    bad settings, bad credentials, missing privilege
        ├── MigrationError        unknown target, changed applied migration, blocked rollback
        ├── DatabaseError         PostgreSQL refused a statement for a reason retrying cannot fix
        ├── EmbeddedServiceError  an embedded service cannot start (port taken, wrong version)
        └── InvalidEvent          one event is rejected; it goes to the dead letters
"""

from __future__ import annotations

from typing import ClassVar


class DebugSinkError(Exception):
    """Root of every error debug-sink raises on purpose."""

    #: The exit code of a command this error ends: 1, or 3 for a transient error (worth
    #: running again later).
    exit_code: ClassVar[int] = 1


class TransientError(DebugSinkError):
    """A condition expected to clear by itself: back off, retry, never skip."""

    exit_code: ClassVar[int] = 3


class DatabaseUnavailable(TransientError):
    """PostgreSQL cannot be reached or is not accepting work right now."""


class BrokerUnavailable(TransientError):
    """The Kafka broker cannot be reached or is not serving right now."""


class PermanentError(DebugSinkError):
    """Retrying cannot help; the operator must act."""


class ConfigurationError(PermanentError):
    """Settings, credentials or privileges are wrong."""


class MigrationError(PermanentError):
    """A migration cannot be applied or rolled back as asked."""


class DatabaseError(PermanentError):
    """PostgreSQL refused a statement for a reason a retry cannot fix (a missing object, a
    bug): the message names the server (never the credentials) and the SQLSTATE's text."""


class EmbeddedServiceError(PermanentError):
    """An embedded service (PostgreSQL or the broker) cannot be started."""


class InvalidEvent(PermanentError):
    """One event cannot be stored; ``reason`` says precisely why.

    ``error_class`` is a short stable identifier (``not_json``, ``schema``, ``nul_character``...)
    that lands in the dead-letter headers and table.
    """

    def __init__(self, error_class: str, reason: str) -> None:
        super().__init__(reason)
        self.error_class = error_class
        self.reason = reason
