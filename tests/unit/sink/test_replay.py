"""Replay planning is pure: start-option parsing and the per-partition plan."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from debug_sink.cli.replay import time_argument as parse_since
from debug_sink.errors import ConfigurationError
from debug_sink.sink.replay import (
    PartitionPlan,
    StartSpec,
    default_group_id,
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
