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


def python_example() -> str:
    """The README's one Python block: the agent example."""
    (block,) = re.findall(r"```python\n(.*?)\n```", README, re.S)
    return block


class TestReadmeForNewcomers:
    """The README stands on its own: a runnable example, every read command's output shown."""

    def test_the_sdk_example_is_a_script(self) -> None:
        """It compiles as a module (no top-level await) and runs itself with asyncio.run."""
        import ast

        tree = ast.parse(python_example())
        assert "asyncio.run(main())" in python_example()
        assert any(isinstance(node, ast.AsyncFunctionDef) for node in tree.body)
        compile(python_example(), "agent.py", "exec")

    def test_every_read_command_is_shown_with_its_output(self) -> None:
        for command in (
            "workflows",
            "show",
            "errors",
            "patterns",
            "known-fixes",
            "dead-letters list",
        ):
            assert re.search(rf"^\$ debug-sink {command}\b.*\n\S", README, re.M), command

    def test_no_reference_to_documents_the_reader_never_saw(self) -> None:
        for phrase in ("user's documents", "quickstart's queries", 'the schema of "migration'):
            assert phrase not in README, phrase
