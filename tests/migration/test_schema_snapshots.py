"""capture_state_snapshot() and debug_canonical_json(): hashing without pgcrypto, the same
canonical JSON as the sink, and one stored state per (correlation_id, state_hash) - also
under concurrency."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from debug_sink.wire import canonical
from tests import support as s

CAPTURE = "SELECT capture_state_snapshot($1, $2, $3, $4::jsonb)"

#: Ordinary agent states: what the canonical form is specified for.
CORPUS: list[Any] = [
    {},
    {"a": 1},
    {"b": 1, "a": 2, "ab": 3, "B": 4, "_": 5, "aa": 6},
    {"text": 'quote " backslash \\ slash / newline \n tab \t cr \r'},
    {"controls": "\x01\x08\x0b\x0c\x1f\x7f", "bell": "\x07"},
    {"unicode": "héllo wörld ✓ 日本語 😀", "é": "key order by code point", "z": 0, "ü": 1},
    {"ints": [0, -1, 42, 2**53, -(2**62)], "floats": [0.5, 3.14, -2.25, 100.0, 0.1, 1.5e-3]},
    {"flags": [True, False, None], "null": None, "empty": {"o": {}, "a": []}},
    {"nested": {"z": {"y": {"x": [1, [2, [3, {"w": "deep"}]]]}}, "a": [{}, [], [[]]]}},
    {"context": {"task": "write a parser", "step": 3}, "variables": {"x": 1, "y": "two"}},
    {"list_of_objects": [{"b": 2, "a": 1}, {"d": [], "c": {}}]},
    {"long": "x" * 5000, "many": {f"k{i}": i for i in range(200)}},
]


def _python_canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _python_hash(value: Any) -> str:
    return hashlib.sha256(_python_canonical(value)).hexdigest()


async def _count(conn: asyncpg.Connection, correlation_id: uuid.UUID) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM debug_state_snapshots WHERE correlation_id = $1",
            correlation_id,
        )
    )


class TestCanonicalJson:
    """debug_canonical_json() is byte-for-byte orjson.dumps(value, OPT_SORT_KEYS), and the
    stored state_hash is the Python sha256 of it (the sink's debug_sink.wire.canonical)."""

    async def test_corpus_matches_python(self, conn: asyncpg.Connection) -> None:
        """Strings with quotes, backslashes, control characters and unicode, integers,
        floats, booleans, null, nested and empty containers: same text, same hash."""
        texts = [json.dumps(value) for value in CORPUS]
        rows = await conn.fetch(
            "SELECT debug_canonical_json(t::jsonb) AS canon, "
            "encode(sha256(convert_to(debug_canonical_json(t::jsonb), 'UTF8')), 'hex') AS hash "
            "FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n",
            texts,
        )
        for value, row in zip(CORPUS, rows, strict=True):
            assert row["canon"].encode() == _python_canonical(value)
            assert row["hash"] == _python_hash(value) == canonical.state_hash(value)

    async def test_capture_stores_the_sinks_hash(self, conn: asyncpg.Connection) -> None:
        """The state_hash, state_size_bytes (bytes, not characters) and variables_count (top-
        level keys) written by capture_state_snapshot() are those the sink computes
        (defects 5 and 6)."""
        correlation_id = uuid.uuid4()
        for value in CORPUS:
            snapshot_id = await conn.fetchval(
                CAPTURE, "checkpoint", correlation_id, "agent", json.dumps(value)
            )
            row = await conn.fetchrow(
                "SELECT state_hash, state_size_bytes, variables_count "
                "FROM debug_state_snapshots WHERE id = $1",
                snapshot_id,
            )
            assert row is not None
            assert row["state_hash"] == canonical.state_hash(value)
            assert row["state_size_bytes"] == len(canonical.canonical_json(value))
            assert row["variables_count"] == len(value)

    async def test_generated_states_match_python(self, conn: asyncpg.Connection) -> None:
        """Property: for generated JSON objects (any unicode text but NUL, 64-bit integers,
        any finite float: -0.0, 1e16 and 1.5e-07 included) the SQL canonical text equals the
        sink's (:func:`debug_sink.wire.canonical.canonical_json`), which writes numbers as
        jsonb prints them: a state stored by the sink and the same state captured in SQL
        hash alike."""
        text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
        floats = st.floats(allow_nan=False, allow_infinity=False)
        scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | floats | text
        values = st.recursive(
            scalars,
            lambda children: (
                st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5)
            ),
            max_leaves=25,
        )
        samples: list[Any] = []

        @settings(
            max_examples=s.rounds(100, 1000),
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(st.dictionaries(text, values, max_size=6))
        def collect(value: dict[str, Any]) -> None:
            samples.append(value)

        collect()
        canon = await conn.fetch(
            "SELECT debug_canonical_json(t::jsonb) AS c "
            "FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n",
            [orjson.dumps(value).decode() for value in samples],
        )
        mismatches = [
            (value, row["c"])
            for value, row in zip(samples, canon, strict=True)
            if row["c"].encode() != canonical.canonical_json(value)
        ]
        assert mismatches == []
        assert any(b"e" in orjson.dumps(value) for value in samples)  # exponents were tried

    @pytest.mark.parametrize(
        "state",
        [{"usd_per_call": 1.5e-07}, {"logprob": -1.2e-07, "n": 1e16}, {"z": -0.0, "big": 1e300}],
    )
    async def test_a_state_stored_by_the_sink_is_not_captured_again(
        self, conn: asyncpg.Connection, state: dict[str, Any]
    ) -> None:
        """The sink stores the canonical bytes as jsonb and their hash; capture_state_snapshot
        of the same state in SQL finds that row (floats with an exponent included)."""
        correlation_id, snapshot_id = uuid.uuid4(), uuid.uuid4()
        data = canonical.canonical_json(state)
        await conn.execute(
            "INSERT INTO debug_state_snapshots (id, correlation_id, snapshot_type, agent_name, "
            "agent_state, state_hash, state_size_bytes, variables_count) "
            "VALUES ($1, $2, 'checkpoint', 'agent', $3::jsonb, $4, $5, $6)",
            snapshot_id,
            correlation_id,
            data.decode(),
            canonical.state_hash(state),
            len(data),
            len(state),
        )
        again = await conn.fetchval(
            CAPTURE, "checkpoint", correlation_id, "agent", orjson.dumps(state).decode()
        )
        assert again == snapshot_id
        assert await _count(conn, correlation_id) == 1

    async def test_key_order_does_not_matter(self, conn: asyncpg.Connection) -> None:
        """The same object written with its keys in another order has the same hash (jsonb
        normalises, and the canonical form sorts)."""
        hashes = await conn.fetch(
            "SELECT encode(sha256(convert_to(debug_canonical_json(t::jsonb), 'UTF8')), 'hex') h "
            "FROM unnest($1::text[]) AS t",
            ['{"b": {"y": 1, "x": [2, 1]}, "a": "1"}', '{"a":"1","b":{"x":[2,1],"y":1}}'],
        )
        assert hashes[0]["h"] == hashes[1]["h"]

    async def test_canonical_json_is_immutable_and_parallel_safe(
        self, conn: asyncpg.Connection
    ) -> None:
        """Usable in indexes and parallel plans."""
        row = await conn.fetchrow(
            "SELECT provolatile::text AS provolatile, proparallel::text AS proparallel "
            "FROM pg_proc WHERE oid = 'debug_canonical_json(jsonb)'::regprocedure"
        )
        assert row is not None
        assert (row["provolatile"], row["proparallel"]) == ("i", "s")


class TestCaptureDedupe:
    """A state is stored once per workflow; a duplicate capture returns the existing id."""

    async def test_no_pgcrypto_needed(self, conn: asyncpg.Connection) -> None:
        """The function uses the built-in sha256(), never pgcrypto's digest() (defect 5), and
        works in a database without the extension."""
        source = await conn.fetchval(
            "SELECT prosrc FROM pg_proc WHERE proname = 'capture_state_snapshot'"
        )
        assert "digest(" not in source
        # This test's own database: a server whose template has pgcrypto loses it here.
        await conn.execute("DROP EXTENSION IF EXISTS pgcrypto")
        assert not await conn.fetchval(
            "SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'"
        )
        assert await conn.fetchval(CAPTURE, "checkpoint", uuid.uuid4(), "a", '{"k": 1}')

    async def test_same_state_twice_is_one_row_with_one_id(self, conn: asyncpg.Connection) -> None:
        """Defect 9: the second capture of an identical state stores nothing and returns the
        first snapshot's id, even with another type and agent."""
        correlation_id = uuid.uuid4()
        state = json.dumps({"step": 1, "vars": {"x": [1, 2]}})
        first = await conn.fetchval(CAPTURE, "checkpoint", correlation_id, "planner", state)
        second = await conn.fetchval(CAPTURE, "error", correlation_id, "coder", state)
        assert first == second
        assert await _count(conn, correlation_id) == 1

    async def test_reordered_keys_are_the_same_state(self, conn: asyncpg.Connection) -> None:
        """Key order in the JSON text is not part of the state."""
        correlation_id = uuid.uuid4()
        first = await conn.fetchval(CAPTURE, "checkpoint", correlation_id, "a", '{"a":1,"b":2}')
        second = await conn.fetchval(CAPTURE, "checkpoint", correlation_id, "a", '{"b": 2, "a": 1}')
        assert first == second
        assert await _count(conn, correlation_id) == 1

    async def test_other_workflow_gets_its_own_row(self, conn: asyncpg.Connection) -> None:
        """The dedupe scope is one correlation_id: another workflow stores the state again."""
        state = json.dumps({"shared": True})
        first = await conn.fetchval(CAPTURE, "checkpoint", uuid.uuid4(), "a", state)
        second = await conn.fetchval(CAPTURE, "checkpoint", uuid.uuid4(), "a", state)
        assert first != second
        hashes = await conn.fetch(
            "SELECT DISTINCT state_hash FROM debug_state_snapshots WHERE id = ANY($1::uuid[])",
            [first, second],
        )
        assert len(hashes) == 1

    async def test_different_state_gets_a_new_row(self, conn: asyncpg.Connection) -> None:
        """A changed value is a new state."""
        correlation_id = uuid.uuid4()
        first = await conn.fetchval(CAPTURE, "checkpoint", correlation_id, "a", '{"n": 1}')
        second = await conn.fetchval(CAPTURE, "checkpoint", correlation_id, "a", '{"n": 2}')
        assert first != second
        assert await _count(conn, correlation_id) == 2

    async def test_unique_index_rejects_a_direct_duplicate(self, conn: asyncpg.Connection) -> None:
        """Writers that bypass the function (the sink's COPY + INSERT) hit the same rule."""
        correlation_id = uuid.uuid4()
        insert = (
            "INSERT INTO debug_state_snapshots (snapshot_type, correlation_id, agent_name, "
            "agent_state, state_hash) VALUES ('checkpoint', $1, 'a', '{}', $2)"
        )
        await conn.execute(insert, correlation_id, "h" * 64)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, correlation_id, "h" * 64)

    async def test_concurrent_captures_of_one_state_make_one_row(
        self, conn: asyncpg.Connection, db_dsn: str
    ) -> None:
        """Two sessions capture the same state at the same time: the second waits for the
        first transaction, then returns its id; one row is stored."""
        correlation_id = uuid.uuid4()
        state = json.dumps({"racing": [1, 2, 3]})
        other = await asyncpg.connect(db_dsn)
        observer = await asyncpg.connect(db_dsn)
        try:
            transaction = conn.transaction()
            await transaction.start()
            try:
                first = await conn.fetchval(CAPTURE, "checkpoint", correlation_id, "a", state)
                second_task = asyncio.create_task(
                    other.fetchval(CAPTURE, "checkpoint", correlation_id, "b", state)
                )
                # Proof that the captures overlap: the second one waits on the first's lock.
                await s.wait_until_blocked(
                    observer, other.get_server_pid(), by=conn.get_server_pid(), task=second_task
                )
                assert not second_task.done()
            except BaseException:
                await transaction.rollback()
                raise
            await transaction.commit()
            second = await asyncio.wait_for(second_task, timeout=10)
        finally:
            await observer.close()
            await other.close()
        assert first == second
        assert await _count(conn, correlation_id) == 1
