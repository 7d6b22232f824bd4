"""Waiting out transient failures of the database or broker: exponential backoff with full
jitter (:class:`Backoff`) and the "retry until it works or we are told to stop" loop of
start-up (:func:`retry_until_ready`)."""

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
    logged and retried with backoff (``on_retry(what)`` is told); any other error propagates,
    and so does a transient one once ``stopping`` is set."""
    backoff = Backoff(initial=0.2, maximum=10.0)
    while True:
        try:
            return await connect()
        except TransientError as exc:
            if stopping.is_set():
                raise
            delay = backoff.next_delay()
            if on_retry is not None:
                on_retry(what)
            log.warning(
                "waiting_for_service", service=what, error=str(exc), retry_in_s=round(delay, 2)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
