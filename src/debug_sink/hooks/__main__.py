"""``python -m debug_sink.hooks`` is ``debug-sink-hook``."""

from __future__ import annotations

import sys

from debug_sink.hooks.command import main

sys.exit(main())
