"""``debug-sink ui``: the read-only web view (:mod:`debug_sink.ui`) over the database.

Owns the command's flags (each overrides one ``DEBUG_SINK_UI_*`` setting) and its run: start
:class:`~debug_sink.ui.server.WebView`, print where it answers, serve until SIGTERM or
Ctrl-C. Credentials come from the environment only (``DEBUG_SINK_UI_TOKEN``,
``DEBUG_SINK_UI_PASSWORD``): a flag would show them in ``ps``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from debug_sink.cli.common import Subparsers, add_connection_flags, configure, settings_from
from debug_sink.settings import ENV_PREFIX

__all__ = ["register"]


def _ui(args: argparse.Namespace) -> int:
    from debug_sink.signals import run_until_signal
    from debug_sink.ui.server import WebView

    overrides = {
        "ui_host": args.host,
        "ui_port": args.port,
        "ui_root_path": args.root_path,
        "ui_metrics_urls": tuple(args.metrics_url) if args.metrics_url else None,
    }
    settings = settings_from(args, **overrides)
    configure(settings)
    view = WebView(settings)

    async def main() -> None:
        stop = asyncio.Event()
        async with view:
            auth = "credentials required" if view.access.required else "localhost only"
            where = f", its links under {settings.ui_root_path}/" if settings.ui_root_path else ""
            print(f"debug-sink ui: {view.url} ({auth}{where}; Ctrl-C stops it)", flush=True)
            await run_until_signal(stop.wait, stop.set)

    asyncio.run(main())
    print("debug-sink ui stopped", file=sys.stderr)
    return 0


def register(sub: Subparsers) -> None:
    """Add ``ui``."""
    parser = sub.add_parser(
        "ui",
        help="serve the read-only web view: workflows, waterfalls, state diffs, known fixes",
        description="Serve a read-only web view of the database: the workflows (filter, "
        "page), each workflow's waterfall of steps with its errors, recoveries and state "
        "diffs, the known fixes per error type, the dead letters and the sinks' live "
        "figures. Listens on 127.0.0.1 by default; any other address needs "
        f"{ENV_PREFIX}UI_TOKEN or {ENV_PREFIX}UI_PASSWORD. Connect as the reader role "
        "(`debug-sink migrate grant --reader ROLE`).",
    )
    add_connection_flags(parser)
    parser.add_argument(
        "--host", help=f"address to listen on (default: ${ENV_PREFIX}UI_HOST or 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        help=f"port to listen on (default: ${ENV_PREFIX}UI_PORT or 9470; 0 = any free port)",
    )
    parser.add_argument(
        "--root-path",
        metavar="PATH",
        help="the path prefix a reverse proxy publishes the view under, e.g. /debug-sink "
        "(the proxy strips it before forwarding; every link, asset, form and redirect starts "
        f"with it; default: ${ENV_PREFIX}UI_ROOT_PATH or none)",
    )
    parser.add_argument(
        "--metrics-url",
        action="append",
        metavar="URL",
        help="a sink's /metrics for the Live page (repeat for several; default: "
        f"${ENV_PREFIX}UI_METRICS_URLS or http://127.0.0.1:9464/metrics)",
    )
    parser.set_defaults(handler=_ui)
