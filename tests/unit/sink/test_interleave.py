"""TimeOrderedInterleave: which fetched record goes into the batch next."""

from __future__ import annotations

import random
from dataclasses import dataclass

from debug_sink.sink.interleave import TimeOrderedInterleave


@dataclass(frozen=True)
class Rec:
    partition: str
    offset: int
    timestamp: int
    value: bytes = b"x" * 10
    key: bytes | None = None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def recs(partition: str, timestamps: list[int], first_offset: int = 0) -> list[Rec]:
    return [Rec(partition, first_offset + i, ts) for i, ts in enumerate(timestamps)]


def interleave(max_wait: float = 0.2) -> tuple[TimeOrderedInterleave[str], Clock]:
    clock = Clock()
    return TimeOrderedInterleave(max_wait, clock=clock), clock


class TestOrder:
    def test_records_leave_in_timestamp_order_across_partitions(self) -> None:
        """Interleaved partitions come out sorted by timestamp."""
        m, _ = interleave()
        m.add("a", recs("a", [1, 4, 6]))
        m.add("b", recs("b", [2, 3, 9]))
        m.add("c", recs("c", [5]))
        out = m.take(100, behind=[])
        assert [r.timestamp for r in out] == [1, 2, 3, 4, 5, 6, 9]
        assert len(m) == 0
        assert m.size_bytes == 0

    def test_offset_order_within_a_partition_even_if_timestamps_go_back(self) -> None:
        """A partition's records never overtake each other (offsets stay consecutive)."""
        m, _ = interleave()
        m.add("a", recs("a", [5, 1, 7]))
        m.add("b", recs("b", [2, 6]))
        out = m.take(100, behind=[])
        assert [(r.partition, r.offset) for r in out if r.partition == "a"] == [
            ("a", 0),
            ("a", 1),
            ("a", 2),
        ]
        assert [(r.partition, r.timestamp) for r in out] == [
            ("b", 2),
            ("a", 5),
            ("a", 1),
            ("b", 6),
            ("a", 7),
        ]

    def test_limit_and_later_adds(self) -> None:
        """take(limit) hands out at most limit; records added later join the order."""
        m, _ = interleave()
        m.add("a", recs("a", [1, 3, 5]))
        assert [r.timestamp for r in m.take(2, behind=[])] == [1, 3]
        m.add("b", recs("b", [4]))
        m.add("a", recs("a", [8], first_offset=3))
        assert [r.timestamp for r in m.take(10, behind=[])] == [4, 5, 8]

    def test_random_interleavings_are_sorted_and_complete(self) -> None:
        """Property: with nothing behind, the output is every record, per-partition in offset
        order, and globally sorted whenever each partition's timestamps are sorted."""
        rng = random.Random(7)
        for _ in range(50):
            m, _ = interleave()
            expected = []
            for p in "abcde":
                stamps = sorted(rng.randrange(1000) for _ in range(rng.randrange(0, 30)))
                chunk = recs(p, stamps)
                expected += chunk
                for i in range(0, len(chunk), 7):
                    m.add(p, chunk[i : i + 7])
            out = []
            while batch := m.take(rng.randrange(1, 20), behind=[]):
                out += batch
            assert sorted(out, key=lambda r: (r.partition, r.offset)) == sorted(
                expected, key=lambda r: (r.partition, r.offset)
            )
            assert [r.timestamp for r in out] == sorted(r.timestamp for r in out)


class TestWaitingForAPartitionBehind:
    def test_nothing_leaves_while_a_behind_partition_has_nothing_buffered(self) -> None:
        """An empty partition with more to fetch may hold older records: wait for it."""
        m, clock = interleave(max_wait=0.2)
        m.add("a", recs("a", [5, 6]))
        assert m.take(10, behind=["b"]) == []
        assert m.seconds_until_forced(["b"]) == 0.2
        clock.now = 0.1
        assert m.take(10, behind=["b"]) == []
        m.add("b", recs("b", [1]))
        assert [r.timestamp for r in m.take(10, behind=[])] == [1, 5, 6]

    def test_after_max_wait_records_leave_anyway(self) -> None:
        """A slow partition delays the others by max_wait, never stops them."""
        m, clock = interleave(max_wait=0.2)
        m.add("a", recs("a", [5, 6]))
        assert m.take(10, behind=["b"]) == []
        clock.now = 0.25
        assert m.seconds_until_forced(["b"]) == 0.0
        assert [r.timestamp for r in m.take(10, behind=["b"])] == [5, 6]

    def test_no_forcing_while_the_caller_says_waiting_is_free(self) -> None:
        """may_force=False (the writer is busy) keeps waiting past max_wait; the wait
        already spent counts once forcing is allowed again."""
        m, clock = interleave(max_wait=0.2)
        m.add("a", recs("a", [5]))
        assert m.take(10, behind=["b"], may_force=False) == []
        clock.now = 1.0
        assert m.take(10, behind=["b"], may_force=False) == []
        assert [r.timestamp for r in m.take(10, behind=["b"], may_force=True)] == [5]
        assert m.forced_takes == 1

    def test_stops_when_a_behind_partition_runs_dry(self) -> None:
        """When a partition that has more to fetch empties, the take stops there."""
        m, _ = interleave()
        m.add("a", recs("a", [1, 2]))
        m.add("b", recs("b", [3, 4]))
        assert [r.timestamp for r in m.take(10, behind=["a"])] == [1, 2]
        assert m.take(10, behind=["a"]) == []
        m.add("a", recs("a", [5], first_offset=2))
        assert [r.timestamp for r in m.take(10, behind=[])] == [3, 4, 5]

    def test_a_buffered_partition_in_behind_does_not_block(self) -> None:
        """Behind but with records here: its next record is not older than its head."""
        m, _ = interleave()
        m.add("a", recs("a", [1]))
        m.add("b", recs("b", [2]))
        assert [r.timestamp for r in m.take(1, behind=["b"])] == [1]


class TestAccounting:
    def test_bytes_per_partition_and_forget(self) -> None:
        """Bytes are tracked per partition; forget drops buffers and returns the count."""
        m, _ = interleave()
        m.add("a", recs("a", [1, 2, 3]))
        m.add("b", recs("b", [4]))
        assert m.buffered_bytes("a") == 30
        assert m.size_bytes == 40
        assert m.has("a")
        assert m.has("b")
        assert m.forget(["a"]) == 3
        assert m.size_bytes == 10
        assert not m.has("a")
        assert [r.timestamp for r in m.take(10, behind=[])] == [4]
        m.add("a", recs("a", [9]))
        assert m.forget() == 1
        assert len(m) == 0
        assert m.take(10, behind=[]) == []
