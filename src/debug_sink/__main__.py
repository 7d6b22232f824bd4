"""``python -m debug_sink`` is the ``debug-sink`` command."""

from __future__ import annotations

import sys

from debug_sink.cli import main

sys.exit(main())
