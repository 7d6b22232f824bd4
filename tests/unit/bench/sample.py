"""Results as a run would produce them, for the tests of targets and of the report."""

from __future__ import annotations


def sample_results() -> dict[str, object]:
    """Some sections measured, some not: a target met, one missed, one not measured."""
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
