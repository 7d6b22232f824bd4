"""Examples and JSON Schemas of the wire format, generated from the event models.

Owns :data:`EXAMPLES` (one realistic message per default topic, as a producer would send it:
the README shows them, the tests validate them) and the JSON Schemas in ``schemas/``
(:func:`json_schemas`, :func:`write_schemas`; ``debug-sink schemas --write`` or
``python -m debug_sink.wire.examples --write`` regenerate them, a test fails when they drift).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from debug_sink.wire.events import DEFAULT_TOPICS, MODELS

__all__ = ["EXAMPLES", "json_schemas", "schema_files", "write_schemas"]

_JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

# -- examples -------------------------------------------------------------------------------

_WORKFLOW = "5f0c2a8e-3b1d-4c7a-9e2f-6d8b1a4c3e21"
_SESSION = "a3d91f6b-0c4e-4f28-b5a7-2e9c8d1f6a40"
_SNAPSHOT = "0b6f3c2d-8e1a-4d5b-9c7f-3a2e1d4b6c58"
_ERROR = "c7e2b9a4-1d3f-4a6e-8b5c-9f0d2e7a1b36"
_SUCCESS = "e4a1d7c3-6b2f-4e8a-9d1c-5b3f7a2e8c04"

#: One realistic message per default topic, as a producer would send it (README, schemas).
EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    "debug.state_snapshots": {
        "id": _SNAPSHOT,
        "schema_version": 1,
        "correlation_id": _WORKFLOW,
        "session_id": _SESSION,
        "snapshot_type": "error",
        "agent_name": "code-reviewer",
        "agent_state": {
            "task": "review pull request #482",
            "files_reviewed": ["src/app/models.py", "src/app/api.py"],
            "context": {"repository": "acme/shop", "branch": "feature/cart-totals"},
            "llm": {"model": "gpt-4o", "max_tokens": 4096, "prompt_tokens": 3120},
            "retries": 1,
        },
        "execution_step": 3,
        "task_description": "Review the diff and report blocking issues",
        "user_request": "Please review PR 482 before the release",
        "context_depth": 1,
        "memory_usage_mb": 212.5,
        "cpu_time_ms": 840,
        "wall_time_ms": 15230,
        "captured_at": "2025-10-11T14:03:27.512Z",
    },
    "debug.error_events": {
        "id": _ERROR,
        "schema_version": 1,
        "correlation_id": _WORKFLOW,
        "session_id": _SESSION,
        "error_type": "TimeoutError",
        "error_category": "external",
        "error_severity": "high",
        "error_message": "GitHub API did not answer within 30 s",
        "error_stack_trace": 'Traceback (most recent call last):\n  File "agent.py", line 88, '
        "in fetch_diff\nTimeoutError: GitHub API did not answer within 30 s\n",
        "error_code": "504",
        "agent_name": "code-reviewer",
        "operation_name": "fetch_diff",
        "execution_step": 3,
        "state_snapshot_id": _SNAPSHOT,
        "is_recoverable": True,
        "recovery_attempted": True,
        "recovery_strategy": "retry",
        "metadata": {"endpoint": "/repos/acme/shop/pulls/482", "timeout_s": 30},
        "occurred_at": "2025-10-11T14:03:27.530Z",
    },
    "debug.success_events": {
        "id": _SUCCESS,
        "schema_version": 1,
        "correlation_id": _WORKFLOW,
        "session_id": _SESSION,
        "success_type": "recovery_success",
        "operation_name": "fetch_diff",
        "agent_name": "code-reviewer",
        "execution_step": 3,
        "quality_score": 0.92,
        "completion_status": "full",
        "validation_passed": True,
        "execution_time_ms": 2140,
        "retry_count": 1,
        "recovers_error_ids": [_ERROR],
        "success_factors": {"strategy": "retry", "backoff_ms": 2000},
        "occurred_at": "2025-10-11T14:03:31.804Z",
    },
    "debug.workflow_steps": {
        "id": "9d3e5f1a-2b4c-4d6e-8f0a-1b3c5d7e9f02",
        "schema_version": 1,
        "correlation_id": _WORKFLOW,
        "session_id": _SESSION,
        "step_number": 3,
        "attempt": 2,
        "step_type": "execution",
        "agent_name": "code-reviewer",
        "operation_name": "fetch_diff",
        "step_description": "Download the pull request diff",
        "status": "completed",
        "pre_state_snapshot_id": _SNAPSHOT,
        "success_event_id": _SUCCESS,
        "duration_ms": 4292,
        "depends_on_steps": [1, 2],
        "input_data": {"pull_request": 482},
        "output_data": {"files_changed": 7, "lines_added": 214},
        "started_at": "2025-10-11T14:03:27.512Z",
        "completed_at": "2025-10-11T14:03:31.804Z",
    },
    "debug.transformation_events": {
        "id": "4c8a2e6f-9b1d-4f3a-8c5e-7d2b9f1a3e65",
        "schema_version": 1,
        "correlation_id": _WORKFLOW,
        "session_id": _SESSION,
        "source_agent": "router",
        "target_agent": "code-reviewer",
        "transformation_type": "delegation",
        "reason": "The request asks for a code review",
        "confidence_score": 0.87,
        "state_snapshot_id": _SNAPSHOT,
        "metadata": {"router_version": "2.3.0"},
        "created_at": "2025-10-11T14:03:12.004Z",
    },
    "debug.hook_events": {
        "id": "7f1b3d5e-6a8c-4e2f-9b0d-2c4e6a8f0b17",
        "schema_version": 1,
        "correlation_id": _WORKFLOW,
        "session_id": _SESSION,
        "source": "PostToolUse",
        "resource_id": "gpt-4o",
        "payload": {
            "quality_metrics": {"quality_score": 0.9, "latency_ms": 1840},
            "success_classification": "success",
            "usage": {"prompt_tokens": 3120, "completion_tokens": 412, "total_tokens": 3532},
        },
        "metadata": {"agent_name": "code-reviewer"},
        "created_at": "2025-10-11T14:03:29.001Z",
    },
}


# -- JSON Schemas ---------------------------------------------------------------------------


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema (draft 2020-12) of every default topic's messages, keyed by topic."""
    schemas: dict[str, dict[str, Any]] = {}
    for topic, kind in DEFAULT_TOPICS.items():
        schema = MODELS[kind].model_json_schema(mode="validation")
        schema["$schema"] = _JSON_SCHEMA_DIALECT
        schema["$id"] = f"{topic}.schema.json"
        schema["examples"] = [EXAMPLES[topic]]
        schemas[topic] = schema
    return schemas


def schema_files() -> dict[str, str]:
    """File name (``<topic>.schema.json``) -> exact file content, as :func:`write_schemas`
    writes it: sorted keys, two-space indent, trailing newline."""
    return {
        f"{topic}.schema.json": json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False)
        + "\n"
        for topic, schema in json_schemas().items()
    }


def write_schemas(directory: Path | str) -> list[Path]:
    """Write every topic's schema to ``directory/<topic>.schema.json``; return the paths.

    Other ``*.schema.json`` files in ``directory`` are deleted (they are stale generated
    files, e.g. of a renamed topic); nothing else is touched. Deterministic: writing twice
    gives byte-identical files.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = schema_files()
    for stale in directory.glob("*.schema.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in sorted(files.items()):
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m debug_sink.wire.examples",
        description="Print, write or check the JSON Schemas generated from the event models.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="write them to --dir")
    action.add_argument("--check", action="store_true", help="exit 1 if --dir differs")
    parser.add_argument("--dir", default="schemas", help="directory (default: schemas)")
    args = parser.parse_args(argv)
    directory = Path(args.dir)
    if args.write:
        written = write_schemas(directory)
        print(f"wrote {len(written)} JSON Schemas to {directory}")
        return 0
    if args.check:
        on_disk = {p.name: p.read_text(encoding="utf-8") for p in directory.glob("*.schema.json")}
        if on_disk != schema_files():
            print(f"{directory} is out of date: run `debug-sink schemas --write`", file=sys.stderr)
            return 1
        return 0
    print(json.dumps(json_schemas(), indent=2, sort_keys=True, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
