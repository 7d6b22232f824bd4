"""The JSON Schemas in schemas/ are generated from the event models and must not drift."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from debug_sink.wire.events import DEFAULT_TOPICS
from debug_sink.wire.examples import EXAMPLES, json_schemas, schema_files, write_schemas

SCHEMAS_DIR = Path(__file__).resolve().parents[3] / "schemas"
REGENERATE = (
    "regenerate them with `debug-sink schemas --write` "
    "(or `python -m debug_sink.wire.examples --write`) and commit the result"
)


class TestCommittedSchemas:
    """schemas/*.schema.json equal what the models generate, byte for byte."""

    def test_no_drift(self) -> None:
        """Every generated file is committed unchanged, and no stale file remains."""
        committed = {
            p.name: p.read_text(encoding="utf-8") for p in SCHEMAS_DIR.glob("*.schema.json")
        }
        generated = schema_files()
        missing = sorted(set(generated) - set(committed))
        stale = sorted(set(committed) - set(generated))
        changed = sorted(n for n in set(generated) & set(committed) if generated[n] != committed[n])
        problems = {"missing": missing, "stale": stale, "changed": changed}
        drift = {kind: names for kind, names in problems.items() if names}
        assert not drift, f"schemas/ is out of date with the event models {drift}; {REGENERATE}"


class TestGeneration:
    """json_schemas / write_schemas produce one deterministic schema file per topic."""

    def test_one_schema_per_topic(self) -> None:
        """Keys are the default topics; each schema is a closed object with an example."""
        schemas = json_schemas()
        assert set(schemas) == set(DEFAULT_TOPICS)
        for topic, schema in schemas.items():
            assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
            assert schema["type"] == "object"
            assert schema["additionalProperties"] is False
            assert {"id", "correlation_id"} <= set(schema["required"])
            assert schema["examples"] == [EXAMPLES[topic]]

    def test_fields_are_documented(self) -> None:
        """Every property carries a description (from the model's attribute docstrings)."""
        for topic, schema in json_schemas().items():
            for name, prop in schema["properties"].items():
                assert prop.get("description"), f"{topic}: {name} has no description"

    def test_column_limits_are_in_the_schema(self) -> None:
        """Producers can see the limits the sink enforces."""
        errors = json_schemas()["debug.error_events"]["properties"]
        assert errors["error_type"]["maxLength"] == 255
        assert errors["error_severity"]["enum"] == ["low", "medium", "high", "critical"]
        assert errors["occurred_at"]["anyOf"][0]["format"] == "date-time"

    def test_timestamps_say_the_accepted_years(self) -> None:
        """Every timestamp's schema refuses years 0000, 0001 and 9999 (an ECMA-262 pattern
        on top of format date-time) and allows 0002 through 9998, as the sink does."""
        patterns = set()
        for schema in json_schemas().values():
            for prop in schema["properties"].values():
                for option in prop.get("anyOf", [prop]):
                    if option.get("format") == "date-time":
                        patterns.add(option.get("pattern"))
        assert len(patterns) == 1, patterns
        assert None not in patterns
        pattern = re.compile(patterns.pop())
        for ok in ("0002-01-01T00:00:00Z", "2025-10-11T14:03:27.512Z", "9998-12-31T23:59:59Z"):
            assert pattern.search(ok), ok
        for bad in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "0000-01-01T00:00Z"):
            assert not pattern.search(bad), bad

    def test_write_is_deterministic_and_removes_stale_files(self, tmp_path: Path) -> None:
        """Two writes give identical bytes; old *.schema.json go, other files stay."""
        (tmp_path / "debug.renamed.schema.json").write_text("{}")
        (tmp_path / "README.md").write_text("keep")
        first = {p.name: p.read_bytes() for p in write_schemas(tmp_path)}
        second = {p.name: p.read_bytes() for p in write_schemas(tmp_path)}
        assert first == second
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*first, "README.md"])
        for text in first.values():
            assert text.endswith(b"}\n")
            json.loads(text)

    def test_module_entry_point_checks_and_writes(self, tmp_path: Path) -> None:
        """`python -m debug_sink.wire.examples --write/--check` is the fallback generator."""

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "debug_sink.wire.examples", *args, "--dir", str(tmp_path)],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )

        assert run("--check").returncode == 1
        assert run("--write").returncode == 0
        assert run("--check").returncode == 0
