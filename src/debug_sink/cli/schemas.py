"""``debug-sink schemas``: the JSON Schema of every topic, printed or written to files.

The schemas are generated from the event models (:mod:`debug_sink.wire.examples`); a test
fails when the committed ``schemas/`` drift from them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from debug_sink.cli.common import Subparsers, print_json

__all__ = ["register"]


def _schemas(args: argparse.Namespace) -> int:
    from debug_sink.wire import examples

    directory = Path(args.dir)
    if args.write:
        examples.write_schemas(directory)
        print(f"wrote {len(examples.json_schemas())} JSON Schemas to {directory}")
        return 0
    print_json(examples.json_schemas(), sort_keys=True)
    return 0


def register(sub: Subparsers) -> None:
    """Add ``schemas``."""
    parser = sub.add_parser("schemas", help="print or write the JSON Schema of every topic")
    parser.add_argument("--write", action="store_true", help="write them to --dir")
    parser.add_argument("--dir", default="schemas", help="target directory (default: schemas)")
    parser.set_defaults(handler=_schemas)
