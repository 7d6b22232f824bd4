"""The benchmark's pure parts: workload, statistics, targets and the report (no services,
nothing timed)."""

from __future__ import annotations

import argparse
import uuid
from collections import Counter

import orjson
import pytest
from rich.console import Console

from debug_sink.bench import harness as bench
from debug_sink.wire.canonical import canonical_json
from debug_sink.wire.events import DEFAULT_TOPICS, EventKind
from debug_sink.wire.validation import Accepted, ValidationConfig, decode

TOPIC_OF = {kind: topic for topic, kind in DEFAULT_TOPICS.items()}


def render(table: object, width: int = 160) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(table)
    return console.export_text()


class TestWorkload:
    """The generated mix: proportions, sizes, validity, determinism."""

    def test_mix_proportions_per_workflow(self) -> None:
        """Every workflow is 16 events: 4 snapshots, 6 step events, 3 hooks, 1 error,
        1 success and 1 transformation, whatever the number of workflows."""
        messages = list(bench.iter_workload(25, tag=3))
        assert len(messages) == 25 * bench.EVENTS_PER_WORKFLOW
        assert bench.workload_mix(messages) == {
            "error": 1 / 16,
            "hook": 3 / 16,
            "snapshot": 4 / 16,
            "step": 6 / 16,
            "success": 1 / 16,
            "transformation": 1 / 16,
        }

    def test_state_sizes_are_about_1_kb_and_8_kb(self) -> None:
        """Three snapshots per workflow carry ~1 KB states, one carries ~8 KB (canonical)."""
        sizes = sorted(
            len(canonical_json(orjson.loads(m.value)["agent_state"]))
            for m in bench.iter_workload(1, tag=3)
            if m.kind is EventKind.SNAPSHOT
        )
        assert [900 <= s <= 1200 for s in sizes[:3]] == [True] * 3
        assert 7500 <= sizes[3] <= 9500

    def test_error_carries_a_stack_trace(self) -> None:
        """The error event has a multi-frame stack trace."""
        (error,) = [m for m in bench.iter_workload(1, tag=3) if m.kind is EventKind.ERROR]
        trace = orjson.loads(error.value)["error_stack_trace"]
        assert trace.startswith("Traceback")
        assert trace.count("File ") >= 10

    def test_every_message_passes_the_sinks_validation(self) -> None:
        """Stamped with a send time, each message is accepted by the sink's decoder, with
        the event's own timestamps set to that time."""
        config = ValidationConfig()
        stamp = "2026-03-01T12:00:00.250000+00:00"
        for message in bench.iter_workload(2, tag=3):
            result = decode(
                TOPIC_OF[message.kind], message.stamped(stamp), timestamp_ms=0, config=config
            )
            assert isinstance(result, Accepted), result
            assert result.kind is message.kind
            assert bench.STAMP.encode() not in message.stamped(stamp)

    def test_deterministic_and_unique_ids(self) -> None:
        """The same tag and workflow numbers give the same bytes; ids never repeat across
        workflows, and another tag gives other ids."""
        first = list(bench.iter_workload(20, tag=7))
        assert first == list(bench.iter_workload(20, tag=7))
        ids = [orjson.loads(m.value)["id"] for m in first]
        step_ids = Counter(orjson.loads(m.value)["id"] for m in first if m.kind is EventKind.STEP)
        # Step lifecycle events share their step's id (started, then ended): 2 each.
        assert set(step_ids.values()) == {2}
        assert len(set(ids)) == len(ids) - len(step_ids)
        for value in ids:
            assert uuid.UUID(value).version == 4
        other = {orjson.loads(m.value)["id"] for m in bench.iter_workload(20, tag=8)}
        assert other.isdisjoint(ids)

    def test_continuing_numbering_gives_new_workflows(self) -> None:
        """``first`` continues the numbering: the two ranges share no workflow."""
        a = {m.key for m in bench.iter_workload(5, tag=1)}
        b = {m.key for m in bench.iter_workload(5, tag=1, first=5)}
        assert len(a) == len(b) == 5
        assert a.isdisjoint(b)

    def test_parents_precede_children(self) -> None:
        """In produce order, every referenced id was produced before the reference."""
        seen: set[str] = set()
        for message in bench.iter_workload(3, tag=1):
            body = orjson.loads(message.value)
            for name in bench._REFERENCE_FIELDS.intersection(body):
                assert body[name] in seen, (message.kind, name)
            seen.add(body["id"])

    def test_without_references(self) -> None:
        """``references=False`` removes every reference field (nothing can be parked)."""
        for message in bench.iter_workload(2, tag=1, references=False):
            assert not bench._REFERENCE_FIELDS.intersection(orjson.loads(message.value))

    @pytest.mark.parametrize(("events", "workflows"), [(1, 1), (16, 1), (24_000, 1500), (100, 6)])
    def test_whole_workflows(self, events: int, workflows: int) -> None:
        """A requested event count is rounded to whole workflows (at least one)."""
        assert bench.workflows_for(events) == workflows


class TestStatistics:
    """Percentiles, summaries and the drain window."""

    @pytest.mark.parametrize(
        ("values", "q", "expected"),
        [
            ([1, 2, 3, 4], 50, 2.5),
            ([4, 1, 3, 2], 0, 1),
            ([4, 1, 3, 2], 100, 4),
            ([10], 99, 10),
            (list(range(1, 101)), 99, 99.01),
            ([0, 10], 95, 9.5),
        ],
    )
    def test_percentile_interpolates_linearly(
        self, values: list[float], q: float, expected: float
    ) -> None:
        """Linear interpolation between closest ranks, independent of input order."""
        assert bench.percentile(values, q) == pytest.approx(expected)

    def test_percentile_rejects_empty_and_out_of_range(self) -> None:
        with pytest.raises(ValueError, match="empty"):
            bench.percentile([], 50)
        with pytest.raises(ValueError, match="outside"):
            bench.percentile([1.0], 101)

    def test_summarize(self) -> None:
        """count, p50, p95, p99, max and mean; an empty input gives only a zero count."""
        summary = bench.summarize([float(v) for v in range(1, 101)])
        assert summary == {
            "count": 100,
            "p50": 50.5,
            "p95": 95.05,
            "p99": 99.01,
            "max": 100.0,
            "mean": 50.5,
        }
        assert bench.summarize([]) == {"count": 0}

    def test_drain_window_excludes_the_first_batch(self) -> None:
        """Events committed between the first and the last commit: the first batch's events
        were committed at the window's start and do not count."""
        batches = [
            bench.BatchLine(at=12.0, events=300, duration_ms=5),
            bench.BatchLine(at=10.0, events=100, duration_ms=5),
            bench.BatchLine(at=11.0, events=200, duration_ms=5),
        ]
        assert bench.drain_window(batches) == (500, 2.0)
        assert bench.drain_window(batches, after=10.5) == (300, 1.0)
        assert bench.drain_window(batches[:1]) == (0, 0.0)
        assert bench.drain_window([]) == (0, 0.0)


def _results() -> dict[str, object]:
    return {
        "throughput": {
            "ratio_copy_shipped": 0.9,
            "ratio_copy_seed": 1.5,
            "ratio_naive": 12.0,
            "sink": {"events_per_s": 9000, "mb_per_s": 11.5},
            "copy_shipped": {"rows_per_s": 8000, "events_per_s": 10000},
        },
        "latency": {
            "rates": {
                "2000": {"p50_ms": 120.0, "p99_ms": 510.0, "produced_per_s": 1999},
            }
        },
        "queries": {
            "queries": {
                "timeline": {"p50": 1.0, "p95": 2.0},
                "recovery_patterns": {"p50": 40.0, "p95": 60.0},
                "known_fixes": {"note": "not measured: no function"},
            }
        },
        "notes": ["a note for the caption"],
    }


class TestTargets:
    """Targets of issue 7 evaluated against results."""

    def test_met_missed_and_not_measured(self) -> None:
        """Higher-is-better ratios and lower-is-better latencies; absent values are None."""
        by_name = {t.name: t for t in bench.evaluate_targets(_results())}
        assert by_name["sink / raw COPY, shipped schema"].met is True
        assert by_name["sink / raw COPY, literal seed schema"].met is False
        assert by_name["sink / naive consumer"].met is True
        assert by_name["p99 produce -> committed at 2k/s"].met is False
        assert by_name["p95 timeline"].met is True
        assert by_name["p95 recovery_patterns"].met is False
        assert by_name["p95 known_fixes"].met is None
        assert by_name["peak RSS draining the backlog"].met is None
        assert by_name["two sinks / one sink"].value is None

    def test_limits_match_the_issue(self) -> None:
        limits = {t.name: (t.limit, t.higher_is_better) for t in bench.evaluate_targets({})}
        assert limits["sink / raw COPY, shipped schema"] == (0.85, True)
        assert limits["sink / raw COPY, literal seed schema"] == (2.0, True)
        assert limits["sink / naive consumer"] == (8.0, True)
        assert limits["p99 produce -> committed at 2k/s"] == (500.0, False)
        assert limits["peak RSS draining the backlog"] == (300.0, False)
        assert limits["p95 capture_state_snapshot"] == (5.0, False)
        for name in bench.PER_WORKFLOW_QUERIES:
            assert limits[f"p95 {name}"] == (10.0, False)
        for name in bench.AGGREGATE_QUERIES:
            assert limits[f"p95 {name}"] == (50.0, False)
        assert limits["two sinks / one sink"] == (1.4, True)
        assert limits["p99 SDK capture_snapshot"] == (1.0, False)

    def test_boundary_counts_as_met(self) -> None:
        assert bench.Target("x", 1.4, 1.4, True).met is True
        assert bench.Target("y", 500.0, 500.0, False).met is True


class TestReport:
    """The printed tables."""

    def test_results_table(self) -> None:
        """One row per target with its value, limit and status; notes as the caption."""
        results = _results()
        text = render(bench.results_table(results, bench.evaluate_targets(results)))
        assert "sink / raw COPY, shipped schema" in text
        assert "0.90x" in text
        assert "\u2265 0.85x" in text
        assert "510 ms" in text
        assert "\u2264 500 ms" in text
        assert text.count("MISSED") == 3
        assert "not measured" in text
        assert "a note for the caption" in text

    def test_details_table(self) -> None:
        """Rates, latencies and query percentiles; a query that failed shows its note."""
        text = render(bench.details_table(_results()))
        assert "9,000 (11.5)" in text
        assert "8,000 (10,000)" in text
        assert "120 / 510 ms (1,999/s)" in text
        assert "2.00 ms" in text
        assert "not measured: no function" in text


class TestConfiguration:
    """Sizes, sections and the command line."""

    def test_quick_and_full_sizes(self) -> None:
        quick = bench.BenchConfig.make(quick=True)
        full = bench.BenchConfig.make()
        assert (quick.query_events, full.query_events) == (1_000_000, 10_000_000)
        assert full.events == 200_000
        assert full.rss_events == 1_000_000
        assert quick.events < full.events
        assert quick.rss_events <= quick.events
        assert full.latency_rates == (2_000, 10_000)
        assert bench.BenchConfig.make(quick=True, events=5000).events == 5000

    def test_sections(self) -> None:
        """``--only`` keeps the canonical order; unknown names are refused."""
        assert bench.BenchConfig.make(only=["sdk", "throughput"]).sections == (
            "throughput",
            "sdk",
        )
        with pytest.raises(ValueError, match="unknown section"):
            bench.BenchConfig.make(only=["nope"])

    def test_register_commands(self) -> None:
        """``register_commands`` adds ``bench`` with its options to a subparser set."""
        parser = argparse.ArgumentParser()
        register = bench.register_commands
        register(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["bench", "--quick", "--only", "latency,sdk", "--json", ""])
        assert args.quick
        assert args.only == ("latency", "sdk")
        assert args.json == ""
        assert args.handler is bench._bench
        with pytest.raises(SystemExit):
            parser.parse_args(["bench", "--only", "latency,bogus"])


class TestCoresBusy:
    """cores_busy: average cores per component over a window, from cumulative CPU samples."""

    def test_interpolates_between_samples(self) -> None:
        from debug_sink.bench.harness import CpuSample, cores_busy

        samples = [
            CpuSample(at=100.0, sinks=0.0, postgres=0.0, broker=0.0),
            CpuSample(at=102.0, sinks=2.0, postgres=1.0, broker=0.2),
            CpuSample(at=104.0, sinks=4.0, postgres=1.0, broker=0.4),
        ]
        out = cores_busy(samples, 101.0, 103.0)
        assert out == {"sinks": 1.0, "postgres": 0.25, "broker": 0.1, "total": 1.35}

    def test_empty_window_or_too_few_samples(self) -> None:
        from debug_sink.bench.harness import CpuSample, cores_busy

        one = [CpuSample(at=1.0, sinks=0.0, postgres=0.0, broker=0.0)]
        assert cores_busy(one, 0.0, 2.0) == {}
        assert cores_busy(one * 2, 2.0, 2.0) == {}

    def test_reads_this_process_cpu(self) -> None:
        """/proc accounting sees CPU this process burns (Linux only)."""
        import os
        import time

        import pytest

        from debug_sink.bench.harness import _cpu_seconds, _process_children

        if not os.path.isdir("/proc"):
            pytest.skip("no /proc")
        before = _cpu_seconds(os.getpid(), children=_process_children())
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            pass
        after = _cpu_seconds(os.getpid(), children=_process_children())
        assert before is not None
        assert after is not None
        assert after - before >= 0.2
