"""Pure parts of the periodic jobs: named SQL files, retention ages, job wiring, the
correlator's agreement arithmetic and metrics."""

from __future__ import annotations

from datetime import timedelta

import pytest

from debug_sink.cli.jobs import parse_age
from debug_sink.db import sqlfiles
from debug_sink.errors import ConfigurationError
from debug_sink.jobs.correlator import Agreement, export_agreement
from debug_sink.jobs.schedule import periodic_jobs
from debug_sink.metrics import Metrics
from debug_sink.settings import Settings


class TestSqlFiles:
    """``-- name:`` blocks are split into named queries."""

    def test_parse(self) -> None:
        text = "-- header\n-- name: one\n-- what it does\nSELECT 1\n\n-- name: two\nSELECT 2;\n"
        assert sqlfiles.parse(text) == {"one": "-- what it does\nSELECT 1", "two": "SELECT 2;"}

    @pytest.mark.parametrize(
        "text",
        ["-- name: a\nSELECT 1\n-- name: a\nSELECT 2", "-- name: empty\n\n-- name: b\nSELECT 1"],
    )
    def test_duplicates_and_empty_queries_are_errors(self, text: str) -> None:
        with pytest.raises(ValueError, match=r"defined twice|is empty"):
            sqlfiles.parse(text)

    @pytest.mark.parametrize(
        ("filename", "names"),
        [
            (
                "correlator.sql",
                {
                    "begin_run",
                    "collect_new_events",
                    "choose",
                    "apply",
                    "advance",
                    "count_occurrences",
                    "expected_occurrences",
                    "expected_operations",
                    "rebuild_operations",
                    "expected_stats",
                    "expected_agreement",
                },
            ),
            (
                "retention.sql",
                {
                    "purge_steps",
                    "pick_errors",
                    "purge_links",
                    "purge_agreement",
                    "purge_errors",
                    "purge_successes",
                    "purge_snapshots",
                    "count_old",
                },
            ),
            ("synthetic.sql", {"fill_workflows", "fill_errors"}),
        ],
    )
    def test_shipped_files(self, filename: str, names: set[str]) -> None:
        assert names <= set(sqlfiles.load(filename))


class TestParseAge:
    """``--older-than`` values."""

    @pytest.mark.parametrize(
        ("text", "age"),
        [
            ("90d", timedelta(days=90)),
            ("90", timedelta(days=90)),
            ("36h", timedelta(hours=36)),
            ("15m", timedelta(minutes=15)),
            ("2w", timedelta(weeks=2)),
            (" 7d ", timedelta(days=7)),
        ],
    )
    def test_valid(self, text: str, age: timedelta) -> None:
        assert parse_age(text) == age

    @pytest.mark.parametrize("text", ["", "d", "-1d", "1.5d", "90y", "ninety"])
    def test_invalid(self, text: str) -> None:
        with pytest.raises(ConfigurationError, match="invalid age"):
            parse_age(text)


class TestPeriodicJobs:
    """What ``run`` schedules; 0 disables a job."""

    def test_both_by_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("DEBUG_SINK_CORRELATOR_INTERVAL", raising=False)
        monkeypatch.delenv("DEBUG_SINK_RETENTION_DAYS", raising=False)
        jobs = periodic_jobs(Settings(postgres_dsn="postgresql://x@localhost/db"))
        assert [(name, interval) for name, interval, _ in jobs] == [
            ("correlator", 30.0),
            ("retention", 3600.0),
        ]

    def test_zero_disables(self) -> None:
        settings = Settings(
            postgres_dsn="postgresql://x@localhost/db", correlator_interval=0, retention_days=0
        )
        assert periodic_jobs(settings) == []


class TestAgreement:
    """Precision and recall of inference against stated links, and their metrics."""

    def test_precision_and_recall(self) -> None:
        agreement = Agreement(agreed=8, wrong=2, missed=8)
        assert (agreement.precision, agreement.recall) == (0.8, 0.5)
        assert (Agreement().precision, Agreement().recall) == (None, None)
        assert agreement.as_dict() == {
            "agreed": 8,
            "wrong": 2,
            "missed": 8,
            "precision": 0.8,
            "recall": 0.5,
        }

    def test_exported_as_gauges(self) -> None:
        metrics = Metrics()
        export_agreement(metrics, Agreement())
        text = metrics.render().decode()
        assert 'debug_sink_correlator_agreement{outcome="agreed"} 0.0' in text
        assert "debug_sink_correlator_inference{" not in text  # nothing to measure yet
        export_agreement(metrics, Agreement(agreed=3, wrong=1, missed=0))
        text = metrics.render().decode()
        assert 'debug_sink_correlator_agreement{outcome="wrong"} 1.0' in text
        assert 'debug_sink_correlator_inference{measure="precision"} 0.75' in text
        assert 'debug_sink_correlator_inference{measure="recall"} 1.0' in text
