"""``python -m debug_sink.bench``: the same as ``debug-sink bench``."""

from __future__ import annotations

from debug_sink.bench.command import main

raise SystemExit(main())
