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
    """The README's agent example: its Python block that runs itself."""
    (block,) = [
        b for b in re.findall(r"```python\n(.*?)\n```", README, re.S) if "asyncio.run(" in b
    ]
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


def section(title: str) -> str:
    """The README's text from the heading ``title`` to the next heading of its level."""
    heading = re.search(rf"^(#+) {re.escape(title)}\n", README, re.M)
    assert heading is not None, title
    level = len(heading.group(1))
    rest = README[heading.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def table_rows(text: str) -> list[list[str]]:
    """The cells of the data rows of the first Markdown table in ``text``."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


class TestClaudeCodeSection:
    """The Claude Code section is the command's truth: the settings block it prints, the
    classifier's types, the exact context JSON, settings that exist."""

    def test_the_settings_snippet_is_what_the_command_prints(self) -> None:
        from debug_sink.cli.app import make_parser
        from debug_sink.hooks.admin import settings_block

        (block,) = re.findall(r"```json\n(.*?)\n```", section("Set it up"), re.S)
        snippet = json.loads(block)
        assert snippet["hooks"] == settings_block()["hooks"]
        for name in snippet["env"]:
            assert name.removeprefix("DEBUG_SINK_").lower() in Settings.model_fields, name
        # The command's words: the console script, then one of its commands.
        (command,) = {h["command"] for e in snippet["hooks"].values() for h in e[0]["hooks"]}
        program, subcommand = command.split()
        assert f"\n{program} = " in (ROOT / "pyproject.toml").read_text()
        parser = make_parser()
        (commands,) = [a for a in parser._actions if a.dest == "command"]
        assert subcommand in commands.choices  # type: ignore[operator]

    def test_every_setting_named_exists(self) -> None:
        text = section("Claude Code: hooks instead of code")
        for name in set(re.findall(r"DEBUG_SINK_[A-Z_]+", text)):
            assert name.removeprefix("DEBUG_SINK_").lower() in Settings.model_fields, name

    def test_the_recorded_table_covers_every_registered_event(self) -> None:
        from debug_sink.hooks.admin import HOOK_EVENTS

        table = " ".join(row[0] for row in table_rows(section("What gets recorded")))
        for event in HOOK_EVENTS:
            assert f"`{event}`" in table, event

    def test_the_classifier_table_is_what_the_classifier_says(self) -> None:
        from debug_sink.hooks.classify import classify

        rows = table_rows(section("Error types"))
        assert len(rows) >= 20
        for tool_cell, text_cell, type_cell in rows:
            (expected,) = re.findall(r"`([^`]+)`", type_cell)
            tool = expected.split(":")[0]
            assert (
                tool.split("__")[0] in tool_cell
                or tool_cell == "any tool"
                or (tool_cell.startswith("any tool,"))
            ), (tool_cell, expected)
            examples = re.findall(r"`([^`]+)`", text_cell) or [text_cell]
            interrupted = "is_interrupt: true" in tool_cell
            got = classify(tool, "\n".join(examples), interrupted=interrupted)
            assert got.error_type == expected, (text_cell, got.error_type)

    def test_the_context_example_is_exactly_what_the_hook_prints(self) -> None:
        from debug_sink.hooks.fixes import hook_output, render

        (block,) = re.findall(
            r"```json\n(.*?)\n```", section("Known fixes, told to the failing tool"), re.S
        )
        rows = [
            {
                "recovery_strategy": "retry after Read",
                "success_count": 12,
                "success_rate": 12 / 14,
                "avg_recovery_ms": 8000.0,
            },
            {
                "recovery_strategy": "retry with changed input",
                "success_count": 1,
                "success_rate": 1 / 14,
                "avg_recovery_ms": 900.0,
            },
        ]
        context = render("Edit: old_string not found", rows)
        assert context is not None
        assert json.loads(block) == hook_output("PostToolUseFailure", context)

    def test_the_agent_sdk_example_compiles(self) -> None:
        (block,) = re.findall(
            r"```python\n(.*?)\n```", section("From a Python agent (Claude Agent SDK)"), re.S
        )
        compile(block, "agent.py", "exec")
        assert "DebugSinkHooks().register(" in block
