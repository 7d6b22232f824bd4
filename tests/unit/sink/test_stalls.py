"""Stalls are visible: ``/healthz`` turns unready and ``debug_sink_stalled`` says why when a
partition with records waiting makes no committed progress, or one batch is retried, for
``stall_timeout_seconds``; both clear once batches commit again.

The Sink runs on the in-memory stand-ins (``memory.py``); :class:`Progress`, the pure
bookkeeping behind it, is checked with a hand-driven clock.
"""

from __future__ import annotations

import asyncio
from typing import Any

from debug_sink.sink.progress import Progress
from debug_sink.sink.runner import Sink
from tests.unit.sink.memory import MemoryBackends, MemoryLog, MemoryStore, Outage
from tests.unit.sink.test_runner import TOPIC, fill, settings, until

PARTITIONS = {f"{TOPIC}[0]", f"{TOPIC}[1]"}


def _stalled(sink: Sink, reason: str) -> float | None:
    return sink.metrics.registry.get_sample_value("debug_sink_stalled", {"reason": reason})


def _stalls(sink: Sink) -> dict[str, Any]:
    return sink.health()["stalled"] or {}


class TestSinkHealth:
    """The running sink reports stalls in health() and the debug_sink_stalled gauge."""

    async def test_a_batch_that_never_commits_is_a_stall_until_it_does(self) -> None:
        """PostgreSQL refuses every write (DatabaseUnavailable): after the stall timeout
        health() is unready and names both partitions and the retried batch, and the
        gauge is 1 for both reasons; healed, the backlog commits and health() is ready with
        no stall, the gauge 0."""
        log = MemoryLog()
        fill(log, partitions=2, per_partition=10)
        outage = Outage()
        backends = MemoryBackends(log, MemoryStore(fail=outage))
        sink = Sink(settings(stall_timeout_seconds=0.3), backends=backends)
        task = asyncio.create_task(sink.run())
        await asyncio.wait_for(outage.seen.wait(), 10)

        await until(
            lambda: (
                set(_stalls(sink).get("partitions", ())) == PARTITIONS
                and _stalls(sink)["batch_retry_s"] is not None
            )
        )
        health = sink.health()
        assert health["ready"] is False
        assert health["stalled"]["batch_retry_s"] >= 0.3
        assert all(seconds >= 0.3 for seconds in health["stalled"]["partitions"].values())
        await until(lambda: _stalled(sink, "partition") == 1 and _stalled(sink, "batch_retry") == 1)

        outage.heal()
        await until(lambda: backends.store.offsets == {(TOPIC, 0): 10, (TOPIC, 1): 10})
        await until(lambda: sink.health()["ready"])
        assert sink.health()["stalled"] is None
        await until(lambda: _stalled(sink, "partition") == 0 and _stalled(sink, "batch_retry") == 0)
        sink.stop()
        await asyncio.wait_for(task, 20)

    async def test_a_write_that_hangs_is_a_partition_stall(self) -> None:
        """A write that neither commits nor fails (a lock held elsewhere, a hung server) is no
        database error and no retry: only the stall shows it -- the partitions with records
        waiting, not the retry -- and it makes health() unready while PostgreSQL counts as
        reachable."""
        log = MemoryLog()
        fill(log, partitions=2, per_partition=10)
        release = asyncio.Event()

        async def hang(attempt: int) -> None:
            await release.wait()

        backends = MemoryBackends(log, MemoryStore(fail=hang))
        sink = Sink(settings(stall_timeout_seconds=0.3), backends=backends)
        task = asyncio.create_task(sink.run())

        await until(lambda: set(_stalls(sink).get("partitions", ())) == PARTITIONS)
        health = sink.health()
        assert health["ready"] is False
        assert health["postgres"] is True
        assert health["stalled"]["batch_retry_s"] is None
        await until(lambda: _stalled(sink, "partition") == 1)
        assert _stalled(sink, "batch_retry") == 0

        release.set()
        await until(lambda: sink.health()["ready"])
        await until(lambda: _stalled(sink, "partition") == 0)
        sink.stop()
        await asyncio.wait_for(task, 20)


class Clock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestProgress:
    """What counts as a stall (pure bookkeeping, a hand-driven clock)."""

    def test_idle_partitions_never_stall(self) -> None:
        """Nothing waiting (log end == committed offset): no stall, however long."""
        clock = Clock()
        progress = Progress(clock)
        progress.assigned([("t", 0)])
        progress.positioned(("t", 0), 5)
        progress.log_end(("t", 0), 5)
        clock.now += 3600
        assert not progress.stalls(1.0)

    def test_records_waiting_without_commits_stall_after_the_timeout(self) -> None:
        """Records waiting and no commit for the timeout: stalled, with the seconds; a
        commit that moves the partition clears it, one that does not move it does not."""
        clock = Clock()
        progress = Progress(clock)
        progress.assigned([("t", 0), ("t", 1)])
        progress.positioned(("t", 0), 0)
        progress.positioned(("t", 1), 0)
        progress.log_end(("t", 0), 10)
        progress.log_end(("t", 1), 0)
        clock.now += 1.9
        assert not progress.stalls(2.0)
        clock.now += 0.1
        assert progress.stalls(2.0).as_dict() == {
            "partitions": {"t[0]": 2.0},
            "batch_retry_s": None,
        }
        progress.committed({("t", 0): 0})
        assert progress.stalls(2.0).partitions == {"t[0]": 2.0}
        progress.committed({("t", 0): 4})
        assert not progress.stalls(2.0)
        assert progress.lag() == {("t", 0): 6, ("t", 1): 0}

    def test_commits_below_the_positioned_offset_are_progress(self) -> None:
        """Positioned where a broker said the log starts, but read from offset 0 (it said
        too much): commits below that offset move the partition; the same one again does
        not."""
        clock = Clock()
        progress = Progress(clock)
        progress.assigned([("t", 0)])
        progress.positioned(("t", 0), 20)
        progress.log_end(("t", 0), 40)
        for offset in (5, 10):
            clock.now += 1.5
            progress.committed({("t", 0): offset})
            clock.now += 1.5
            assert not progress.stalls(2.0)
        clock.now += 1.5
        progress.committed({("t", 0): 10})
        assert progress.stalls(2.0).partitions == {"t[0]": 3.0}
        assert progress.lag() == {("t", 0): 20}

    def test_a_topic_named_with_a_secret_is_shown_without_it(self) -> None:
        """/healthz shows stalled partitions by topic; producers may create topics, so a
        token in a topic's name is replaced there as in the metric labels."""
        clock = Clock()
        progress = Progress(clock)
        topic = "debug.ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
        progress.assigned([(topic, 0)])
        progress.positioned((topic, 0), 0)
        progress.log_end((topic, 0), 500)
        clock.now += 5
        shown = progress.stalls(2.0).as_dict()
        assert shown["partitions"] == {"debug.[REDACTED][0]": 5.0}
        assert "ghp_" not in str(shown)

    def test_a_batch_retried_past_the_timeout_stalls_until_a_commit(self) -> None:
        """Retried since the first failure for the timeout: stalled; a commit clears it."""
        clock = Clock()
        progress = Progress(clock)
        progress.retrying(True)
        clock.now += 1.0
        progress.retrying(True)  # a second failure keeps the first one's start
        clock.now += 1.5
        assert progress.stalls(2.0).as_dict() == {"partitions": {}, "batch_retry_s": 2.5}
        progress.committed({})
        assert not progress.stalls(2.0)
