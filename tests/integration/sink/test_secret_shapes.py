"""Secrets in shapes the end-to-end secrets test does not send, through one real sink run.

Each message below holds ONE secret, in a shape found by reviewing the redaction from outside:
written with JSON escapes (``\\/``, ``\\t``, ``\\n``) that the linear-time prefilter reads
as sent; a secret-named pair after a label (``login failed: password=...``); names the
prefilter once did not list (``passphrase``, ``cookies``, ``password1``); JSON inside a string
whose secret only a header's name gives away; broken JSON whose secret key holds an array,
an object or a string with an escaped quote (dead-lettered, text-scanned); a topic whose name
is a secret. Every table row, dead-letter row and topic message, the sink's log and its
``/metrics`` are searched for each secret. Only ``sink_offsets`` may name the topic: it is
where the group resumes, and must name the topic as the broker does.
"""

from __future__ import annotations

import io
from typing import Any

import asyncpg
import orjson
import pytest

from debug_sink.logs import configure_logging
from tests import support as s
from tests.integration.sink import hostile as h
from tests.integration.sink.hostile import Record
from tests.support import ER, HK

pytestmark = pytest.mark.timeout(240)

#: JSON as sent (escapes kept), each decoding to a text with one secret in it.
ESCAPED = {
    "pg-URL-pw-7f3a9c": b'"connect postgres:\\/\\/agent:pg-URL-pw-7f3a9c@db:5432\\/app"',
    "Zm9vYmFyYmF6cXV4OTg3NjU0": b'"retrying with Bearer\\tZm9vYmFyYmF6cXV4OTg3NjU0"',
    "Zm9vYmFyYmF6cXV4MTExMjIy": b'"Bearer\\nZm9vYmFyYmF6cXV4MTExMjIy"',
    "dbpw-tab-83jd92k": b'"db_password\\t=\\tdbpw-tab-83jd92k"',
    "dbpw-uesc-2k4j6h": b'"db_password\\u0009=\\u0009dbpw-uesc-2k4j6h"',
}
#: A secret-named pair after a label, in error texts and metadata.
LABELLED = {
    "lf-pw-4k5j6h7g": "login failed: password=",
    "er-ak-8f7d6s5a": "Error: api_key=",
    "env-pw-1z2x3c4v": "env: DB_PASSWORD=",
    "rt-tk-9m8n7b6v": "retry: token=",
    "cf-sc-5g6h7j8k": "config: secret=",
}
#: Pairs named the way is_secret_key recognises and the prefilter once did not.
NAMED = {
    "pp-9a8b7c6d5e": "passphrase=",
    "ss-1q2w3e4r5t": "secrets=",
    "ck-0o9i8u7y6t": "cookies=",
    "au-5t4r3e2w1q": "authorisation=",
    "p1-z1x2c3v4b5": "password1=",
}
#: JSON texts inside strings whose secret only a (disguised or header) name gives away.
JSON_TEXTS = {
    "zw-3e4r5t6y7u": {"pass\u200bword": "zw-3e4r5t6y7u"},
    "fw-8i9o0p1a2s": {"\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44": "fw-8i9o0p1a2s"},
    "nv-4d5f6g7h8j": {"headers": [{"name": "Authorization", "value": "Token nv-4d5f6g7h8j"}]},
    "ti-9k8j7h6g5f": {"headers": [["X-Api-Key", "ti-9k8j7h6g5f"]]},
}
#: Messages that are not JSON (cut), whose secret key's value is not a plain string.
BROKEN = {
    "arr-6y5t4r3e2w": b'{"error_message": "x", "password": ["arr-6y5t4r3e2w"], ',
    "obj-1a2s3d4f5g": b'{"api_key": {"primary": "obj-1a2s3d4f5g"}, "x": 1',
    "eq-7u8i9o0p1q": b'{"password": "a\\"eq-7u8i9o0p1q", ',
    "tl-2w3e4r5t6y": b'{"Authorization": ["Token tl-2w3e4r5t6y"]',
    "nest-5r6t7y8u": b'{"secret": {"a": {}, "b": ["nest-5r6t7y8u"]}, "cut',
}
TOPIC_SECRET = "sk-proj-Zq7Wx3Rt9Yp2Lm5Nb8Vc4Kd6"


def _raw_error(corr: str, raw: bytes) -> bytes:
    """An error event whose error_message and stack trace are ``raw`` JSON, escapes kept."""
    data = orjson.dumps(s.error(corr, error_message="@@m@@", error_stack_trace="@@t@@"))
    data = data.replace(b'"@@m@@"', raw).replace(b'"@@t@@"', raw)
    assert orjson.loads(data)  # still valid JSON
    return data


async def _everything(db_dsn: str, kafka: Any) -> dict[str, str]:
    """Where -> text: every row of every table but sink_offsets, every dead-letter message."""
    out: dict[str, str] = {}
    conn = await asyncpg.connect(db_dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' "
            "AND table_name <> 'sink_offsets'"
        )
        for (table,) in tables:
            for i, (text,) in enumerate(await conn.fetch(f'SELECT t::text FROM "{table}" t')):
                out[f"{table} row {i}"] = text
        for offset, key, value in await conn.fetch(
            'SELECT "offset", key, value FROM sink_dead_letters'
        ):
            out[f"sink_dead_letters bytes {offset}"] = ((key or b"") + (value or b"")).decode(
                "latin-1"
            )
    finally:
        await conn.close()
    outcome = await h.read_outcome(db_dsn, kafka)
    for messages in [*outcome.dlq.values(), outcome.dlq_without_origin]:
        for m in messages:
            data = (m.key or b"") + b"\n" + (m.value or b"")
            data += b"".join(k.encode() + b"=" + (v or b"") + b"\n" for k, v in m.headers)
            out[f"dead-letter topic offset {m.offset}"] = data.decode("latin-1")
    return out


def _leaks(secret: str, found: dict[str, str]) -> list[str]:
    return [
        f"{where}: ...{text[max(0, text.find(secret) - 60) : text.find(secret) + 40]!r}"
        for where, text in found.items()
        if secret in text
    ]


async def test_no_shape_of_secret_is_stored_published_logged_or_exported(
    db_dsn: str, kafka: Any
) -> None:
    await s.create_topics(kafka)
    secret_topic = kafka.topic_prefix + TOPIC_SECRET
    await h.create_topic(kafka.bootstrap_servers, secret_topic)
    corr = s.uid()
    errors = s.topic(kafka, ER)
    records = [Record(errors, _raw_error(corr, raw)) for raw in ESCAPED.values()]
    for secret, label in {**LABELLED, **NAMED}.items():
        text = label + secret
        event = s.error(corr, error_message=text, error_stack_trace=text, metadata={"m": text})
        records.append(Record(errors, orjson.dumps(event)))
    for obj in JSON_TEXTS.values():
        text = orjson.dumps(obj).decode()
        event = s.error(corr, error_message=text, metadata={"args": text})
        records.append(Record(errors, orjson.dumps(event)))
        records.append(
            Record(s.topic(kafka, HK), orjson.dumps(s.hook(corr, payload={"raw": text})))
        )
    records += [Record(errors, raw) for raw in BROKEN.values()]
    records.append(Record(secret_topic, orjson.dumps(s.error(s.uid()))))
    await h.produce(kafka.bootstrap_servers, records)

    log = io.StringIO()
    configure_logging("debug", "json", stream=log)
    sink = await s.run_sink(s.sink_settings(db_dsn, kafka), idle_grace=5.0)
    found = await _everything(db_dsn, kafka)
    found["log"] = log.getvalue()
    found["/metrics"] = sink.metrics.render().decode()

    # Everything arrived where it should: the events stored, the broken and the
    # unknown-topic messages dead-lettered with their topic named safely.
    conn = await asyncpg.connect(db_dsn)
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM debug_error_events WHERE correlation_id = $1", corr
        )
        letters = await conn.fetch("SELECT topic, error_class FROM sink_dead_letters")
    finally:
        await conn.close()
    assert stored == len(ESCAPED) + len(LABELLED) + len(NAMED) + len(JSON_TEXTS)
    assert sorted(c for _, c in letters) == ["not_json"] * len(BROKEN) + ["unknown_topic"]
    assert kafka.topic_prefix + "[REDACTED]" in {t for t, _ in letters}
    # A topic the settings do not name has the one shared label in the metrics.
    assert 'topic="(other)"' in found["/metrics"]

    secrets = [*ESCAPED, *LABELLED, *NAMED, *JSON_TEXTS, *BROKEN, TOPIC_SECRET]
    leaks = [leak for secret in secrets for leak in _leaks(secret, found)]
    assert leaks == [], "\n".join(leaks)
