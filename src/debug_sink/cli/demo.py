"""``debug-sink demo``: synthetic agents emitting realistic workflows through the SDK into
Kafka, until SIGTERM or Ctrl-C.

The ``demo`` profile of docker-compose.yml runs it next to the sink; ``debug-sink dev
--demo`` runs the same fleet (:class:`~debug_sink.dev.demo.DemoFleet`) inside its session.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from debug_sink.cli.common import (
    Subparsers,
    add_bootstrap_flag,
    configure,
    positive_int,
    settings_from,
)

__all__ = ["register"]


def _demo(args: argparse.Namespace) -> int:
    from debug_sink.dev.demo import DemoFleet
    from debug_sink.signals import run_until_signal

    settings = settings_from(args)
    configure(settings)
    fleet = DemoFleet(settings, workflows=args.workflows, concurrency=args.concurrency)
    asyncio.run(run_until_signal(fleet.run, fleet.stop))
    print(f"debug-sink demo: {fleet.workflows_done} workflows emitted", file=sys.stderr)
    return 0


def register(sub: Subparsers) -> None:
    """Add ``demo``."""
    parser = sub.add_parser(
        "demo",
        help="emit synthetic agent workflows through the SDK into Kafka (a demo producer)",
        description="Emit realistic synthetic agent workflows through the SDK into Kafka, "
        "until SIGTERM or Ctrl-C.",
    )
    parser.add_argument(
        "--workflows", type=positive_int, metavar="N", help="stop after N workflows"
    )
    parser.add_argument(
        "--concurrency", type=positive_int, default=4, help="agents working at once"
    )
    add_bootstrap_flag(parser)
    parser.set_defaults(handler=_demo)
