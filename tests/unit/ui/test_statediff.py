"""A state diff as the workflow page's tree (debug_sink.ui.statediff)."""

from __future__ import annotations

from debug_sink.read.diff import diff_json
from debug_sink.ui.statediff import MAX_VALUE_CHARS, DiffRow, diff_rows, json_text


class TestDiffRows:
    """Each key on the way to a change is a heading once, at its depth; then the change."""

    def test_nested_tree(self) -> None:
        before = {"context": {"branch": "main", "files": ["a.py", "b.py"]}, "n": 1}
        after = {"context": {"branch": "fix", "files": ["a.py", "b.py", "api.py"]}}
        rows = diff_rows(diff_json(before, after).changes)
        assert rows == [
            DiffRow(0, "context"),
            DiffRow(1, "branch", "changed", '"main"', '"fix"', "context.branch"),
            DiffRow(1, "files"),
            DiffRow(2, "[2]", "added", None, '"api.py"', "context.files[2]"),
            DiffRow(0, "n", "removed", "1", None, "n"),
        ]

    def test_whole_state_replaced(self) -> None:
        (row,) = diff_rows(diff_json([1], {"a": 1}).changes)
        assert (row.key, row.op) == ("(the whole state)", "changed")


class TestJsonText:
    def test_long_values_are_cut_and_say_so(self) -> None:
        text = json_text("x" * (MAX_VALUE_CHARS * 2))
        assert len(text) < MAX_VALUE_CHARS + 40
        assert text.endswith(f"({MAX_VALUE_CHARS * 2 + 2:,} characters)")

    def test_not_json_values_as_text(self) -> None:
        assert json_text({"when": object}).startswith('{"when":"<class')
