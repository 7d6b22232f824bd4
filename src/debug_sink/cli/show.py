"""The human views: ``debug-sink show``, ``debug-sink patterns`` and ``debug-sink errors``.

Owns reading a workflow (or recent errors, or recovery patterns) through
:class:`~debug_sink.read.queries.DebugQueries` and writing it out: as text for a terminal
(:mod:`debug_sink.cli.render`) or as JSON with ``--json``.

- ``show CORRELATION_ID``: a summary line, then the timeline (causal order, see
  :mod:`debug_sink.read.timeline`): steps with status and duration, snapshots, hand-overs, LLM
  calls, errors with severity and what recovered them, successes; under each error, the diff
  of its state against the last good snapshot before it. Exit 1 for an unknown or malformed
  id.
- ``patterns``: ``debug_error_recovery_patterns`` as a table.
- ``errors --since 1h``: recent errors grouped by type.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from debug_sink.cli.common import (
    Subparsers,
    add_connection_flags,
    add_json_flag,
    print_json,
    read,
    settings_from,
)
from debug_sink.durations import ago, parse_time
from debug_sink.errors import ConfigurationError

if TYPE_CHECKING:
    from debug_sink.cli.render import WorkflowView
    from debug_sink.read.queries import DebugQueries
    from debug_sink.read.timeline import TimelineEntry

__all__ = ["load_workflow", "register", "since_argument", "workflow_document"]

EXIT_NOT_FOUND: Final = 1


async def load_workflow(queries: DebugQueries, correlation_id: UUID) -> WorkflowView | None:
    """The workflow's summary, ordered timeline and error diffs; ``None`` when unknown."""
    from debug_sink.cli.render import WorkflowView

    if not await queries.workflow_exists(correlation_id):
        return None
    summary = await queries.get_workflow_debug_summary(correlation_id)
    timeline = await queries.timeline(correlation_id)
    diffs = await queries.error_diffs(timeline)
    return WorkflowView(correlation_id, summary, timeline, diffs)


def workflow_document(view: WorkflowView) -> dict[str, Any]:
    """The ``--json`` document of ``show``: summary, timeline (each error with its
    ``state_diff``)."""
    timeline = []
    for entry in view.timeline:
        item = _entry(entry)
        if entry.kind == "error":
            diff = view.diffs.get(entry.id)
            item["state_diff"] = diff.as_dict() if diff is not None else None
        timeline.append(item)
    return {
        "correlation_id": view.correlation_id,
        "summary": dict(view.summary),
        "timeline": timeline,
    }


def _entry(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "id": entry.id,
        "at": entry.at,
        "agent_name": entry.agent_name,
        "step_number": entry.step_number,
        "attempt": entry.attempt,
        "follows": list(entry.follows),
        "data": dict(entry.data),
    }


def since_argument(text: str) -> datetime:
    """``errors --since``, an argparse ``type``: a duration ago (``30m``, ``1h``, ``2d``,
    ``1w``: :func:`~debug_sink.durations.ago`) or an ISO 8601 time
    (:func:`~debug_sink.durations.parse_time`); otherwise a usage error."""
    with contextlib.suppress(ConfigurationError):
        return ago(text)
    with contextlib.suppress(ConfigurationError):
        return parse_time(text)
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither a duration (30m, 1h, 2d, 1w) nor an ISO 8601 time"
    )


# -- commands -----------------------------------------------------------------------------


def _color(args: argparse.Namespace) -> bool:
    return not args.no_color and sys.stdout.isatty()


def _show(args: argparse.Namespace) -> int:
    from debug_sink.cli.render import render_show

    try:
        correlation_id = UUID(args.correlation_id)
    except ValueError:
        print(
            f"debug-sink: {args.correlation_id!r} is not a correlation id (a UUID)", file=sys.stderr
        )
        return EXIT_NOT_FOUND
    settings = settings_from(args)
    view = read(settings, lambda queries: load_workflow(queries, correlation_id))
    if view is None:
        print(
            f"debug-sink: no debug events for workflow {correlation_id} in schema "
            f"{settings.db_schema!r}",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    if args.json:
        print_json(workflow_document(view))
    else:
        sys.stdout.write(render_show(view, width=args.width, color=_color(args)))
    return 0


def _patterns(args: argparse.Namespace) -> int:
    from debug_sink.cli.render import render_patterns

    rows = read(
        settings_from(args), lambda queries: queries.get_recovery_patterns(args.min_success_count)
    )
    if args.json:
        print_json(rows)
    else:
        sys.stdout.write(
            render_patterns(rows, args.min_success_count, width=args.width, color=_color(args))
        )
    return 0


def _errors(args: argparse.Namespace) -> int:
    from debug_sink.cli.render import render_errors

    since: datetime = args.since
    rows = read(
        settings_from(args), lambda queries: queries.get_error_groups(since, limit=args.limit)
    )
    if args.json:
        print_json({"since": since, "groups": rows})
    else:
        sys.stdout.write(render_errors(rows, since, width=args.width, color=_color(args)))
    return 0


def _view_flags(parser: argparse.ArgumentParser) -> None:
    add_connection_flags(parser)
    add_json_flag(parser)
    parser.add_argument("--width", type=int, help="output width (default: the terminal's)")
    parser.add_argument("--no-color", action="store_true", help="never use colour")


def register(sub: Subparsers) -> None:
    """Add ``show``, ``patterns`` and ``errors``."""
    show = sub.add_parser(
        "show",
        help="a workflow's debug timeline: steps, errors, recoveries, state diffs",
        description="Show one workflow: its steps with status and duration, errors with "
        "severity and the recovery that fixed them, LLM calls, and at each error the state "
        "diff against the last good snapshot.",
    )
    show.add_argument("correlation_id", metavar="CORRELATION_ID", help="the workflow's UUID")
    _view_flags(show)
    show.set_defaults(handler=_show)

    patterns = sub.add_parser(
        "patterns",
        help="recovery strategies that worked, per error type",
        description="Rows of debug_error_recovery_patterns, most successful first.",
    )
    patterns.add_argument(
        "--min-success-count",
        type=int,
        default=3,
        metavar="N",
        help="only patterns with at least N successes (default: 3)",
    )
    _view_flags(patterns)
    patterns.set_defaults(handler=_patterns)

    errors = sub.add_parser(
        "errors",
        help="recent errors grouped by type",
        description="Errors that occurred since a time, grouped by error type.",
    )
    errors.add_argument(
        "--since",
        type=since_argument,
        default="1h",
        metavar="WHEN",
        help="a duration ago (30m, 1h, 2d, 1w) or an ISO 8601 time (default: 1h)",
    )
    errors.add_argument("--limit", type=int, default=50, help="at most this many error types")
    _view_flags(errors)
    errors.set_defaults(handler=_errors)
