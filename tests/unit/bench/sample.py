"""Results as a run would produce them, for the tests of targets and of the report."""

from __future__ import annotations


def _spread(median: float, low: float, high: float) -> dict[str, object]:
    return {"median": median, "min": low, "max": high, "runs": [low, median, high]}


def sample_results() -> dict[str, object]:
    """Some sections measured, some not: targets met, missed and not measured."""
    return {
        "throughput": {
            "workload": "realistic",
            "events": 40_000,
            "prefilled_events": 500_000,
            "rounds": [{}, {}, {}],
            "ratio_copy_shipped": 0.65,
            "ratio_copy_seed": 1.5,
            "ratio_typical": 2.5,
            "ratio_efficiency": 0.55,
            "sink": {
                "events_per_s": _spread(9000, 8500, 9400),
                "events_per_cpu_s": _spread(8000, 7000, 8100),
                "cores_busy": {
                    "sinks": _spread(0.8, 0.7, 0.9),
                    "postgres": _spread(0.5, 0.4, 0.6),
                    "broker": _spread(0.05, 0.04, 0.06),
                    "total": _spread(1.35, 1.2, 1.5),
                },
            },
            "copy_shipped": {
                "events_per_s": _spread(13_846, 13_000, 14_000),
                "events_per_cpu_s": _spread(14_500, 14_000, 15_000),
            },
            "typical": {"events_per_s": _spread(3600, 3000, 4000)},
        },
        "latency": {
            "rates": {
                "2000": {"p50_ms": 120.0, "p99_ms": 510.0, "produced_per_s": 1999},
            }
        },
        "queries": {
            "queries": {
                "timeline": {"p50": 1.0, "p95": 1.5},
                "recovery_patterns": {"p50": 40.0, "p95": 60.0},
                "known_fixes": {"note": "not measured: no function"},
            }
        },
        "notes": ["a note for the caption"],
    }
