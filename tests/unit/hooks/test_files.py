"""The hook's files: the spool, the session state, the known-fixes cache and its text."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from debug_sink.hooks.fixes import (
    MAX_CONTEXT_CHARS,
    UNKNOWN_TTL_S,
    hook_output,
    read_cache,
    render,
    write_cache,
)
from debug_sink.hooks.spool import Spool
from debug_sink.hooks.state import EXPIRE_DAYS, SessionStore

EVENT = {"id": "e1", "x": "y" * 100}


class TestSpool:
    """Append, read complete lines, commit after the broker acknowledged, compact, bound."""

    def test_round_trip(self, tmp_path: Path) -> None:
        spool = Spool(str(tmp_path), 1 << 20)
        assert spool.append([("hook", EVENT), ("error", {"id": "e2"})])
        lines, end = spool.read(spool.start())
        assert [json.loads(line)["kind"] for line in lines] == ["hook", "error"]
        assert end == spool.size()
        assert spool.pending_events() == 2
        spool.commit(end)
        assert spool.unshipped_bytes() == 0
        assert spool.compact()
        assert spool.size() == 0
        assert spool.start() == 0

    def test_only_complete_lines_are_read(self, tmp_path: Path) -> None:
        spool = Spool(str(tmp_path), 1 << 20)
        spool.append([("hook", EVENT)])
        with open(os.path.join(spool.directory, "events.jsonl"), "ab") as f:
            f.write(b'{"kind": "hook", "ev')  # a write cut short
        lines, end = spool.read(0)
        assert len(lines) == 1
        assert spool.read(end) == ([], end)

    def test_a_line_longer_than_the_read_chunk(self, tmp_path: Path) -> None:
        spool = Spool(str(tmp_path), 1 << 24)
        spool.append([("hook", {"id": "big", "x": "z" * 3_000_000})])
        lines, _ = spool.read(0, limit=1000)
        assert len(lines) == 1

    def test_the_bound_drops_and_counts(self, tmp_path: Path) -> None:
        spool = Spool(str(tmp_path), 400)
        assert spool.append([("hook", EVENT)])
        assert not spool.append([("hook", EVENT), ("error", EVENT)])
        assert spool.counters() == {"spool_full": 2}
        assert spool.pending_events() == 1
        spool.commit(spool.size())
        assert spool.append([("hook", EVENT)])  # shipped bytes no longer count

    def test_compact_only_when_everything_is_shipped(self, tmp_path: Path) -> None:
        spool = Spool(str(tmp_path), 1 << 20)
        spool.append([("hook", EVENT)])
        assert not spool.compact()
        assert spool.size() > 0

    def test_a_held_lock_makes_append_give_up_and_count(self, tmp_path: Path) -> None:
        spool = Spool(str(tmp_path), 1 << 20)
        spool.append([("hook", EVENT)])
        fd = os.open(os.path.join(spool.directory, "events.jsonl"), os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            assert not spool.append([("hook", EVENT)])
        finally:
            os.close(fd)
        assert spool.counters() == {"spool_busy": 1}


class TestSessionStore:
    """One process at a time per session; a stuck lock and a broken file do not stop it."""

    def test_save_and_load(self, tmp_path: Path) -> None:
        store = SessionStore(str(tmp_path))
        with store.open("s1", 1.0) as state:
            assert state is not None
            state.data["turn"] = {"n": 1}
            state.save()
        with store.open("s1", 1.0) as state:
            assert state is not None
            assert state.data["turn"] == {"n": 1}

    def test_a_held_lock_gives_none(self, tmp_path: Path) -> None:
        store = SessionStore(str(tmp_path))
        held = store.open("s1", 1.0)
        assert held is not None
        try:
            assert store.open("s1", 0.05) is None
            assert store.open("s2", 0.05) is not None
        finally:
            held.close()

    def test_a_broken_file_is_a_fresh_state(self, tmp_path: Path) -> None:
        store = SessionStore(str(tmp_path))
        os.makedirs(store.directory)
        Path(store.path("s1")).write_text('{"v": 1, "turn": ')
        with store.open("s1", 1.0) as state:
            assert state is not None
            assert state.data.keys() == {"v", "nonce"}
            assert state.data["v"] == 1

    def test_every_fresh_state_has_a_nonce_of_its_own_and_keeps_it(self, tmp_path: Path) -> None:
        store = SessionStore(str(tmp_path))
        nonces = []
        for name in ("s1", "s2"):
            with store.open(name, 1.0) as state:
                assert state is not None
                nonces.append(state.data["nonce"])
                state.save()
        with store.open("s1", 1.0) as state:
            assert state is not None
            assert state.data["nonce"] == nonces[0]
        os.unlink(store.path("s1"))  # expired, or lost
        with store.open("s1", 1.0) as state:
            assert state is not None
            nonces.append(state.data["nonce"])
        assert len(set(nonces)) == 3
        assert all(len(n) == 16 for n in nonces)

    def test_a_deeply_nested_file_is_a_fresh_state(self, tmp_path: Path) -> None:
        store = SessionStore(str(tmp_path))
        os.makedirs(store.directory)
        Path(store.path("s1")).write_text("[" * 100_000)
        with store.open("s1", 1.0) as state:
            assert state is not None
            assert state.data["v"] == 1

    def test_old_sessions_expire(self, tmp_path: Path) -> None:
        store = SessionStore(str(tmp_path))
        for name in ("old", "new"):
            with store.open(name, 1.0) as state:
                assert state is not None
                state.save()
        old = store.path("old")
        past = os.stat(old).st_mtime - (EXPIRE_DAYS + 1) * 86400
        os.utime(old, (past, past))
        assert store.expire() == 1
        assert not os.path.exists(old)
        assert os.path.exists(store.path("new"))


ROWS = [
    {
        "recovery_strategy": "retry after Read",
        "success_count": 12,
        "success_rate": 12 / 14,
        "avg_recovery_ms": 8200.0,
        "stated_count": 12,
    },
    {
        "recovery_strategy": "retry with changed input",
        "success_count": 1,
        "success_rate": 1 / 14,
        "avg_recovery_ms": 900.0,
        "stated_count": 1,
    },
]


class TestKnownFixes:
    """The context: short, ranked, with success rates; cached with a time to live."""

    def test_render(self) -> None:
        text = render("Edit: old_string not found", ROWS)
        assert text == (
            "debug-sink known fixes for `Edit: old_string not found` (seen 14 times before, "
            "recovered 13 times):\n"
            "1. retry after Read: 12/14 (86%), typically within 8 s\n"
            "2. retry with changed input: 1/14 (7%), typically within 900 ms"
        )

    def test_render_counts_in_words(self) -> None:
        once = [{"recovery_strategy": "retry unchanged", "success_count": 1, "success_rate": 1.0}]
        text = render("Bash: timeout", once)
        assert text == (
            "debug-sink known fixes for `Bash: timeout` (seen once before, recovered once):\n"
            "1. retry unchanged: 1/1 (100%)"
        )

    def test_nothing_recovered_is_no_context(self) -> None:
        assert render("X: error", []) is None
        assert render("X: error", [{**ROWS[0], "success_count": 0}]) is None

    def test_bounded(self) -> None:
        rows = [{**ROWS[0], "recovery_strategy": "s" * 2000}]
        text = render("T", rows)
        assert text is not None
        assert len(text) == MAX_CONTEXT_CHARS

    def test_output_is_claude_codes_shape(self) -> None:
        assert hook_output("PostToolUseFailure", "ctx") == {
            "hookSpecificOutput": {
                "hookEventName": "PostToolUseFailure",
                "additionalContext": "ctx",
            }
        }

    def test_cache(self, tmp_path: Path) -> None:
        d = str(tmp_path)
        assert read_cache(d, "E: x", "Edit", 100.0, 300) is None
        write_cache(d, "E: x", "Edit", ROWS, 100.0)
        rows, fresh = read_cache(d, "E: x", "Edit", 200.0, 300) or (None, False)
        assert fresh
        assert rows is not None
        assert rows[0]["recovery_strategy"] == "retry after Read"
        assert read_cache(d, "E: x", "Edit", 500.0, 300) == (rows, False)  # stale, usable
        assert read_cache(d, "E: x", "Bash", 200.0, 300) is None

    def test_the_database_could_not_say_is_short_lived(self, tmp_path: Path) -> None:
        d = str(tmp_path)
        write_cache(d, "E: x", "Edit", None, 100.0)
        assert read_cache(d, "E: x", "Edit", 101.0, 300) == (None, True)
        assert read_cache(d, "E: x", "Edit", 100.0 + UNKNOWN_TTL_S + 1, 300) is None
