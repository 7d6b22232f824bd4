"""Recorded Claude Code hook inputs: one session that goes through every documented hook event.

Written from the public field lists of Claude Code's hooks reference (common fields
``session_id``, ``transcript_path``, ``cwd``, ``permission_mode``, ``hook_event_name``; per event
the fields below; ``agent_id``/``agent_type`` on events from inside a subagent). The session:
a start, a prompt, a large file read, an Edit that fails and succeeds after the file is read
again, a Bash command that fails and succeeds changed, a permission request and notification,
a subagent (Explore) whose Grep fails then succeeds, an interrupted Bash, the end of the turn,
a second prompt with a compaction, the end of the session.
"""

from __future__ import annotations

from typing import Any

#: Characters of the large Read response (Claude Code can return far more).
LARGE_RESPONSE_CHARS = 300_000
SUBAGENT_ID = "a7f3c9e1b2d4"


def session(session_id: str, *, project: str = "/home/dev/shop") -> list[dict[str, Any]]:
    """The inputs of one session, in the order Claude Code sends them."""
    transcript = f"/home/dev/.claude/projects/-home-dev-shop/{session_id}.jsonl"

    def common(event: str, **fields: Any) -> dict[str, Any]:
        return {
            "session_id": session_id,
            "transcript_path": transcript,
            "cwd": project,
            "permission_mode": "default",
            "hook_event_name": event,
            **fields,
        }

    def tool(event: str, name: str, use: str, tool_input: dict[str, Any], **fields: Any) -> Any:
        return common(event, tool_name=name, tool_input=tool_input, tool_use_id=use, **fields)

    big = "".join(f"{n:6d}\tline {n} of models.py\n" for n in range(1, 20_000))[
        :LARGE_RESPONSE_CHARS
    ]
    edit_input = {
        "file_path": f"{project}/src/models.py",
        "old_string": "def total(self):\n    return sum(self.items)",
        "new_string": "def total(self):\n    return sum(i.price for i in self.items)",
    }
    inside = {"agent_id": SUBAGENT_ID, "agent_type": "Explore"}
    return [
        common("SessionStart", source="startup", model="claude-sonnet-4-5"),
        common("UserPromptSubmit", prompt="Fix the cart total: it sums items, not prices."),
        tool("PreToolUse", "Read", "toolu_01", {"file_path": f"{project}/src/models.py"}),
        tool(
            "PostToolUse",
            "Read",
            "toolu_01",
            {"file_path": f"{project}/src/models.py"},
            tool_response={
                "type": "text",
                "file": {
                    "filePath": f"{project}/src/models.py",
                    "content": big,
                    "numLines": 19999,
                    "startLine": 1,
                    "totalLines": 19999,
                },
            },
        ),
        tool("PreToolUse", "Edit", "toolu_02", edit_input),
        tool(
            "PostToolUseFailure",
            "Edit",
            "toolu_02",
            edit_input,
            error="<tool_use_error>String to replace not found in file.\nString: def total(self):"
            "\n    return sum(self.items)</tool_use_error>",
            is_interrupt=False,
        ),
        tool("PreToolUse", "Read", "toolu_03", {"file_path": f"{project}/src/models.py"}),
        tool(
            "PostToolUse",
            "Read",
            "toolu_03",
            {"file_path": f"{project}/src/models.py", "offset": 40, "limit": 20},
            tool_response={"type": "text", "file": {"content": "    def total(self) -> int:"}},
        ),
        tool("PreToolUse", "Edit", "toolu_04", {**edit_input, "old_string": "def total(self) ->"}),
        tool(
            "PostToolUse",
            "Edit",
            "toolu_04",
            {**edit_input, "old_string": "def total(self) ->"},
            tool_response={"filePath": f"{project}/src/models.py", "structuredPatch": []},
        ),
        tool("PreToolUse", "Bash", "toolu_05", {"command": "pytest -q tests/test_cart.py"}),
        tool(
            "PostToolUseFailure",
            "Bash",
            "toolu_05",
            {"command": "pytest -q tests/test_cart.py"},
            error="Exit code 1\nF.\nFAILED tests/test_cart.py::test_total - assert 3 == 30\n"
            "export STRIPE_KEY=sk_live_51HcJzKLmNoPqRsTuVwXyZ0123456789abcdEFGH",
            is_interrupt=False,
        ),
        common(
            "PermissionRequest",
            tool_name="Bash",
            tool_input={"command": "pytest -q tests/test_cart.py -k total"},
            permission_suggestions=[{"type": "addRules", "behavior": "allow"}],
        ),
        common(
            "Notification",
            message="Claude needs your permission to use Bash",
            notification_type="permission_prompt",
        ),
        tool(
            "PreToolUse", "Bash", "toolu_06", {"command": "pytest -q tests/test_cart.py -k total"}
        ),
        tool(
            "PostToolUse",
            "Bash",
            "toolu_06",
            {"command": "pytest -q tests/test_cart.py -k total"},
            tool_response={"stdout": "1 passed", "stderr": "", "interrupted": False},
        ),
        common("SubagentStart", **inside),
        tool("PreToolUse", "Grep", "toolu_07", {"pattern": "total", "path": "srcs/"}, **inside),
        tool(
            "PostToolUseFailure",
            "Grep",
            "toolu_07",
            {"pattern": "total", "path": "srcs/"},
            error="Path does not exist: srcs/",
            **inside,
        ),
        tool("PreToolUse", "Grep", "toolu_08", {"pattern": "total", "path": "src/"}, **inside),
        tool(
            "PostToolUse",
            "Grep",
            "toolu_08",
            {"pattern": "total", "path": "src/"},
            tool_response={"filenames": ["src/models.py"], "numFiles": 1},
            **inside,
        ),
        common(
            "SubagentStop",
            stop_hook_active=False,
            agent_transcript_path=f"/home/dev/.claude/projects/x/agent-{SUBAGENT_ID}.jsonl",
            **inside,
        ),
        tool("PreToolUse", "Bash", "toolu_09", {"command": "npm run build"}),
        tool(
            "PostToolUseFailure",
            "Bash",
            "toolu_09",
            {"command": "npm run build"},
            error="The user doesn't want to proceed with this tool use.",
            is_interrupt=True,
        ),
        common(
            "Stop",
            stop_hook_active=False,
            last_assistant_message="The cart total now sums the prices; the test passes.",
        ),
        common("UserPromptSubmit", prompt="Thanks. Now summarise what changed."),
        common("PreCompact", trigger="manual", custom_instructions=""),
        common("Stop", stop_hook_active=False, last_assistant_message="I changed total()."),
        common("SessionEnd", reason="prompt_input_exit"),
    ]


def event_names(inputs: list[dict[str, Any]]) -> set[str]:
    return {i["hook_event_name"] for i in inputs}


#: Every hook event the recorded session covers.
DOCUMENTED_EVENTS = frozenset(
    {
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PermissionRequest",
        "PostToolUse",
        "PostToolUseFailure",
        "Notification",
        "SubagentStart",
        "SubagentStop",
        "PreCompact",
        "Stop",
        "SessionEnd",
    }
)


def failure(
    session_id: str, tool_use_id: str, *, tool: str = "Edit", error: str = ""
) -> dict[str, Any]:
    """One PostToolUseFailure input."""
    return {
        "session_id": session_id,
        "transcript_path": f"/tmp/{session_id}.jsonl",
        "cwd": "/home/dev/shop",
        "permission_mode": "default",
        "hook_event_name": "PostToolUseFailure",
        "tool_name": tool,
        "tool_input": {"file_path": "/home/dev/shop/a.py", "old_string": "x", "new_string": "y"},
        "tool_use_id": tool_use_id,
        "error": error or "String to replace not found in file.",
    }


def success(
    session_id: str, tool_use_id: str, *, tool: str = "Edit", **fields: Any
) -> dict[str, Any]:
    """One PostToolUse input."""
    return {
        "session_id": session_id,
        "transcript_path": f"/tmp/{session_id}.jsonl",
        "cwd": "/home/dev/shop",
        "permission_mode": "default",
        "hook_event_name": "PostToolUse",
        "tool_name": tool,
        "tool_input": fields.pop("tool_input", {"file_path": "/home/dev/shop/a.py"}),
        "tool_response": fields.pop("tool_response", {"ok": True}),
        "tool_use_id": tool_use_id,
        **fields,
    }
