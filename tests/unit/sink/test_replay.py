"""Replay planning is pure: start-option parsing and the per-partition plan."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import OffsetOutOfRangeError

from debug_sink.cli.replay import time_argument as parse_since
from debug_sink.errors import ConfigurationError
from debug_sink.sink.replay import (
    PartitionPlan,
    StartSpec,
    default_group_id,
    log_ends,
    log_starts,
    offsets_at_time,
    parse_offsets,
    resolve_starts,
)

PARTS = [("debug.error_events", 0), ("debug.error_events", 1), ("debug.hook_events", 0)]
BEGIN = {PARTS[0]: 0, PARTS[1]: 5, PARTS[2]: 0}
END = {PARTS[0]: 100, PARTS[1]: 50, PARTS[2]: 0}


class TestParseOffsets:
    """``topic:partition:offset,...`` with dotted topic names; mistakes are one clear error."""

    def test_parses_a_list(self) -> None:
        assert parse_offsets("debug.error_events:0:10, debug.hook_events:2:0") == {
            ("debug.error_events", 0): 10,
            ("debug.hook_events", 2): 0,
        }

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("debug.error_events:0", "is not topic:partition:offset"),
            (":0:1", "is not topic:partition:offset"),
            ("t:x:1", "must be integers"),
            ("t:0:-1", "negative"),
            ("t:0:1,t:0:2", "given twice"),
            (" , ", "no topic:partition:offset"),
        ],
    )
    def test_rejects(self, text: str, message: str) -> None:
        with pytest.raises(ConfigurationError, match=message):
            parse_offsets(text)


class TestParseSince:
    """ISO 8601 with Z or an offset; a naive time is UTC; anything else is a usage error."""

    def test_zulu_offset_and_naive(self) -> None:
        expected = datetime(2026, 1, 1, tzinfo=UTC)
        assert parse_since("2026-01-01T00:00:00Z") == expected
        assert parse_since("2026-01-01T01:00:00+01:00") == expected
        assert parse_since("2026-01-01T00:00:00") == expected
        assert parse_since("2026-01-01T01:00:00+01:00").tzinfo == timezone(timedelta(hours=1))

    def test_rejects_garbage(self) -> None:
        with pytest.raises(argparse.ArgumentTypeError, match="ISO 8601"):
            parse_since("yesterday")


class TestResolveStarts:
    """Each partition's start, clamped to [log start, end]."""

    def test_from_beginning(self) -> None:
        plan = resolve_starts(StartSpec("beginning"), PARTS, BEGIN, END)
        assert [(p.start, p.end, p.count) for p in plan] == [(0, 100, 100), (5, 50, 45), (0, 0, 0)]

    def test_from_offsets_skips_unlisted_and_clamps(self) -> None:
        spec = StartSpec("offsets", offsets={PARTS[0]: 90, PARTS[1]: 1})
        plan = resolve_starts(spec, PARTS, BEGIN, END)
        assert [(p.start, p.count) for p in plan] == [(90, 10), (5, 45), (0, 0)]
        assert [p.asked for p in plan] == [None, 1, None]  # the clamp is said in the plan
        past = resolve_starts(StartSpec("offsets", offsets={PARTS[0]: 1_000}), PARTS, BEGIN, END)
        assert (past[0].start, past[0].count, past[0].asked) == (100, 0, 1_000)

    def test_from_offsets_of_unknown_partition(self) -> None:
        spec = StartSpec("offsets", offsets={("debug.nope", 0): 1})
        with pytest.raises(ConfigurationError, match=r"do not exist: debug\.nope:0"):
            resolve_starts(spec, PARTS, BEGIN, END)

    def test_since_without_a_recent_record_reads_nothing(self) -> None:
        spec = StartSpec("since", since=datetime(2026, 1, 1, tzinfo=UTC))
        plan = resolve_starts(spec, PARTS, BEGIN, END, at_time={PARTS[0]: 40, PARTS[1]: None})
        assert [(p.start, p.count) for p in plan] == [(40, 60), (50, 0), (0, 0)]

    def test_resume_uses_stored_offsets_else_the_beginning(self) -> None:
        plan = resolve_starts(StartSpec("resume"), PARTS, BEGIN, END, stored={PARTS[0]: 70})
        assert [(p.start, p.count) for p in plan] == [(70, 30), (5, 45), (0, 0)]

    def test_offset_past_the_end_starts_at_the_end(self) -> None:
        plan = resolve_starts(StartSpec("resume"), PARTS, BEGIN, END, stored={PARTS[0]: 500})
        assert plan[0] == PartitionPlan("debug.error_events", 0, 100, 100)


def test_default_group_id_is_timestamped_and_unique() -> None:
    """Two replays started in the same second get groups of their own."""
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    ids = {default_group_id(when) for _ in range(50)}
    assert len(ids) == 50
    for group in ids:
        assert re.fullmatch(r"debug-sink-replay-20260304T050607Z-[0-9a-f]{6}", group), group


class _Reader:
    """What the fake readers below share: a consumer without a group, assigned partitions,
    sought and paused as the replay's probes do."""

    def __init__(self) -> None:
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()

    def assign(self, tps: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(tps, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)


class _Probed(_Reader):
    """The calls :func:`log_starts` and :func:`log_ends` make, over logs whose first held
    offset is ``starts`` while ListOffsets(earliest) answers ``answers`` (Tansu, at times,
    too much) and whose ends are ``ends``."""

    def __init__(self, starts: dict[TopicPartition, int], answers: dict[TopicPartition, int]):
        super().__init__()
        self.starts, self.answers = starts, answers
        self.ends: dict[TopicPartition, int] = {}

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.answers.get(tp, self.starts[tp]) for tp in tps}

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Any]]:
        for tp in tps:
            if self.positions[tp] < self.starts[tp]:
                raise OffsetOutOfRangeError({tp: self.positions[tp]})
        tp = tps[0]
        return {tp: [SimpleNamespace(offset=self.positions[tp])]}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp] for tp in tps}

    def highwater(self, tp: TopicPartition) -> int:
        return self.ends[tp]


async def test_log_starts_checks_a_start_past_zero_by_reading_offset_0() -> None:
    """A start ListOffsets put past the first records is corrected; one that retention
    made is confirmed by "out of range"; 0 needs no probe."""
    over, deleted, plain = (TopicPartition("debug.x", p) for p in range(3))
    consumer = _Probed({over: 0, deleted: 40, plain: 0}, answers={over: 166})
    starts = await log_starts(consumer, [over, deleted, plain])  # type: ignore[arg-type]
    assert starts == {over: 0, deleted: 40, plain: 0}
    assert consumer.paused == {over, deleted}


class _Timed(_Reader):
    """The calls :func:`offsets_at_time` makes, over one partition's records (offset =
    index, ``timestamps`` the records' own) while ListOffsets(timestamp) answers
    ``answer`` -- Kafka's (the first record at or after the time, with its timestamp; None)
    or Tansu's (the first batch *appended* at or after the time, with the broker's append
    time; ``(0, -1)`` when it appended none that late)."""

    def __init__(self, timestamps: list[int], answer: Any) -> None:
        super().__init__()
        self.timestamps, self.answer = timestamps, answer
        self.fetched = 0

    async def offsets_for_times(
        self, query: dict[TopicPartition, int]
    ) -> dict[TopicPartition, Any]:
        return dict.fromkeys(query, self.answer)

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]:
        out = {}
        for tp in tps:
            at = self.positions[tp]
            got = [
                SimpleNamespace(offset=o, timestamp=self.timestamps[o])
                for o in range(at, min(len(self.timestamps), at + (max_records or 4)))
            ]
            self.fetched += len(got)
            self.positions[tp] = at + len(got)
            if got:
                out[tp] = got
        return out


#: Five batches of three records appended 1.5 s apart (at 0, 1500, 3000, 4500, 6000); the
#: third batch's producer clock runs 100 s ahead, the fourth's 100 s behind.
_TIMESTAMPS = [0, 1, 2, 1504, 1505, 1506, 103007, 103008, 103009, -95490, -95489, -95488]
_TIMESTAMPS += [6013, 6014, 6015]
_TP = TopicPartition("debug.x", 0)


@pytest.mark.parametrize(
    ("since", "answer", "expected"),
    [
        # Seen on Tansu: the batch appended after 3100 ms is the fourth (offset 9), but
        # offsets 6-8 are records of 103 s.
        (3100, SimpleNamespace(offset=9, timestamp=4511), 6),
        # Seen on Tansu: nothing was appended after 6100 ms; Kafka answers offset 6.
        (6100, SimpleNamespace(offset=0, timestamp=-1), 6),
        (50_000, SimpleNamespace(offset=0, timestamp=-1), 6),
        # Nothing is that recent: the partition is not read.
        (200_000, SimpleNamespace(offset=0, timestamp=-1), None),
        # An answer before the first record at the time: read from there (no loss).
        (1600, SimpleNamespace(offset=6, timestamp=3008), 6),
    ],
)
async def test_offsets_at_time_finds_records_a_broker_dated_by_append_time(
    since: int, answer: Any, expected: int | None
) -> None:
    """An answer that is not Kafka's (the record at it carries another timestamp, or
    ``(0, -1)``) is checked by reading the partition: every record at or after the time is
    replayed, whatever the clock of the broker that appended it."""
    consumer = _Timed(_TIMESTAMPS, answer)
    found = await offsets_at_time(consumer, [_TP], since, {_TP: 0}, {_TP: len(_TIMESTAMPS)})  # type: ignore[arg-type]
    assert found == {_TP: expected}
    assert consumer.paused == {_TP}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [(SimpleNamespace(offset=6, timestamp=103007), 6), (None, None)],
)
async def test_offsets_at_time_takes_kafkas_answer(answer: Any, expected: int | None) -> None:
    """Kafka's answer (the record's own timestamp; None) is taken: at most the one record at
    the answer is fetched to check it, the partition is not scanned."""
    consumer = _Timed(_TIMESTAMPS, answer)
    found = await offsets_at_time(consumer, [_TP], 1600, {_TP: 0}, {_TP: len(_TIMESTAMPS)})  # type: ignore[arg-type]
    assert found == {_TP: expected}
    assert consumer.fetched <= 1


async def test_log_ends_of_a_partition_whose_records_were_all_deleted() -> None:
    """Its last record is gone too: the probe's fetch is out of range (the consumer resets
    nothing), and the answer stands -- no error, no wait."""
    emptied, full = TopicPartition("debug.x", 0), TopicPartition("debug.x", 1)
    consumer = _Probed({emptied: 40, full: 0}, answers={})
    consumer.ends = {emptied: 40, full: 25}
    ends = await log_ends(consumer, [emptied, full], timeout=5)  # type: ignore[arg-type]
    assert ends == {emptied: 40, full: 25}
