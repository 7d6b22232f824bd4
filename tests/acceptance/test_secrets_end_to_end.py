"""No credential an agent sends is stored, published or logged: `debug-sink run` (and the
correlator after it) as an operator runs them, on events and on invalid messages that carry
every secret of the corpus in every place a producer can put one.

The corpus (``tests/secrets_corpus.py``): ``SECRETS`` in well-known formats, each inside the
text an agent would write (``carriers()``); plain values that only their key betrays, under
every spelling of ``SECRET_KEYS`` (full-width, zero-width, Cyrillic look-alikes); and
``NOT_SECRETS``, busy-looking values that must come back unchanged.

Checked afterwards: every table of the schema, row by row as text (``t::text``; ``bytea``
columns as hex and as bytes), every message of the dead-letter topic (value, key, header
keys and values), and every line the two processes wrote.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import orjson
import pytest

from debug_sink.wire.events import EventKind
from tests import support as s
from tests.integration.sink import hostile as h
from tests.integration.sink.hostile import Record
from tests.secrets_corpus import NOT_SECRETS, SECRET_KEYS, SECRETS, carriers
from tests.support import ER, HK, SN, ST, SU, TR

pytestmark = pytest.mark.timeout(240)

#: A plain value per secret key: no format gives it away, only the key it is stored under.
KEY_ONLY: dict[str, str] = {
    key: f"kv{i}-{uuid.uuid4().hex[:16]}" for i, key in enumerate(SECRET_KEYS)
}
#: Plain values in [name, value] lists (headers as many HTTP clients list them).
PAIR_ONLY: dict[str, str] = {
    "X-Api-Key": f"pl-{uuid.uuid4().hex[:16]}",
    "Authorization": f"Token pl-{uuid.uuid4().hex[:16]}",
}
#: Keys written plainly (ASCII): a secret-named pair in text (``password=...``) is found even
#: where no JSON can be parsed.
ASCII_KEYS = [key for key in SECRET_KEYS if key.isascii()]


def _must_not_appear() -> dict[str, str]:
    """name -> a string no table, topic or log may hold."""
    found = {f"secret:{name}": value for name, value in SECRETS.items()}
    found |= {f"key-only:{key!r}": value for key, value in KEY_ONLY.items()}
    found |= {f"pair-only:{key}": value.removeprefix("Token ") for key, value in PAIR_ONLY.items()}
    return found


def _valid_events(corr: str) -> list[tuple[EventKind, dict[str, Any]]]:
    """Every secret in every field kind of every event kind: free text, names, JSON fields
    nested, header lines and [name, value] header lists, secrets written as keys."""
    texts = carriers()
    events: list[tuple[EventKind, dict[str, Any]]] = []
    header_lines = [f"Authorization: Bearer {SECRETS['bearer']}", f"X-Api-Key: {SECRETS['github']}"]
    for name, text in texts.items():
        nested = {
            "nested": {"deeper": [text, {"again": text}]},
            "header_lines": header_lines,
            "header_pairs": [[k, v] for k, v in PAIR_ONLY.items()],
            "owners": {SECRETS["anthropic"]: "alice", SECRETS["github_pat"]: "bob"},
        }
        error = s.error(
            corr,
            error_message=text,
            error_stack_trace=f'Traceback (most recent call last):\n  File "a.py"\n{text}\n',
            operation_name=f"call {name}",
            metadata=nested,
        )
        events.append((ER, error))
        snap = s.snapshot(
            corr,
            {
                "context": {"note": text},
                "tool_call": {"arguments": orjson.dumps({"note": text, "n": 1}).decode()},
                "history": [{"role": "user", "content": text}],
            },
            task_description=text,
            user_request=text,
            metadata=nested,
        )
        events.append((SN, snap))
        events.append(
            (
                ST,
                s.step(
                    corr,
                    1,
                    "started",
                    started_at=s.ts(0),
                    step_description=text,
                    input_data=[text],
                    output_data={"result": text},
                    metadata=nested,
                ),
            )
        )
        events.append((SU, s.success(corr, success_factors={"why": text}, metadata=nested)))
        events.append((TR, s.transformation(corr, reason=text, metadata=nested)))
        events.append(
            (
                HK,
                s.hook(
                    corr,
                    payload={"messages": [{"role": "user", "content": text}], "raw": text},
                    metadata=nested,
                ),
            )
        )
    # Plain values that only their (disguised) key gives away: as keys of nested objects,
    # as name/value pairs, inside a JSON string in a text field and in a JSON field.
    by_key = {"credentials": dict(KEY_ONLY), "list": [dict(KEY_ONLY)]}
    pairs = [{"name": k, "value": v} for k, v in KEY_ONLY.items()]
    as_json_text = orjson.dumps(KEY_ONLY).decode()
    events += [
        (ER, s.error(corr, error_message=as_json_text, metadata=by_key)),
        (HK, s.hook(corr, payload={"headers": pairs, "body": as_json_text}, metadata=by_key)),
        (SN, s.snapshot(corr, {"env": dict(KEY_ONLY), "args": as_json_text})),
        (ST, s.step(corr, 2, "completed", completed_at=s.ts(1), input_data=by_key)),
        # Waits for a snapshot that never comes: parked, with its secrets.
        (
            ST,
            s.step(
                corr,
                3,
                "started",
                started_at=s.ts(2),
                pre_state_snapshot_id=s.uid(),
                step_description=texts["jwt"],
                input_data=by_key,
            ),
        ),
    ]
    return events


def _invalid_records(kafka: Any, corr: str) -> list[Record]:
    """Messages that are dead letters, each carrying secrets in its bytes, key and headers."""
    texts = carriers()
    plain_pairs = " ".join(f"{key}={KEY_ONLY[key]}" for key in ASCII_KEYS)
    blob = (" | ".join(texts.values()) + " " + plain_pairs).encode()
    headers = (
        ("Authorization", f"Bearer {SECRETS['bearer']}".encode()),
        ("x-api-key", KEY_ONLY["x-api-key"].encode()),
        ("note", texts["slack"].encode()),
        ("pass\u200bword", KEY_ONLY["pass\u200bword"].encode()),
        ("trace", texts["openai"].encode()),
    )
    key = texts["github"].encode()
    nested = {"credentials": dict(KEY_ONLY), "notes": list(texts.values())}
    schema_error = s.error(
        corr, error_message=texts["aws_key_id"], error_severity="urgent", metadata=nested
    )
    too_long = s.error(corr, agent_name="a" * 300, metadata=nested)
    extra = s.error(corr, **{SECRETS["openai"]: 1, "password": KEY_ONLY["password"]})
    deep: Any = {"leaf": nested}
    for _ in range(80):
        deep = {"n": deep}
    too_deep = s.error(corr, metadata=deep)
    error_topic = s.topic(kafka, ER)
    values: list[bytes | None] = [
        b"not json at all: " + blob,
        b'{"half": "' + blob,
        orjson.dumps(schema_error),
        orjson.dumps(too_long),
        orjson.dumps(extra),
        orjson.dumps(too_deep),
        orjson.dumps([*texts.values()]),
        None,
    ]
    return [Record(error_topic, v, key=key, headers=headers) for v in values] + [
        Record(kafka.topic_prefix + "unknown", blob, key=key, headers=headers)
    ]


async def _table_texts(dsn: str) -> dict[str, list[str]]:
    """Every row of every table of the schema, as PostgreSQL writes it (bytea as hex)."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = [
            r[0]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1"
            )
        ]
        return {t: [r[0] for r in await conn.fetch(f'SELECT t::text FROM "{t}" t')] for t in tables}
    finally:
        await conn.close()


def _leaks(haystack: str | bytes, where: str) -> list[str]:
    """The secrets in ``haystack``: as text, and as the hex PostgreSQL shows bytea in."""
    found = []
    for name, secret in _must_not_appear().items():
        if isinstance(haystack, bytes):
            if secret.encode() in haystack:
                found.append(f"{name} in {where}")
        elif secret in haystack or secret.encode().hex() in haystack:
            found.append(f"{name} in {where}")
    return found


async def _run_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *s.CLI,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 150)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode("utf-8", "replace")


async def test_no_secret_is_stored_published_or_logged(db_dsn: str, kafka: Any) -> None:
    """Events carrying every secret in every field kind, and dead letters carrying them in
    their bytes, key and headers: after `debug-sink run --exit-when-idle` (debug logging, JSON)
    and `debug-sink correlate --once`, no secret is in any row of any table, in any message of
    the dead-letter topic, or in any line either process wrote; and ``NOT_SECRETS`` come
    back unchanged."""
    await s.create_topics(kafka)
    await h.create_topic(kafka.bootstrap_servers, kafka.topic_prefix + "unknown")
    corr = s.uid()
    events = _valid_events(corr)
    clean_error = s.error(corr, metadata=dict(NOT_SECRETS))
    clean_snapshot = s.snapshot(corr, {"stats": dict(NOT_SECRETS)})
    events += [(ER, clean_error), (SN, clean_snapshot)]
    secret_headers = (("Authorization", f"Bearer {SECRETS['bearer']}".encode()),)
    records = [
        Record(s.topic(kafka, kind), orjson.dumps(e), key=corr.encode(), headers=secret_headers)
        for kind, e in events
    ]
    invalid = _invalid_records(kafka, corr)
    sent = await h.produce(kafka.bootstrap_servers, records + invalid)

    env = s.sink_env(s.sink_settings(db_dsn, kafka))
    env["DEBUG_SINK_LOG_LEVEL"] = "debug"
    code, run_log = await _run_cli(env, "run", "--exit-when-idle")
    assert code == 0, run_log[-3000:]
    code, correlate_log = await _run_cli(env, "correlate", "--once", "--json")
    assert code == 0, correlate_log[-3000:]

    tables = await _table_texts(db_dsn)
    dead_letters = await h.read_outcome(db_dsn, kafka)
    dlq = [m for messages in dead_letters.dlq.values() for m in messages]
    # Not vacuous: every valid event is a row, alias or parked event; every invalid one a
    # dead letter on both channels; the sink logged its batches.
    assert len(dead_letters.dead_letters) == len(invalid)
    assert {m.origin for m in sent[len(records) :]} == set(dead_letters.dlq)
    stored = sum(len(ids) for ids in dead_letters.rows.values())
    stored += len(dead_letters.aliases) + len(dead_letters.parked)
    assert stored == len(events)
    assert len(dead_letters.parked) == 1
    assert '"event": "batch_committed"' in run_log

    leaks = []
    for table, rows in tables.items():
        for index, text in enumerate(rows):
            leaks += _leaks(text, f"{table} row {index}")
    conn = await asyncpg.connect(db_dsn)
    try:
        for r in await conn.fetch('SELECT "offset", key, value FROM sink_dead_letters'):
            leaks += _leaks((r["key"] or b"") + b"\n" + (r["value"] or b""), f"dead letter {r[0]}")
    finally:
        await conn.close()
    for m in dlq:
        leaks += _leaks(m.value or b"", f"topic value {m.offset}")
        leaks += _leaks(m.key or b"", f"topic key {m.offset}")
        for k, v in m.headers:
            leaks += _leaks(k.encode() + b"=" + (v or b""), f"topic header {k!r} {m.offset}")
    leaks += _leaks(run_log, "the sink's log")
    leaks += _leaks(correlate_log, "the correlator's log")
    assert leaks == [], "\n".join(leaks)

    conn = await asyncpg.connect(db_dsn)
    try:
        metadata = await conn.fetchval(
            "SELECT metadata FROM debug_error_events WHERE id = $1", uuid.UUID(clean_error["id"])
        )
        state = await conn.fetchval(
            "SELECT agent_state FROM debug_state_snapshots WHERE id = $1",
            uuid.UUID(clean_snapshot["id"]),
        )
    finally:
        await conn.close()
    assert orjson.loads(metadata) == NOT_SECRETS
    assert orjson.loads(state) == {"stats": NOT_SECRETS}
