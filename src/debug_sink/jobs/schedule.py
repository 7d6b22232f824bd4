"""Which periodic jobs ``debug-sink run`` schedules, from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from debug_sink.jobs.correlator import correlator_job
from debug_sink.jobs.periodic import Job
from debug_sink.jobs.retention import retention_job
from debug_sink.settings import Settings

if TYPE_CHECKING:
    from debug_sink.metrics import Metrics


def periodic_jobs(settings: Settings, *, metrics: Metrics | None = None) -> list[Job]:
    """The single-runner jobs of ``run``: the correlator every ``correlator_interval`` seconds
    (0 disables) and the retention purge hourly (``retention_days`` 0 disables)."""
    jobs = [correlator_job(settings, metrics=metrics), retention_job(settings)]
    return [job for job in jobs if job is not None]
