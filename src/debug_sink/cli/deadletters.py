"""``debug-sink dead-letters list``: the rejected messages, newest first.

Owns the command's filters and output (text from
:func:`~debug_sink.cli.render.render_dead_letters`, or ``--json``); the rows come from
:func:`~debug_sink.sink.deadletters.list_dead_letters`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from debug_sink.cli.common import (
    Subparsers,
    add_connection_flags,
    add_output_flags,
    duration,
    moment_ago,
    output_of,
    positive_int,
    print_json,
    settings_from,
)

__all__ = ["register"]


def _list(args: argparse.Namespace) -> int:
    from debug_sink.sink.deadletters import list_dead_letters

    settings = settings_from(args)
    since = None
    if args.since:
        invalid = "not a duration: {text!r} (use e.g. 30m, 1h, 7d)"
        since = moment_ago(duration(args.since, invalid=invalid), invalid.format(text=args.since))
    rows = asyncio.run(
        list_dead_letters(
            settings.require_dsn(),
            schema=settings.db_schema,
            ssl=settings.postgres_ssl(),
            since=since,
            topic=args.topic,
            error_class=args.error_class,
            limit=args.limit,
        )
    )
    documents = [r.as_dict() for r in rows]
    if args.json:
        print_json(documents)
        return 0
    from debug_sink.cli.render import render_dead_letters

    output = output_of(args)
    sys.stdout.write(render_dead_letters(documents, width=output.width, color=output.color))
    return 0


def register(sub: Subparsers) -> None:
    """Add ``dead-letters`` with its ``list`` action."""
    parser = sub.add_parser("dead-letters", help="inspect rejected messages")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="newest dead letters first")
    add_connection_flags(listing)
    listing.add_argument("--since", help="only this recent, e.g. 30m, 1h, 7d")
    listing.add_argument("--topic", help="only from this topic")
    listing.add_argument("--error-class", help="only this class, e.g. schema, not_json")
    listing.add_argument(
        "--limit", type=positive_int, default=50, help="at most this many (default 50)"
    )
    add_output_flags(listing)
    listing.set_defaults(handler=_list)
