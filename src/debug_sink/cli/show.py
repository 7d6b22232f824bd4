"""The human views: ``debug-sink workflows``, ``show``, ``patterns`` and ``errors``.

Owns reading workflows (or recent errors, or recovery patterns) through
:class:`~debug_sink.read.queries.DebugQueries` and writing them out: as text for a terminal
(:mod:`debug_sink.cli.render`, as wide as the terminal or ``--width``, colour unless
``--no-color``, ``NO_COLOR`` or a pipe) or as JSON with ``--json``.

- ``workflows``: recent workflows, latest activity first, with status, agents, error and
  success counts, duration; filters ``--agent``, ``--since``, ``--status``, ``--error-type``;
  ``--before`` pages back. A page of ``DebugQueries.workflow_page``: it costs about its own
  workflows at any table size; with a filter few workflows pass it stops after a few
  thousand events and says how far back it looked (``scanned_to`` in ``--json``).
- ``show CORRELATION_ID``: a summary line, then the timeline (causal order, see
  :mod:`debug_sink.read.timeline`): steps with status and duration, snapshots, hand-overs, LLM
  calls, errors with severity and what recovered them, successes; under each error, the diff
  of its state against the last good snapshot before it. The id may be a unique prefix
  (``show 5f0c2a8e``). Exit 1 for an unknown, ambiguous or malformed id. Bounded whatever
  the workflow's size: its first ``--limit`` events by time (2,000 by default; the output
  says when there are more), error diffs from at most 16 MiB of states, messages cut at
  2,000 characters.
- ``patterns``: ``debug_error_recovery_patterns`` as a table.
- ``errors --since 1h``: recent errors grouped by type, each with its latest workflow.
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
    add_output_flags,
    output_of,
    positive_int,
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

#: ``workflows`` without ``--since``: the last day.
DEFAULT_WORKFLOWS_SINCE: Final = "24h"

EXIT_NOT_FOUND: Final = 1
#: ``show`` without ``--limit``: the first this many events of a workflow (a fleet's
#: workflow may have hundreds of thousands).
DEFAULT_SHOW_LIMIT: Final = 2000
#: Bytes of agent states (canonical JSON, up to 1 MB each) read for the error diffs of one
#: ``show``; errors beyond say their diff was not computed.
SHOW_STATE_BYTES: Final = 16 * 1024 * 1024


async def load_workflow(
    queries: DebugQueries, correlation_id: UUID, *, limit: int = DEFAULT_SHOW_LIMIT
) -> WorkflowView | None:
    """The workflow's summary, its first ``limit`` events by time in timeline order, and
    their errors' diffs (at most :data:`SHOW_STATE_BYTES` of states read); ``None`` when
    unknown."""
    from debug_sink.cli.render import WorkflowView

    if not await queries.workflow_exists(correlation_id):
        return None
    summary = await queries.get_workflow_debug_summary(correlation_id)
    timeline, more = await queries.timeline_head(correlation_id, limit)
    diffs = await queries.error_diffs(timeline, max_state_bytes=SHOW_STATE_BYTES)
    return WorkflowView(correlation_id, summary, timeline, diffs, more)


def workflow_document(view: WorkflowView) -> dict[str, Any]:
    """The ``--json`` document of ``show``: summary, timeline (each error with its
    ``state_diff``), ``timeline_complete`` (false: the workflow has events after the last
    one shown)."""
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
        "timeline_complete": not view.more,
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


async def _resolve(queries: DebugQueries, text: str) -> UUID | str:
    """The workflow ``text`` names: a full UUID as is, else the one stored workflow whose id
    starts with it; otherwise the message that says why not."""
    try:
        return UUID(text)
    except ValueError:
        pass
    try:
        found = await queries.workflow_ids_with_prefix(text)
    except ValueError:
        return f"{text!r} is not a correlation id (a UUID) or a prefix of one"
    if not found:
        return f"no workflow id starts with {text!r}"
    if len(found) > 1:
        shown = ", ".join(str(i) for i in found[:4]) + (", ..." if len(found) > 4 else "")
        return f"{text!r} is ambiguous: it starts {shown}; give more digits"
    return found[0]


def _show(args: argparse.Namespace) -> int:
    from debug_sink.cli.render import render_show

    settings = settings_from(args)

    async def load(queries: DebugQueries) -> WorkflowView | str:
        resolved = await _resolve(queries, args.correlation_id)
        if isinstance(resolved, str):
            return resolved
        view = await load_workflow(queries, resolved, limit=args.limit)
        if view is None:
            return f"no debug events for workflow {resolved} in schema {settings.db_schema!r}"
        return view

    view = read(settings, load)
    if isinstance(view, str):
        print(f"debug-sink: {view}", file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.json:
        print_json(workflow_document(view))
    else:
        output = output_of(args)
        sys.stdout.write(render_show(view, width=output.width, color=output.color))
    return 0


def _cursor(text: str) -> tuple[datetime, UUID]:
    """``workflows --before``: the cursor printed under the previous page."""
    from debug_sink.read.workflows import parse_cursor

    try:
        return parse_cursor(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a cursor (TIME/CORRELATION_ID, as printed under a page)"
        ) from None


def _workflows(args: argparse.Namespace) -> int:
    from debug_sink.cli.render import render_workflows
    from debug_sink.read.workflows import cursor

    since: datetime = args.since
    limit: int = args.limit
    # The web view's pages: read from the activity stream, so a page costs about its own
    # workflows at any table size (the whole window was read and every workflow in it
    # summarised: 14 s for a filter nothing passes among 300,000 workflows).
    page = read(
        settings_from(args),
        lambda queries: queries.workflow_page(
            since=since,
            before=args.before,
            agent_name=args.agent,
            status=args.status,
            error_type=args.error_type,
            limit=limit,
        ),
    )
    rows = [dict(row) for row in page.rows]
    for row in rows:
        row["cursor"] = cursor(row["last_event_at"], row["correlation_id"])
    older = cursor(*page.next_before) if page.next_before is not None else None
    if args.json:
        print_json(
            {
                "since": since,
                "workflows": rows,
                "next_before": older,
                "scanned_to": page.scanned_to,
            }
        )
    else:
        output = output_of(args)
        sys.stdout.write(
            render_workflows(
                rows,
                since,
                width=output.width,
                color=output.color,
                older=older,
                scanned_to=page.scanned_to,
            )
        )
    return 0


def _patterns(args: argparse.Namespace) -> int:
    from debug_sink.cli.render import render_patterns

    rows = read(
        settings_from(args), lambda queries: queries.get_recovery_patterns(args.min_success_count)
    )
    if args.json:
        print_json(rows)
    else:
        output = output_of(args)
        sys.stdout.write(
            render_patterns(rows, args.min_success_count, width=output.width, color=output.color)
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
        output = output_of(args)
        sys.stdout.write(render_errors(rows, since, width=output.width, color=output.color))
    return 0


def _view_flags(parser: argparse.ArgumentParser) -> None:
    add_connection_flags(parser)
    add_output_flags(parser)


def register(sub: Subparsers) -> None:
    """Add ``workflows``, ``show``, ``patterns`` and ``errors``."""
    from debug_sink.read.workflows import WORKFLOW_STATUSES

    workflows = sub.add_parser(
        "workflows",
        help="recent workflows: status, agents, errors, successes, duration",
        description="Workflows with events since --since, latest activity first. Status: "
        "running (a step is open and the workflow was active in the last 15 minutes), "
        "failed (its last step failed, or it went silent with a step open), unrecovered "
        "(an error nothing recovered yet -- recoveries appear once the correlator has run), "
        "recovered (every error recovered), ok (no errors).",
    )
    workflows.add_argument(
        "--since",
        type=since_argument,
        default=DEFAULT_WORKFLOWS_SINCE,
        metavar="WHEN",
        help="active since: a duration ago (30m, 1h, 2d, 1w) or an ISO 8601 time "
        f"(default: {DEFAULT_WORKFLOWS_SINCE})",
    )
    workflows.add_argument("--agent", help="only workflows this agent took part in")
    workflows.add_argument("--status", choices=WORKFLOW_STATUSES, help="only this status")
    workflows.add_argument("--error-type", help="only workflows with an error of this type")
    workflows.add_argument(
        "--before",
        type=_cursor,
        metavar="CURSOR",
        help="the next page: the cursor printed under the previous one",
    )
    workflows.add_argument(
        "--limit", type=positive_int, default=25, help="at most this many (default 25)"
    )
    _view_flags(workflows)
    workflows.set_defaults(handler=_workflows)

    show = sub.add_parser(
        "show",
        help="a workflow's debug timeline: steps, errors, recoveries, state diffs",
        description="Show one workflow: its steps with status and duration, errors with "
        "severity and the recovery that fixed them, LLM calls, and at each error the state "
        "diff against the last good snapshot.",
    )
    show.add_argument(
        "correlation_id",
        metavar="CORRELATION_ID",
        help="the workflow's UUID, or a prefix of it that only one stored workflow has",
    )
    show.add_argument(
        "--limit",
        type=positive_int,
        default=DEFAULT_SHOW_LIMIT,
        help=f"the first this many events by time (default {DEFAULT_SHOW_LIMIT}); the output "
        "says when the workflow has more",
    )
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
    errors.add_argument(
        "--limit", type=positive_int, default=50, help="at most this many error types"
    )
    _view_flags(errors)
    errors.set_defaults(handler=_errors)
