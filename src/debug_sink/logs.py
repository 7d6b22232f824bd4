"""Logging configuration. Only the CLI calls :func:`configure_logging`.

structlog renders JSON lines (one object per event, snake_case event names with key/value
context) or, on a terminal, a readable console format. Standard-library loggers (aiokafka,
asyncpg) are routed through the same renderer at WARNING and above.

No credential reaches a log line: every string in an event (and an exception's text) passes
through :class:`~debug_sink.wire.secrets.SecretScrubber` before it is rendered -- a DSN in a
driver's error message, a token in an error text the sink logs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal, TextIO

import structlog

from debug_sink.wire.secrets import default_scrubber


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        scrubber = default_scrubber()
        return scrubber.scrub(value) if scrubber.may_contain(value) else value
    if isinstance(value, dict):
        # Keys too: a context may be keyed by names from outside (topics, per partition).
        return {_scrub_value(k): _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def scrub_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """structlog processor: secret formats in any string of the event are redacted."""
    return {key: _scrub_value(value) for key, value in event_dict.items()}


def configure_logging(
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    *,
    stream: TextIO | None = None,
) -> None:
    """Log lines to ``stream`` (default: standard error, as it is at this call), rendered
    as ``fmt``; ``level`` is the threshold (at least WARNING for the standard library's)."""
    stream = stream if stream is not None else sys.stderr
    numeric = logging.getLevelNamesMapping()[level.upper()]
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, scrub_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                scrub_secrets,
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
