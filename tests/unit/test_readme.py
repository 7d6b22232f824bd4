"""The README stays true to the code: every setting documented, one valid example per topic,
and the quickstart's two commands are the ones CI runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from debug_sink.settings import Settings
from debug_sink.wire.examples import EXAMPLES
from debug_sink.wire.validation import Accepted, ValidationConfig, decode

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


class TestReadme:
    """Configuration table, wire-format examples and quickstart commands match the code."""

    def test_every_setting_is_in_the_configuration_table(self) -> None:
        for name in Settings.model_fields:
            assert f"| `DEBUG_SINK_{name.upper()}` |" in README, name

    def test_one_valid_example_per_topic(self) -> None:
        blocks = re.findall(r"#### `(debug\.[a-z_]+)`\n\n```json\n(.*?)\n```", README, re.S)
        assert {topic for topic, _ in blocks} == set(EXAMPLES)
        config = ValidationConfig()
        for topic, body in blocks:
            result = decode(topic, body.encode(), timestamp_ms=0, config=config)
            assert isinstance(result, Accepted), (topic, result)
            assert json.loads(body) == EXAMPLES[topic]

    def test_ci_runs_the_quickstart_test_command(self) -> None:
        assert "./scripts/dev" in README
        assert "./scripts/test" in README
        assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()
