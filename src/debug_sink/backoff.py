"""Waiting out transient failures of the database or broker: exponential backoff with full
jitter (:class:`Backoff`) and the "retry until it works or we are told to stop" loop of
start-up (:func:`retry_until_ready`).

Guarantees: a stop asked while waiting -- between attempts or during one that hangs (a
server that accepts and never answers) -- ends the wait at once with :class:`StopRequested`,
not after the driver's connect timeout."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from debug_sink.errors import TransientError

log = structlog.get_logger("debug_sink")

T = TypeVar("T")


class StopRequested(Exception):
    """A stop was asked while :func:`retry_until_ready` waited for ``what``: nothing was
    started, so nothing is left to finish."""

    def __init__(self, what: str) -> None:
        super().__init__(f"stopped while waiting for {what}")
        self.what = what


class Backoff:
    """Delays ``initial * 2**n`` capped at ``maximum``, each drawn uniformly from [d/2, d].

    :meth:`reset` after a success, so the next failure starts small again.
    """

    def __init__(
        self, initial: float = 0.1, maximum: float = 10.0, rng: random.Random | None = None
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * (2**self.attempts))
        self.attempts += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0


async def retry_until_ready(
    what: str,
    connect: Callable[[], Awaitable[T]],
    stopping: asyncio.Event,
    on_retry: Callable[[str], None] | None = None,
) -> T:
    """Call ``connect`` until it succeeds. A :class:`~debug_sink.errors.TransientError` is
    logged and retried with backoff (``on_retry(what)`` is told); any other error propagates.
    Once ``stopping`` is set -- between attempts or during one, which is then cancelled --
    :class:`StopRequested` is raised."""
    backoff = Backoff(initial=0.2, maximum=10.0)
    while True:
        if stopping.is_set():
            raise StopRequested(what)
        attempt = asyncio.ensure_future(connect())
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({attempt, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not attempt.done():
                attempt.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await attempt
        if attempt.cancelled():
            raise StopRequested(what)
        try:
            return attempt.result()
        except TransientError as exc:
            if stopping.is_set():
                raise StopRequested(what) from exc
            delay = backoff.next_delay()
            if on_retry is not None:
                on_retry(what)
            log.warning(
                "waiting_for_service", service=what, error=str(exc), retry_in_s=round(delay, 2)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
