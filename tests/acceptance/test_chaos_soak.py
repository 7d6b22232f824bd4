"""A chaos soak: what the fault tests check one at a time, all at once.

A foreign producer (confluent-kafka / librdkafka; hand-built record batches where librdkafka
cannot express a record) sends, over several topics and partitions, with every compression
codec: valid events of every kind (snapshot duplicates, re-sent errors, steps sent as several
updates of one id, children whose parents arrive in a later phase), secret-bearing events,
and hostile records (not JSON, wrong schema, tombstones, empty and huge values, NUL, odd and
non-UTF-8 headers, null keys, record timestamps 0 / negative / far future, an unknown topic).
Meanwhile `debug-sink run` is SIGKILLed at random moments and restarted, the writer's
PostgreSQL connections are terminated (`pg_terminate_backend`) mid-drain, and PostgreSQL
itself is restarted mid-drain. Then the end state is checked exactly: every distinct valid
event one row (folded steps with their final content, duplicate snapshots as aliases,
references resolved), every hostile record one dead letter with its class and a reason (and
on the dead-letter topic), nothing parked, stored offsets at the end of every partition, and
no secret anywhere -- every table, the dead-letter topic, the sink's logs.

Opt-in (``slow``): ``./scripts/test tests/acceptance/test_chaos_soak.py -m slow``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import confluent_kafka
import orjson
import pytest

from debug_sink.db.migrate import migrate_up
from debug_sink.dev.embedded import EmbeddedPostgres
from debug_sink.sink.deadletters import DLQ_HEADERS, TRUNCATED_HEADER
from debug_sink.wire.events import EventKind
from tests import support as s
from tests.acceptance.test_sink_faults import SinkProcess, budget
from tests.conftest import EMBEDDED_PG_SETTINGS
from tests.integration.sink import hostile as h
from tests.secrets_corpus import SECRETS
from tests.support import (
    ER,
    HK,
    SN,
    ST,
    SU,
    TR,
    tmp_path_outside_basetemp,  # noqa: F401 (this module's tmp_path)
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PARTITIONS = 3
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
#: Secrets planted in valid and hostile records; none may be stored, sent on or logged.
PASSWORD = "hunter2"
API_KEY = SECRETS["openai"]
BEARER = SECRETS["bearer"]
GITHUB = SECRETS["github"]
PLANTED = (PASSWORD, API_KEY, BEARER, GITHUB)
T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
FAR_FUTURE_MS = 10**15


def _iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


@dataclass
class Out:
    """One record to send. ``raw``: sent in a hand-built batch (librdkafka cannot express
    it: a record timestamp <= 0, a header key that is not UTF-8, neither key nor value)."""

    topic: str
    value: bytes | None
    key: bytes | None
    codec: str = "none"
    headers: list[tuple[str | bytes, bytes | None]] = field(default_factory=list)
    timestamp_ms: int | None = None
    raw: bool = False
    expect: str | None = None  # the dead letter's error_class; None: a valid event
    label: str = ""
    # where it landed
    partition: int = -1
    offset: int = -1


@dataclass
class Plan:
    phases: list[list[Out]]
    rows: dict[str, dict[str, dict[str, Any]]]  # table -> id -> expected columns
    aliases: dict[str, str]  # dropped duplicate snapshot id -> kept id
    unknown_topic: str


def _json(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def _plan(kafka: Any, seed: int, workflows: int) -> Plan:
    rng = random.Random(seed)
    t = {k: s.topic(kafka, k) for k in EventKind}
    rows: dict[str, dict[str, dict[str, Any]]] = {table: {} for table in s.EVENT_TABLES}
    aliases: dict[str, str] = {}
    early: list[Out] = []
    late: list[Out] = []
    final: list[Out] = []

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    odd_headers: list[tuple[str | bytes, bytes | None]] = [
        ("trace", b"\xff\xfe\x00bin"),
        ("trace", b"again"),
        ("empty", None),
    ]
    for w in range(workflows):
        corr = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        key = corr.encode()
        codec = CODECS[w % len(CODECS)]
        parked = w % 9 == 4  # its parents are sent in a later phase
        out: list[Out] = []

        def send(
            kind: EventKind,
            body: dict[str, Any],
            *,
            to: list[Out] | None = None,
            key: bytes | None = key,
            codec: str = codec,
            **extra: Any,
        ) -> None:
            (out if to is None else to).append(  # noqa: B023
                Out(t[kind], _json(body), key, codec, label=f"w{w} {kind.value}", **extra)  # noqa: B023
            )

        states = [
            {"workflow": w, "checkpoint": k, "password": PASSWORD, "note": f"seed {seed}"}
            for k in range(3)
        ]
        snaps = [
            s.snapshot(corr, st, id=new_id(), captured_at=_iso(k)) for k, st in enumerate(states)
        ]
        for snap in snaps:
            send(SN, snap)
            rows["debug_state_snapshots"][snap["id"]] = {
                "agent_state": {**snap["agent_state"], "password": "[REDACTED]"}
            }
        dup = s.snapshot(corr, dict(states[0]), id=new_id(), captured_at=_iso(5))
        send(SN, dup)
        aliases[dup["id"]] = snaps[0]["id"]
        err = s.error(
            corr,
            id=new_id(),
            state_snapshot_id=dup["id"],
            error_message=f"OpenAI call failed with key {API_KEY}",
        )
        send(ER, err)
        send(ER, err)  # an exact re-send
        rows["debug_error_events"][err["id"]] = {"state_snapshot_id": snaps[0]["id"]}
        ok = s.success(
            corr,
            id=new_id(),
            state_snapshot_id=snaps[2]["id"],
            quality_score=0.5,
            recovers_error_ids=[err["id"]],
        )
        send(SU, ok, key=None if w % 4 == 0 else key)
        rows["debug_success_events"][ok["id"]] = {"state_snapshot_id": snaps[2]["id"]}
        tr = s.transformation(corr, id=new_id(), state_snapshot_id=snaps[0]["id"])
        send(TR, tr, key=None if w % 4 == 1 else key, headers=list(odd_headers))
        rows["agent_transformation_events"][tr["id"]] = {"state_snapshot_id": snaps[0]["id"]}

        # A step sent as three updates of one id: started, started again, completed.
        sid = new_id()
        start = s.step(
            corr,
            1,
            "started",
            id=sid,
            started_at=_iso(10),
            input_data={"q": w},
            step_description="starting",
        )
        end = s.step(
            corr,
            1,
            "completed",
            id=sid,
            completed_at=_iso(12.5),
            output_data={"a": w},
            step_description=f"called with Authorization: Bearer {BEARER}",
        )
        updates = [start, start, end] if rng.random() < 0.6 else [end, start, start]
        for body in updates:
            send(ST, body)
        rows["debug_workflow_steps"][sid] = {
            "status": "completed",
            "started_at": T0 + timedelta(seconds=10),
            "completed_at": T0 + timedelta(seconds=12.5),
            "duration_ms": 2500,
            "input_data": {"q": w},
            "output_data": {"a": w},
            "error_event_id": None,
            "step_description": "called with Authorization: ",  # a prefix
        }
        # A failed step naming the error.
        sid2 = new_id()
        fail = s.step(
            corr, 2, "failed", id=sid2, completed_at=_iso(14), error_event_id=err["id"], attempt=2
        )
        send(ST, s.step(corr, 2, "started", id=sid2, started_at=_iso(13)))
        send(ST, fail)
        rows["debug_workflow_steps"][sid2] = {
            "status": "failed",
            "error_event_id": err["id"],
            "attempt": 2,
            "duration_ms": 1000,
        }
        for n in range(2):
            hk = s.hook(corr, id=new_id(), payload={"api_key": GITHUB, "n": n, "w": w})
            rows["hook_events"][hk["id"]] = {}
            if n == 1 and w % 5 == 0:
                # Record timestamps librdkafka cannot send: the epoch, before it, far future.
                stamp = (0, -7, FAR_FUTURE_MS)[(w // 5) % 3]
                send(HK, hk, raw=True, timestamp_ms=stamp, headers=[(b"\xc3\x28k", b"v")])
            else:
                send(HK, hk, headers=list(odd_headers) if n else [])

        if parked:
            # Children sent now, their parents (a snapshot, an error) only in the next phase.
            p_snap = s.snapshot(corr, {"late": w}, id=new_id(), captured_at=_iso(20))
            p_err = s.error(corr, id=new_id(), state_snapshot_id=p_snap["id"], occurred_at=_iso(21))
            c_err = s.error(corr, id=new_id(), state_snapshot_id=p_snap["id"])
            c_step = s.step(
                corr, 3, "failed", id=new_id(), completed_at=_iso(22), error_event_id=p_err["id"]
            )
            c_tr = s.transformation(corr, id=new_id(), state_snapshot_id=p_snap["id"])
            for kind, body in ((ER, c_err), (ST, c_step), (TR, c_tr)):
                send(kind, body)
            send(SN, p_snap, to=late)
            send(ER, p_err, to=late)
            rows["debug_state_snapshots"][p_snap["id"]] = {}
            rows["debug_error_events"][p_err["id"]] = {"state_snapshot_id": p_snap["id"]}
            rows["debug_error_events"][c_err["id"]] = {"state_snapshot_id": p_snap["id"]}
            rows["debug_workflow_steps"][c_step["id"]] = {
                "status": "failed",
                "error_event_id": p_err["id"],
            }
            rows["agent_transformation_events"][c_tr["id"]] = {"state_snapshot_id": p_snap["id"]}
        if w % 7 == 3:
            # Re-sent at the very end, after every crash: no-ops.
            final.extend(
                Out(o.topic, o.value, o.key, o.codec, list(o.headers), label=o.label + " resend")
                for o in out
                if not o.raw
            )
        if w % 11 == 2:
            # At the very end: the same ids with other content, from this workflow and from
            # another one -- the first stored wins, another workflow's step changes nothing.
            other = s.uid()
            changed = {**err, "error_message": "a different copy", "error_severity": "low"}
            impostor = {**end, "correlation_id": other, "status": "failed", "attempt": 9}
            for kind, body in ((ER, changed), (ST, impostor)):
                send(kind, body, to=final)
            rows["debug_error_events"][err["id"]]["error_severity"] = "high"
            rows["debug_workflow_steps"][sid]["correlation_id"] = corr
            rows["debug_workflow_steps"][sid]["attempt"] = 1
        (early if w % 3 else late if w % 6 == 0 else early).extend(out)

    unknown = kafka.topic_prefix + "unknown_things"
    hostile = _hostile(kafka, t, unknown, rng)
    rng.shuffle(hostile)
    third = len(hostile) // 3
    # Hostile records among the events of each phase.
    for phase, part in (
        (early, hostile[:third]),
        (late, hostile[third : 2 * third]),
        (final, hostile[2 * third :]),
    ):
        for o in part:
            phase.insert(rng.randrange(len(phase) + 1), o)
    return Plan([early, late, final], rows, aliases, unknown)


def _hostile(kafka: Any, t: dict[EventKind, str], unknown: str, rng: random.Random) -> list[Out]:
    corr = s.uid()

    def h_(topic: str, value: bytes | None, expect: str, label: str, **extra: Any) -> Out:
        extra.setdefault("key", rng.choice([None, corr.encode(), b"\xff\x00key"]))
        extra.setdefault("codec", rng.choice(CODECS))
        return Out(topic, value, expect=expect, label=label, **extra)

    bad_severity = s.error(corr, error_severity="apocalyptic")
    extra_field = s.error(corr, error_message=f"key {API_KEY} leaked", surprise=1)
    nul = s.snapshot(corr, {"a": 1}, agent_name="pl\u0000anner")
    huge_state = s.snapshot(corr, {"blob": "y" * 1_200_000, "password": PASSWORD})
    year_10000 = s.error(corr, occurred_at="10000-01-01T00:00:00+00:00")
    v2 = {**s.hook(corr), "schema_version": 2}
    long_name = s.error(corr, agent_name="a" * 300)
    deep = b'{"n":' * 99 + b"{}" + b"}" * 99
    deep_event = _json(s.snapshot(corr, {}))[:-1] + b',"agent_state":' + deep + b"}"
    deep_event = deep_event.replace(b'"agent_state":{},', b"", 1)
    garbage = (
        b"\x89PNG garbage " * 40_000
        + f"Authorization: Bearer {BEARER} ".encode()
        + b"\x00\xff" * 10_000
    )
    out: list[Out] = []
    for _copy in range(2):
        out += [
            h_(t[ER], b'{"id": ', "not_json", "truncated JSON"),
            h_(t[SU], b"[1, 2, 3]", "not_object", "an array"),
            h_(t[SU], None, "empty", "a tombstone", key=corr.encode()),
            h_(t[TR], b"", "empty", "an empty value"),
            h_(t[ER], _json(bad_severity), "schema", "a CHECK value"),
            h_(t[ER], _json(extra_field), "schema", "an extra field, a key in the message"),
            h_(t[SN], _json(nul), "nul_character", "NUL in a name"),
            h_(t[SN], _json(huge_state), "state_too_large", "a 1.2 MB state"),
            h_(t[HK], garbage, "not_json", "1.1 MB of binary with a bearer token"),
            h_(t[ER], _json(year_10000), "schema", "year 10000"),
            h_(
                t[ST],
                f'{{"password": "{PASSWORD}", "id": "'.encode(),
                "not_json",
                "broken JSON with a password",
                headers=[("Authorization", f"Bearer {BEARER}".encode()), ("x", b"\xfe")],
            ),
            h_(unknown, _json(s.hook(corr)), "unknown_topic", "a topic of no kind"),
            h_(
                t[HK],
                b"{nope",
                "not_json",
                "a header key that is not UTF-8",
                raw=True,
                headers=[(b"\xffkey", b"v"), (b"\xffkey", None)],
                timestamp_ms=rng.choice([0, -1, -5, FAR_FUTURE_MS]),
            ),
            h_(t[SN], None, "empty", "neither key nor value", key=None, raw=True),
            h_(t[HK], _json(v2), "schema_version", "schema_version 2"),
            h_(t[SN], deep_event, "too_deep", "a state 100 levels deep"),
            h_(t[ER], _json(long_name), "too_long", "a 300-character agent name"),
            h_(t[ER], b'{"token": "' + GITHUB.encode() + b'"}', "schema", "only a token"),
        ]
    return out


def _confluent_produce(bootstrap: str, records: list[Out]) -> None:
    """librdkafka producers, one per codec, each flushed before the next (so one codec
    group's per-partition order is its sending order)."""
    for codec in CODECS:
        group = [r for r in records if r.codec == codec and not r.raw]
        if not group:
            continue
        producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": bootstrap,
                "compression.type": codec,
                "linger.ms": 5,
                "message.max.bytes": 8_000_000,
                "enable.idempotence": False,
            }
        )
        failed: list[Any] = []
        for r in group:

            def delivered(err: Any, msg: Any, r: Out = r, failed: list[Any] = failed) -> None:
                if err is not None:
                    failed.append((r.label, err))
                else:
                    r.partition, r.offset = msg.partition(), msg.offset()

            kwargs: dict[str, Any] = {}
            if r.timestamp_ms is not None:
                kwargs["timestamp"] = r.timestamp_ms
            if r.headers:
                kwargs["headers"] = list(r.headers)
            while True:
                try:
                    producer.produce(
                        r.topic, value=r.value, key=r.key, on_delivery=delivered, **kwargs
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        assert producer.flush(60) == 0
        assert failed == [], failed


async def _produce(bootstrap: str, records: list[Out]) -> None:
    await asyncio.to_thread(_confluent_produce, bootstrap, records)
    rng = random.Random(len(records))
    for r in records:
        if r.raw:
            r.partition = rng.randrange(PARTITIONS) if "unknown" not in r.topic else 0
            (sent,) = await h.produce_raw(
                bootstrap,
                [
                    h.Record(
                        r.topic,
                        r.value,
                        r.key,
                        tuple(r.headers),
                        r.timestamp_ms,
                        r.partition,
                        None if r.codec == "none" else r.codec,
                    )
                ],
            )
            r.offset = sent.offset
    assert all(r.offset >= 0 for r in records)


def _ends(records: list[Out]) -> dict[tuple[str, int], int]:
    ends: dict[tuple[str, int], int] = {}
    for r in records:
        ends[(r.topic, r.partition)] = max(ends.get((r.topic, r.partition), 0), r.offset + 1)
    return ends


async def _terminate_writer(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = $1) AS t",
                s.WRITER_ROLE,
            )
        )
    finally:
        await conn.close()


@dataclass
class Report:
    kills: int = 0
    mid_drain_kills: int = 0
    terminated: int = 0
    pg_restarts: int = 0
    retries_seen: int = 0
    logs: list[str] = field(default_factory=list)


async def _chaos(server: EmbeddedPostgres, dsn: str, kafka: Any, plan: Plan, seed: int) -> Report:
    rng = random.Random(seed * 31 + 1)
    settings = s.sink_settings(dsn, kafka, batch_max_events=150)
    report = Report()
    left = budget(200)
    produced: list[Out] = []

    async def produce(records: list[Out]) -> None:
        await _produce(kafka.bootstrap_servers, records)
        produced.extend(records)

    await produce(plan.phases[0])
    rounds = 6
    pg_round = 2 + seed % 2  # round of the PostgreSQL restart
    down_round = 4  # PostgreSQL is down when the sink starts; one sink is killed waiting
    for n in range(rounds):
        if n == down_round:
            await asyncio.to_thread(server.stop)
            report.pg_restarts += 1
            waiting_sink = await SinkProcess.start(settings)
            try:
                assert await waiting_sink.wait_for_log(
                    "waiting_for_service", "seek_waiting_for_postgres", timeout=left()
                ), waiting_sink.output[-3000:]
                await asyncio.sleep(rng.uniform(0.0, 2.0))
                assert waiting_sink.proc.returncode is None, waiting_sink.output[-3000:]
                report.kills += 1
            finally:
                await waiting_sink.kill()
                report.logs.append(waiting_sink.output)
        sink = await SinkProcess.start(settings)
        try:
            if n == down_round:
                assert await sink.wait_for_log(
                    "waiting_for_service", "seek_waiting_for_postgres", timeout=left()
                ), sink.output[-3000:]
                await asyncio.to_thread(server.start)
            committed = await sink.wait_for_log(
                "batch_committed", count=rng.randint(1, 3), timeout=left()
            )
            assert committed, sink.output[-3000:]
            if n == 1:
                # The parents of the parked children arrive; the writer's connections go.
                await produce(plan.phases[1][: len(plan.phases[1]) // 2])
                for _ in range(3):
                    report.terminated += await _terminate_writer(server.dsn)
                    await asyncio.sleep(rng.uniform(0.02, 0.2))
                before = sink.count("batch_committed")
                assert await sink.wait_for_log(
                    "batch_committed", count=before + 1, timeout=left()
                ), sink.output[-3000:]
            if n == pg_round:
                crash = seed % 2 == 0
                await asyncio.to_thread(server.kill if crash else server.stop)
                report.pg_restarts += 1
                await produce(plan.phases[1][len(plan.phases[1]) // 2 :])
                retries = sink.count("batch_retry")
                waiting = await sink.wait_for_log("batch_retry", count=retries + 2, timeout=left())
                assert waiting, sink.output[-3000:]
                assert sink.proc.returncode is None, sink.output[-3000:]
                report.retries_seen += sink.count("batch_retry") - retries
                await asyncio.to_thread(server.start)
                before = sink.count("batch_committed")
                assert await sink.wait_for_log(
                    "batch_committed", count=before + 1, timeout=left()
                ), sink.output[-3000:]
            # Why: a random point in the next batch's cycle, not synchronisation.
            await asyncio.sleep(rng.uniform(0.0, 0.4))
            assert sink.proc.returncode is None, sink.output[-3000:]
            if await s.stored_offsets(dsn, kafka.group_id) != _ends(produced):
                report.mid_drain_kills += 1
            report.kills += 1
            await sink.kill()
        finally:
            await sink.kill()
            report.logs.append(sink.output)
    await produce(plan.phases[2])
    last = await SinkProcess.start(settings, "--exit-when-idle")
    code, err = await last.finish(max(30.0, left()))
    report.logs.append(err)
    assert code == 0, err[-3000:]
    return report


async def _check(dsn: str, kafka: Any, plan: Plan, report: Report) -> dict[str, Any]:
    records = [r for phase in plan.phases for r in phase]
    hostile = [r for r in records if r.expect is not None]
    conn = await asyncpg.connect(dsn)
    try:
        problems: list[str] = []
        # Every distinct valid event exactly once, with its expected content.
        for table, expected in plan.rows.items():
            got = {str(r["id"]): dict(r) for r in await conn.fetch(f"SELECT * FROM {table}")}
            missing = set(expected) - set(got)
            extra = set(got) - set(expected)
            if missing or extra:
                problems.append(f"{table}: {len(missing)} missing, {len(extra)} extra")
            for event_id, columns in expected.items():
                row = got.get(event_id)
                if row is None:
                    continue
                for column, want in columns.items():
                    have = row[column]
                    if isinstance(have, str) and column.endswith(("_data", "_state")):
                        have = orjson.loads(have)
                    if isinstance(have, uuid.UUID):
                        have = str(have)
                    if column == "step_description":
                        ok = isinstance(have, str) and have.startswith(want) and BEARER not in have
                    else:
                        ok = have == want
                    if not ok:
                        problems.append(f"{table} {event_id} {column}: {have!r} != {want!r}")
                meta = row.get("metadata")
                if meta and "dangling_references" in meta:
                    problems.append(f"{table} {event_id} has dangling references: {meta}")
        stored_aliases = {
            str(r[0]): str(r[1])
            for r in await conn.fetch("SELECT alias_id, snapshot_id FROM sink_snapshot_aliases")
        }
        if stored_aliases != plan.aliases:
            problems.append(
                f"aliases differ: {len(set(stored_aliases.items()) ^ set(plan.aliases.items()))}"
            )
        parked = await conn.fetch("SELECT kind, event_id, waiting_for FROM sink_parked_events")
        if parked:
            problems.append(f"{len(parked)} still parked: {[dict(p) for p in parked[:5]]}")
        # Every hostile record exactly one dead letter, with its class and a reason.
        letters = await conn.fetch(
            'SELECT topic, partition, "offset", error_class, reason, headers, '
            "octet_length(value) AS size FROM sink_dead_letters"
        )
        by_origin = Counter((r["topic"], r["partition"], r["offset"]) for r in letters)
        doubled = [o for o, c in by_origin.items() if c > 1]
        if doubled:
            problems.append(f"dead letters twice: {doubled}")
        want_letters = {(r.topic, r.partition, r.offset): r for r in hostile}
        if set(by_origin) != set(want_letters):
            unexpected = set(by_origin) - set(want_letters)
            absent = set(want_letters) - set(by_origin)
            problems.append(
                f"dead letters: unexpected {sorted(unexpected)[:5]}, missing "
                f"{[want_letters[o].label for o in absent]}"
            )
        for letter in letters:
            origin = (letter["topic"], letter["partition"], letter["offset"])
            r = want_letters.get(origin)
            if r is not None and letter["error_class"] != r.expect:
                problems.append(
                    f"{r.label}: error_class {letter['error_class']} != {r.expect}: "
                    f"{letter['reason'][:200]}"
                )
            headers = orjson.loads(letter["headers"]) if letter["headers"] else {}
            label = r.label if r is not None else ""
            if label == "broken JSON with a password" and (
                headers.get("x") != "\\xfe" or "Authorization" not in headers
            ):
                problems.append(f"{label}: headers stored as {headers}")
            if label == "a header key that is not UTF-8" and headers.get("\\xffkey") != ["v", None]:
                problems.append(f"{label}: headers stored as {headers}")
            if r is not None and r.label.startswith("1.1 MB") and (letter["size"] or 0) > 900_000:
                problems.append(f"{r.label}: a dead letter of {letter['size']} bytes")
            if not letter["reason"].strip():
                problems.append(f"a dead letter without a reason: {origin}")
        # Offsets at the end of every partition.
        stored = await s.stored_offsets(dsn, kafka.group_id)
        if stored != _ends(records):
            problems.append(f"offsets {stored} != ends {_ends(records)}")
        # No secret in any table.
        tables = [
            r[0]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "'public' AND table_type = 'BASE TABLE'"
            )
        ]
        for table in tables:
            for row in await conn.fetch(f'SELECT * FROM "{table}"'):
                for column, value in row.items():
                    text = value if isinstance(value, bytes) else str(value).encode()
                    for secret in PLANTED:
                        if secret.encode() in text:
                            problems.append(f"{secret[:6]}... in {table}.{column}")
        counts = {t: len(v) for t, v in plan.rows.items()}
    finally:
        await conn.close()
    # The dead-letter topic: every hostile record at least once, nothing else, no secret.
    dlq = await s.read_topic(kafka.bootstrap_servers, kafka.dead_letter_topic, timeout=60)
    on_topic: Counter[tuple[str, int, int]] = Counter()
    hostile_at = {(r.topic, r.partition, r.offset): r for r in hostile}
    for message in dlq:
        headers = dict(message.headers)
        origin = (
            headers[DLQ_HEADERS[0]].decode(),
            int(headers[DLQ_HEADERS[1]]),
            int(headers[DLQ_HEADERS[2]]),
        )
        on_topic[origin] += 1
        if len(message.value or b"") > 900_000 or (
            origin in hostile_at
            and hostile_at[origin].label.startswith("1.1 MB")
            and TRUNCATED_HEADER not in headers
        ):
            problems.append(f"an uncut dead letter of {len(message.value or b'')} bytes: {origin}")
        blob = (message.key or b"") + (message.value or b"")
        blob += b"".join(k.encode() + (v or b"") for k, v in message.headers)
        for secret in PLANTED:
            if secret.encode() in blob:
                problems.append(f"{secret[:6]}... on the dead-letter topic ({origin})")
    if set(on_topic) != {(r.topic, r.partition, r.offset) for r in hostile}:
        problems.append("the dead-letter topic's origins differ from the hostile records")
    # The sink's logs.
    levels: Counter[str] = Counter()
    events: Counter[str] = Counter()
    parked_total = released_total = 0
    for log in report.logs:
        for secret in PLANTED:
            if secret in log:
                problems.append(f"{secret[:6]}... in the sink's log")
        for line in log.splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                problems.append(f"a log line that is not JSON: {line[:300]}")
                continue
            levels[entry.get("level", "?")] += 1
            if entry.get("level") != "info" or entry.get("event") != "batch_committed":
                events[f"{entry.get('level')} {entry.get('event')}"[:80]] += 1
            if entry.get("event") == "batch_committed":
                parked_total += int(entry.get("parked") or 0)
                released_total += int(entry.get("released") or 0)
            if entry.get("level") in ("error", "critical"):
                problems.append(f"an error in the log: {line[:300]}")
    assert problems == [], "\n".join(problems[:60])
    return {
        "records": len(records),
        "valid rows": counts,
        "hostile": len(hostile),
        "dlq messages": sum(on_topic.values()),
        "log levels": dict(levels),
        "log events": dict(events),
        "parked / released (batch lines)": (parked_total, released_total),
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_chaos_soak(tmp_path: Path, kafka: Any, seed: int) -> None:
    """SIGKILLs at random moments, writer connections terminated, PostgreSQL restarted,
    hostile records and secrets among valid events of every kind: the exact end state."""
    server = EmbeddedPostgres(
        tmp_path / "pg", settings=EMBEDDED_PG_SETTINGS, run_as=s.suite_pg_user(tmp_path)
    )
    server.start()
    try:
        await migrate_up(server.dsn)
        await s.least_privilege_roles(server.dsn)
        await s.create_topics(kafka, partitions=PARTITIONS)
        plan = _plan(kafka, seed, workflows=450)
        await h.create_topic(kafka.bootstrap_servers, plan.unknown_topic, 1)
        report = await _chaos(server, server.dsn, kafka, plan, seed)
        summary = await _check(server.dsn, kafka, plan, report)
        print(
            f"seed {seed}: {summary}; kills {report.kills} (mid-drain {report.mid_drain_kills}), "
            f"backends terminated {report.terminated}, PostgreSQL restarts {report.pg_restarts}, "
            f"batch retries seen {report.retries_seen}"
        )
        # Also: no planted secret in PostgreSQL's own log.
        pg_log = server.log_path.read_bytes() if server.log_path.exists() else b""
        assert not [x for x in PLANTED if x.encode() in pg_log]
    finally:
        with contextlib.suppress(Exception):
            server.stop()
