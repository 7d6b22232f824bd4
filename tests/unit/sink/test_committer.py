"""What the committer's releases of parked events tell the metrics: every row and dead letter
of every release counted, the last release's too (a stub writer: the counting only)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from debug_sink.metrics import Metrics
from debug_sink.sink import committer as committer_module
from debug_sink.sink.batch import Origin
from debug_sink.sink.committer import Committer
from debug_sink.sink.deadletters import DeadLetter
from debug_sink.sink.handoff import Handoff
from debug_sink.sink.writer import WriteResult


def _letter(offset: int) -> DeadLetter:
    return DeadLetter(
        Origin("t.debug.error_events", 0, offset), None, b"{}", (), None, "database", "no"
    )


class _Releases:
    """release_parked() answers the given results in turn, then empty ones."""

    def __init__(self, *results: WriteResult) -> None:
        self._results: Iterator[WriteResult] = iter(results)

    async def write(self, batch: object) -> WriteResult:
        raise AssertionError("no batch here")

    async def release_parked(self) -> WriteResult:
        return next(self._results, WriteResult())

    async def parked_count(self) -> int:
        return 0

    async def reset_connections(self) -> None:
        return None


def _committer(writer: _Releases) -> Committer:
    return Committer(
        writer,
        handoff=Handoff(),
        metrics=Metrics(),
        current_generation=lambda: 0,
        after_batch=lambda: None,
        stopping=asyncio.Event(),
        fetch_done=asyncio.Event(),
    )


def _value(committer: Committer, name: str, **labels: str) -> float:
    return committer.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_release_all_counts_the_rows_and_dead_letters_of_every_release() -> None:
    """Three releases before the idle exit: 40 rows and a dead letter, 10 rows, then only a
    dead letter (a parked event PostgreSQL refused, nothing released). All counted -- the last
    release's dead letter too, though it released nothing."""
    committer = _committer(
        _Releases(
            WriteResult(rows={"error": 40}, released=40, dead_letters=[_letter(1)]),
            WriteResult(rows={"error": 10}, released=10),
            WriteResult(dead_letters=[_letter(2)]),
        )
    )
    assert await committer.release_all_parked() is True
    assert _value(committer, "debug_sink_rows_written_total", kind="error") == 50
    assert _value(committer, "debug_sink_events_released_total") == 50
    topic = "t.debug.error_events"
    dead = _value(committer, "debug_sink_dead_letters_total", topic=topic, error_class="database")
    assert dead == 2


async def test_periodic_release_counts_its_rows() -> None:
    committer = _committer(_Releases(WriteResult(rows={"step": 3}, released=3, dangling=3)))
    await committer.release_parked()
    assert _value(committer, "debug_sink_rows_written_total", kind="step") == 3
    assert _value(committer, "debug_sink_references_expired_total") == 3


async def test_periodic_release_runs_until_a_release_is_not_full() -> None:
    """Full releases (``more``) are followed by another at once, in the same periodic run, up
    to a bound; a release that is not full ends it."""
    full = [WriteResult(rows={"error": 5}, released=5, more=True) for _ in range(3)]
    committer = _committer(_Releases(*full, WriteResult(rows={"error": 1}, released=1)))
    await committer.release_parked()
    assert _value(committer, "debug_sink_rows_written_total", kind="error") == 16

    endless = [WriteResult(released=1, more=True) for _ in range(10_000)]
    bounded = _committer(_Releases(*endless))
    await bounded.release_parked()
    assert _value(bounded, "debug_sink_events_released_total") == committer_module._RELEASE_RUNS
