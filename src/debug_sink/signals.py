"""SIGTERM and SIGINT for the long-running commands: the first asks for a clean stop, the
second exits at once.

Owns :func:`run_until_signal`. Installed only around one coroutine and removed after it, so
library users who run a :class:`~debug_sink.sink.runner.Sink` themselves keep their own
handlers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

#: The exit code of a process ended by a second signal (128 + SIGINT).
EXIT_INTERRUPTED: Final = 130

T = TypeVar("T")


async def run_until_signal(main: Callable[[], Awaitable[T]], stop: Callable[[], None]) -> T:
    """Run ``main()``; SIGTERM and SIGINT call ``stop`` (a second signal exits hard)."""
    loop = asyncio.get_running_loop()
    hits = 0

    def on_signal() -> None:
        nonlocal hits
        hits += 1
        if hits > 1:
            print("debug-sink: second signal, exiting now", file=sys.stderr)
            os._exit(EXIT_INTERRUPTED)
        stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        return await main()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
