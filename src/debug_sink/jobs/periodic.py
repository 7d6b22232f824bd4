"""A periodic job of ``debug-sink run``, and the loop that runs one.

Owns :class:`Job` (a name, an interval, a coroutine function) and :func:`run_periodically`;
:mod:`debug_sink.jobs.schedule` lists the jobs the service runs.

Guarantees: a job's transient failure (:class:`~debug_sink.errors.TransientError`, or a
transient driver error) is logged, counted and retried at the next tick; the loop ends when
``stopping`` is set, without starting another run. Not guaranteed: a fixed rate (the interval
is the pause between the end of one run and the start of the next). Any other exception ends
the loop and propagates to the supervisor: a job must handle its own permanent failures
(each of ours logs them and keeps the sink ingesting).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import structlog

from debug_sink.db.pg import DATABASE_ERRORS, is_transient
from debug_sink.errors import TransientError

if TYPE_CHECKING:
    from debug_sink.metrics import Metrics

log = structlog.get_logger("debug_sink.jobs")


class Job(NamedTuple):
    """One periodic job: ``run()`` every ``interval`` seconds under ``name``."""

    name: str
    interval: float
    run: Callable[[], Awaitable[Any]]


async def run_periodically(
    job: Job,
    stopping: asyncio.Event,
    metrics: Metrics | None = None,
    *,
    first_at_once: bool = False,
) -> None:
    """Run ``job`` every ``job.interval`` seconds until ``stopping`` is set (the first run
    at once with ``first_at_once``, else after one interval)."""
    wait = not first_at_once
    while not stopping.is_set():
        if wait:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), job.interval)
        wait = True
        if stopping.is_set():
            return
        try:
            await job.run()
        except TransientError as exc:
            _retry(job, exc, metrics)
        except DATABASE_ERRORS as exc:
            if not is_transient(exc):
                raise
            _retry(job, exc, metrics)


def _retry(job: Job, exc: BaseException, metrics: Metrics | None) -> None:
    if metrics is not None:
        metrics.retries.labels(job.name).inc()
    log.warning("job_retry", job=job.name, error=str(exc))
