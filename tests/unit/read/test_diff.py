"""Structural diffs of agent states (debug_sink.read.diff)."""

from __future__ import annotations

import pytest

from debug_sink.read.diff import Change, diff_json, format_path


class TestDiffJson:
    """diff_json reports every added, removed and changed key, at any depth, sorted."""

    def test_equal_states_have_no_changes(self) -> None:
        """Equal states, whatever their key order, give an empty (falsy) diff."""
        a = {"x": 1, "nested": {"list": [1, {"k": "v"}], "b": True}}
        b = {"nested": {"b": True, "list": [1, {"k": "v"}]}, "x": 1}
        diff = diff_json(a, b)
        assert not diff
        assert len(diff) == 0

    def test_nested_added_removed_changed(self) -> None:
        """Keys are compared at every depth; each change carries its path and values."""
        before = {
            "task": "review",
            "ctx": {"repo": "acme", "retries": 0, "llm": {"model": "a", "max_tokens": 10}},
        }
        after = {
            "task": "review",
            "ctx": {"repo": "acme", "retries": 1, "branch": "main", "llm": {"model": "b"}},
        }
        diff = diff_json(before, after)
        assert diff.changes == (
            Change("added", ("ctx", "branch"), None, "main"),
            Change("removed", ("ctx", "llm", "max_tokens"), 10, None),
            Change("changed", ("ctx", "llm", "model"), "a", "b"),
            Change("changed", ("ctx", "retries"), 0, 1),
        )
        assert [c.where for c in diff.added] == ["ctx.branch"]
        assert [c.where for c in diff.removed] == ["ctx.llm.max_tokens"]
        assert [c.where for c in diff.changed] == ["ctx.llm.model", "ctx.retries"]

    def test_arrays_index_by_index(self) -> None:
        """Arrays are compared per index; extra elements are added or removed at theirs."""
        diff = diff_json({"files": ["a", {"n": 1}, "c"]}, {"files": ["a", {"n": 2}]})
        assert [(c.op, c.where) for c in diff] == [
            ("changed", "files[1].n"),
            ("removed", "files[2]"),
        ]
        diff = diff_json({"files": []}, {"files": ["x", "y"]})
        assert [(c.op, c.where, c.after) for c in diff] == [
            ("added", "files[0]", "x"),
            ("added", "files[1]", "y"),
        ]

    def test_type_change_is_one_change(self) -> None:
        """An object replaced by a scalar (or an array) is one change, not a walk inside."""
        diff = diff_json({"a": {"b": 1}}, {"a": [1]})
        assert diff.changes == (Change("changed", ("a",), {"b": 1}, [1]),)

    @pytest.mark.parametrize(
        ("a", "b", "equal"),
        [
            (1, 1.0, True),
            (1, True, False),
            (0, False, False),
            ("1", 1, False),
            (None, None, True),
            (None, 0, False),
            (2.5, 2.5, True),
        ],
    )
    def test_scalars_compare_as_json(self, a: object, b: object, equal: bool) -> None:
        """Numbers compare by value; booleans, strings and null are distinct types."""
        assert (not diff_json({"v": a}, {"v": b})) is equal

    def test_order_is_deterministic(self) -> None:
        """Changes come out sorted by key whatever the insertion order of the dicts."""
        a = {"z": 1, "a": 1, "m": {"y": 1, "b": 1}}
        b = {"m": {"b": 2, "y": 2}, "a": 2, "z": 2}
        assert [c.where for c in diff_json(a, b)] == ["a", "m.b", "m.y", "z"]

    def test_as_dict(self) -> None:
        """The JSON form groups changes by kind, paths as text."""
        diff = diff_json({"a": 1, "gone": True}, {"a": 2, "new": [1]})
        assert diff.as_dict() == {
            "added": [{"op": "added", "path": "new", "after": [1]}],
            "removed": [{"op": "removed", "path": "gone", "before": True}],
            "changed": [{"op": "changed", "path": "a", "before": 1, "after": 2}],
        }


class TestFormatPath:
    """Paths render like a JSON path, quoting keys that are not identifiers."""

    @pytest.mark.parametrize(
        ("path", "text"),
        [
            ((), "$"),
            (("a",), "a"),
            (("a", "b", 2), "a.b[2]"),
            ((0, "x"), "[0].x"),
            (("headers", "x-api-key"), 'headers["x-api-key"]'),
        ],
    )
    def test_format(self, path: tuple[str | int, ...], text: str) -> None:
        assert format_path(path) == text
