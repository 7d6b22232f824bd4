"""The hook command's small parts: ids, the error classifier, truncation, its settings."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from debug_sink.hooks import config as hook_config
from debug_sink.hooks.classify import classify
from debug_sink.hooks.config import HookConfig
from debug_sink.hooks.ids import NAMESPACE, event_id, session_uuid, subagent_workflow, uuid5
from debug_sink.hooks.truncate import MAX_PAYLOAD_BYTES, bounded, cut_text, encoded_size
from debug_sink.settings import Settings


class TestIds:
    """UUIDv5 without the uuid module, equal to it; workflows of sessions and subagents."""

    @pytest.mark.parametrize("name", ["", "a", "session\x1fx", "ünïcode ✓", "x" * 1000])
    def test_uuid5_equals_the_standard_librarys(self, name: str) -> None:
        assert uuid5(name) == str(uuid.uuid5(uuid.UUID(NAMESPACE), name))

    def test_a_uuid_session_id_is_its_own_workflow(self) -> None:
        sid = "5D3F1C2A-8B7E-4F60-9A1D-2C3B4A5E6F70"
        assert session_uuid(sid) == sid.lower()
        assert session_uuid("abc123") == session_uuid("abc123") != session_uuid("abc124")
        assert uuid.UUID(session_uuid("abc123")).version == 5

    def test_subagents_and_events_have_their_own_ids(self) -> None:
        a = subagent_workflow("s", "agent-1")
        assert a != subagent_workflow("s", "agent-2") != subagent_workflow("t", "agent-1")
        assert event_id("w", "PostToolUse", "t1") != event_id("w", "PostToolUse", "t2")


class TestClassify:
    """Error types group failures the same fix cures, never the raw message."""

    @pytest.mark.parametrize(
        ("tool", "error", "expected", "category"),
        [
            (
                "Bash",
                "Exit code 1\nFAILED tests/test_x.py (--timeout=3)",
                "Bash: exit 1",
                "external",
            ),
            ("Bash", "Command exited with non-zero status code 2", "Bash: exit 2", "external"),
            ("Bash", "Command timed out after 2m 0.0s", "Bash: timeout", "external"),
            (
                "Bash",
                "zsh: command not found: pnpm\nExit code 127",
                "Bash: command not found",
                "agent",
            ),
            ("Bash", "ls: /root: Permission denied", "Bash: permission denied", "external"),
            (
                "Edit",
                "<tool_use_error>String to replace not found in file.\nString: x</tool_use_error>",
                "Edit: old_string not found",
                "agent",
            ),
            (
                "Edit",
                "Found 3 matches of the string to replace, but replace_all is false.",
                "Edit: old_string not unique",
                "agent",
            ),
            (
                "Write",
                "File has not been read yet. Read it first before writing to it.",
                "Write: file not read first",
                "agent",
            ),
            (
                "Edit",
                "File has been modified since read, either by the user or by a linter.",
                "Edit: file changed since read",
                "agent",
            ),
            ("Read", "File does not exist.", "Read: not found", "agent"),
            (
                "Read",
                "File content (300k tokens) exceeds maximum allowed tokens",
                "Read: file too large",
                "agent",
            ),
            ("WebFetch", "Request failed with status code 404", "WebFetch: HTTP 404", "external"),
            ("WebFetch", "The operation timed out.", "WebFetch: timeout", "external"),
            (
                "WebFetch",
                "getaddrinfo ENOTFOUND example.invalid",
                "WebFetch: DNS failure",
                "external",
            ),
            (
                "mcp__github__create_issue",
                "API rate limit exceeded",
                "mcp__github__create_issue: rate limited",
                "external",
            ),
            ("Glob", "something odd", "Glob: error", "framework"),
        ],
    )
    def test_rules(self, tool: str, error: str, expected: str, category: str) -> None:
        kind = classify(tool, error)
        assert (kind.error_type, kind.category) == (expected, category)

    def test_an_interrupt_is_the_users(self) -> None:
        kind = classify("Bash", "Exit code 1", interrupted=True)
        assert (kind.error_type, kind.category, kind.severity) == (
            "Bash: interrupted",
            "user",
            "low",
        )

    def test_the_type_fits_its_column(self) -> None:
        assert len(classify("mcp__" + "x" * 400, "boom").error_type) == 255


class TestTruncate:
    """Large values are cut with a marker that says how large they were."""

    def test_short_values_are_kept(self) -> None:
        value = {"a": "b", "n": [1, 2, {"c": None}]}
        assert bounded(value) == value

    def test_long_strings_lists_and_objects(self) -> None:
        value = {
            "text": "x" * 10_000,
            "items": list(range(500)),
            "keys": {f"k{n}": n for n in range(300)},
        }
        cut = bounded(value)
        assert cut["text"] == "x" * 4096 + "…[cut by debug-sink: 10000 characters in all]"
        assert cut["items"][-1] == "…[cut by debug-sink: 500 items in all]"
        assert len(cut["items"]) == 201
        assert cut["keys"]["…"] == "[cut by debug-sink: 300 keys in all]"

    def test_deep_nesting(self) -> None:
        deep: object = "leaf"
        for _ in range(100):
            deep = {"d": deep}
        text = json.dumps(bounded(deep))
        assert "[cut by debug-sink: nested deeper]" in text

    def test_the_budget_holds_for_many_medium_strings(self) -> None:
        value = {f"f{n}": "y" * 3000 for n in range(150)}
        cut = bounded(value)
        assert encoded_size(cut) <= MAX_PAYLOAD_BYTES
        assert len(cut) == 150

    def test_cut_text(self) -> None:
        assert cut_text("abc", 3) == "abc"
        assert cut_text("abcd", 3) == "abc…[cut by debug-sink: 4 characters in all]"


class TestHookConfig:
    """The hook's fast settings reader agrees with the Settings model."""

    def test_names_and_defaults_are_the_settings_fields(self) -> None:
        fields = {n: f for n, f in Settings.model_fields.items() if n.startswith("hook_")}
        assert set(fields) == set(hook_config.DEFAULTS)
        for name, default in hook_config.DEFAULTS.items():
            assert fields[name].default == default, name

    def test_bounds_are_the_settings_bounds(self) -> None:
        for name, (low, high) in hook_config.BOUNDS.items():
            metadata = Settings.model_fields[name].metadata
            assert any(getattr(m, "ge", None) == low for m in metadata), name
            assert any(getattr(m, "le", None) == high for m in metadata), name

    def test_defaults(self, tmp_path: Path) -> None:
        config = HookConfig.from_environ({"HOME": str(tmp_path)})
        assert config.directory == str(tmp_path / ".local/state/debug-sink/hooks")
        assert config.context is True
        assert config.context_budget_ms == 60
        assert config.problems == ()
        xdg = HookConfig.from_environ({"XDG_STATE_HOME": str(tmp_path / "s")})
        assert xdg.directory == str(tmp_path / "s/debug-sink/hooks")

    def test_values_and_bad_values(self, tmp_path: Path) -> None:
        config = HookConfig.from_environ(
            {
                "DEBUG_SINK_HOOK_DIR": str(tmp_path),
                "DEBUG_SINK_HOOK_CONTEXT": "off",
                "DEBUG_SINK_HOOK_CONTEXT_BUDGET_MS": "abc",
                "DEBUG_SINK_HOOK_SPOOL_MAX_BYTES": "10",
                "DEBUG_SINK_HOOK_IDLE_SECONDS": "5",
            }
        )
        assert config.directory == str(tmp_path)
        assert config.context is False
        assert config.context_budget_ms == 60
        assert config.spool_max_bytes == 64 * 1024 * 1024
        assert config.idle_seconds == 5
        assert len(config.problems) == 2
        assert "DEBUG_SINK_HOOK_CONTEXT_BUDGET_MS='abc' is not a number" in config.problems

    def test_pydantic_agrees_on_booleans(self) -> None:
        for text in ("1", "true", "YES", "on", "0", "False", "no", "off"):
            ours = HookConfig.from_environ({"DEBUG_SINK_HOOK_CONTEXT": text}).context
            assert Settings(hook_context=text).hook_context is ours, text
