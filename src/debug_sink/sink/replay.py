"""Replay: re-consume topics into the same tables, exactly once (backfill, rebuild).

The command is :mod:`debug_sink.cli.replay`; this module holds what it runs.

Owns planning a replay (which partitions, from which offset to which) and running it. A
replay is an ordinary :class:`~debug_sink.sink.runner.Sink` in *its own* consumer group whose
stored offsets (``sink_offsets``) are seeded with the chosen start offsets before it starts;
on assignment the sink seeks to them, and it is stopped once every partition's stored
offset has reached the end offset planned at the start (or when it is idle). Everything
else is the sink's own contract (:mod:`debug_sink.sink.writer`): every row is keyed by the
producer's event id, so events that are already stored are no-ops and a replay over a
populated database changes nothing; events that are missing are written.

Start points: ``--from-beginning`` (the log start of every partition), ``--from-offsets
topic:partition:offset,...`` (listed partitions from there, the others are skipped: they
start at their end), ``--since TIME`` (the first record at or after TIME, by record
timestamp, per partition). Without one: a group that has stored offsets resumes from them
(an interrupted replay is resumed by running it again with the same ``--group-id`` and
``--topics``: a selected partition the group has no offset for starts at its log start), a
new group starts at the beginning.

Guarantees: the live sink's group is never touched (a replay refuses to run in it); a
``--dry-run`` reads only Kafka metadata and writes nothing anywhere; a selection that matches
the dead-letter topic (letters would loop back into it) or no topic at all is refused at
planning, before any offset is stored.

Not guaranteed: a precise stop. The batch in flight when the end is reached may go past
it (those events are written exactly once, like the rest, and are no-ops for the live
sink). Rejected messages are produced to the dead-letter topic again (the dead-letter
*table* keeps one row per origin). The periodic jobs (correlator, retention) do not run
during a replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from debug_sink.db.pg import connection
from debug_sink.errors import BrokerUnavailable, ConfigurationError, DebugSinkError
from debug_sink.settings import Settings
from debug_sink.signals import run_until_signal
from debug_sink.sink import kafka, offsets

__all__ = [
    "PartitionPlan",
    "ReplaySummary",
    "StartSpec",
    "default_group_id",
    "group_offsets",
    "log_ends",
    "log_starts",
    "offsets_at_time",
    "parse_offsets",
    "plan_replay",
    "resolve_starts",
    "run_replay",
    "seed_offsets",
]

#: Tables whose growth during the replay the summary reports (rows after - rows before: what
#: this replay wrote, plus what a live sink wrote meanwhile; the parked events' count falls
#: when their parents arrive).
SUMMARY_TABLES = (
    "debug_state_snapshots",
    "debug_error_events",
    "debug_success_events",
    "debug_workflow_steps",
    "agent_transformation_events",
    "hook_events",
    "sink_dead_letters",
    "sink_parked_events",
)


@dataclass(frozen=True, slots=True)
class StartSpec:
    """Where a replay starts: ``beginning``, ``offsets`` (per partition), ``since`` (a
    time), or ``resume`` (the group's stored offsets, else the beginning)."""

    mode: Literal["beginning", "offsets", "since", "resume"]
    offsets: Mapping[tuple[str, int], int] | None = None
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    """One partition of a replay: read ``[start, end)``."""

    topic: str
    partition: int
    start: int
    end: int
    #: The offset ``--from-offsets`` asked for, when it was clamped (below the log start,
    #: or past the end) -- the plan says so rather than silently read nothing.
    asked: int | None = None

    @property
    def count(self) -> int:
        return max(0, self.end - self.start)

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "start": self.start,
            "end": self.end,
            "count": self.count,
            "asked": self.asked,
        }


@dataclass(slots=True)
class ReplaySummary:
    group_id: str
    plan: list[PartitionPlan]
    read: int
    rows_added: dict[str, int]
    seconds: float
    interrupted: bool = False
    #: Events parked in the database when the replay ended, waiting for a parent that is not
    #: stored (read and committed, not yet in their table).
    parked: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "interrupted": self.interrupted,
            "events_planned": sum(p.count for p in self.plan),
            "events_read": self.read,
            "rows_added": self.rows_added,
            "parked": self.parked,
            "seconds": round(self.seconds, 3),
            "partitions": [p.as_dict() for p in self.plan],
        }


# -- pure planning (no I/O) ---------------------------------------------------------------


def default_group_id(now: datetime | None = None) -> str:
    """A new replay's own group: the time, and 6 random hex digits so that two replays
    started in the same second (of other topics, by two operators) never share a group
    (they would split its partitions and its stored offsets between them)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"debug-sink-replay-{stamp}-{secrets.token_hex(3)}"


def parse_offsets(text: str) -> dict[tuple[str, int], int]:
    """``topic:partition:offset,...`` -> {(topic, partition): offset}.

    Topic names cannot contain ``:`` (Kafka allows ``[a-zA-Z0-9._-]``), so the last two
    fields are split off from the right.
    """
    result: dict[tuple[str, int], int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        fields = item.rsplit(":", 2)
        if len(fields) != 3 or not fields[0]:
            raise ConfigurationError(f"--from-offsets: {item!r} is not topic:partition:offset")
        topic, partition, offset = fields
        try:
            key, value = (topic, int(partition)), int(offset)
        except ValueError:
            raise ConfigurationError(
                f"--from-offsets: {item!r}: partition and offset must be integers"
            ) from None
        if key[1] < 0 or value < 0:
            raise ConfigurationError(f"--from-offsets: {item!r}: negative partition or offset")
        if key in result:
            raise ConfigurationError(f"--from-offsets: {topic}:{partition} given twice")
        result[key] = value
    if not result:
        raise ConfigurationError("--from-offsets: no topic:partition:offset given")
    return result


def resolve_starts(
    spec: StartSpec,
    partitions: Sequence[tuple[str, int]],
    beginnings: Mapping[tuple[str, int], int],
    ends: Mapping[tuple[str, int], int],
    *,
    stored: Mapping[tuple[str, int], int] | None = None,
    at_time: Mapping[tuple[str, int], int | None] | None = None,
) -> list[PartitionPlan]:
    """The plan: each partition's start, clamped to what the log still holds.

    ``at_time``: for ``since``, the first offset at or after the time, or None when no
    record is that recent. An offset below the log start (deleted by retention) starts at
    the log start; one past the end starts at the end.
    """
    if spec.mode == "offsets":
        unknown = sorted(set(spec.offsets or {}) - set(partitions))
        if unknown:
            names = ", ".join(f"{t}:{p}" for t, p in unknown)
            raise ConfigurationError(f"--from-offsets names partitions that do not exist: {names}")
    plan = []
    for tp in sorted(partitions):
        begin, end = beginnings.get(tp, 0), ends.get(tp, 0)
        if spec.mode == "beginning":
            start = begin
        elif spec.mode == "offsets":
            start = (spec.offsets or {}).get(tp, end)
        elif spec.mode == "since":
            found = (at_time or {}).get(tp)
            start = end if found is None else found
        else:
            start = (stored or {}).get(tp, begin)
        clamped = min(max(start, begin), end)
        asked = start if spec.mode == "offsets" and clamped != start else None
        plan.append(PartitionPlan(tp[0], tp[1], clamped, end, asked))
    return plan


# -- Kafka and PostgreSQL -----------------------------------------------------------------


async def log_starts(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition], *, timeout: float = 10.0
) -> dict[TopicPartition, int]:
    """The first offset of each partition, right on Tansu too.

    Tansu at times answers ListOffsets(earliest) with an offset past the first records of a
    log that several producers wrote to (seen: 166 for a partition whose records start at
    0): a replay from there would leave them out. So where the answer is not 0, offset 0 is
    fetched (``consumer`` must have no group and reset nothing: ``auto_offset_reset=
    "none"``): a record from there is the log's first; "out of range" confirms the answer
    (the records before it were deleted). A partition that answers neither in ``timeout``
    seconds keeps the answer.
    """
    starts: dict[TopicPartition, int] = dict(await consumer.beginning_offsets(list(tps)))
    at_zero = dict.fromkeys((tp for tp in tps if starts.get(tp, 0) > 0), 0)
    for tp, record in (await _records_at(consumer, at_zero, timeout)).items():
        starts[tp] = min(starts[tp], record.offset)
    return starts


async def _records_at(
    consumer: AIOKafkaConsumer, at: Mapping[TopicPartition, int], timeout: float
) -> dict[TopicPartition, Any]:
    """The first record each partition of ``at`` holds from its offset on: one record
    fetched each, for at most ``timeout`` seconds. A partition out of range there (its
    records deleted) or silent that long has none. ``consumer`` must have no group and reset
    nothing (``auto_offset_reset="none"``): it is assigned these partitions, and paused
    after (no background prefetching between calls)."""
    found: dict[TopicPartition, Any] = {}
    if not at:
        return found
    probed = sorted(at)
    consumer.assign(probed)
    for tp in probed:
        consumer.seek(tp, at[tp])
    pending = set(probed)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        try:
            records = await consumer.getmany(*pending, timeout_ms=200, max_records=1)
        except OffsetOutOfRangeError as exc:
            _settle(pending, exc)
            continue
        for tp, got in records.items():
            if tp in pending and got:
                found[tp] = got[0]
                pending.discard(tp)
    consumer.pause(*probed)
    return found


def _settle(pending: set[TopicPartition], exc: OffsetOutOfRangeError) -> None:
    """The partitions ``exc`` found out of range are settled: no longer ``pending`` (all of
    them when it does not say which, so that a probe never loops on it)."""
    named = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    if set(named) & pending:
        pending.difference_update(named)
    else:
        pending.clear()


async def log_ends(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition], *, timeout: float = 10.0
) -> dict[TopicPartition, int]:
    """The end offset (next offset to be written) of each partition, right on Tansu too.

    Tansu answers ListOffsets(latest) with the base offset of the last record *batch* + 1,
    not the high watermark; a fetch response's high watermark is right. So the last batch
    of each non-empty partition is fetched once (``consumer`` must have no group: it is
    assigned these partitions) and the larger of the two answers is taken.
    """
    ends: dict[TopicPartition, int] = dict(await consumer.end_offsets(list(tps)))
    # Out of range before the end: every record was deleted (retention), the answer stands.
    last = {tp: ends[tp] - 1 for tp in tps if ends.get(tp, 0) > 0}
    for tp in await _records_at(consumer, last, timeout):
        highwater = consumer.highwater(tp)
        if highwater is not None:
            ends[tp] = max(ends[tp], highwater)
    return ends


async def offsets_at_time(
    consumer: AIOKafkaConsumer,
    tps: Sequence[TopicPartition],
    since_ms: int,
    starts: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
    *,
    timeout: float = 60.0,
) -> dict[TopicPartition, int | None]:
    """The first offset of each partition whose record is dated ``since_ms`` or later
    (None: no record is), right on Tansu too.

    Kafka answers ListOffsets(timestamp) from the records' own timestamps. Tansu answers
    from the time *it* appended each batch (the offset of the first batch appended at or
    after the time, dated by its own clock) and ``(0, -1)`` when it appended none that late:
    a record whose producer's clock runs ahead of the broker's, or that names its own
    timestamp, was left out of a ``--since`` replay (seen: records of +103 s skipped by a
    replay since +3.1 s, and a whole partition by one since +6.1 s). So an answer is taken
    as is only in Kafka's shape: None, or the record at the answer carries the answer's
    timestamp (one record fetched). Otherwise the partition is read from ``starts`` up to
    the answer (to ``ends`` for ``(0, -1)``) for the first record that recent; where none
    is, the answer stands. ``consumer`` must have no group (it is assigned these
    partitions). A partition not read through in ``timeout`` seconds starts where the
    reading stopped: everything before it was read and is older.
    """
    found = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
    result: dict[TopicPartition, int | None] = {}
    # Where to read from, up to where, and what holds when nothing there is that recent.
    scan: dict[TopicPartition, tuple[int, int, int | None]] = {}
    verify: dict[TopicPartition, Any] = {}
    for tp in tps:
        hit = found.get(tp)
        if hit is None:
            result[tp] = None
        elif hit.timestamp < 0:
            scan[tp] = (starts.get(tp, 0), ends.get(tp, 0), None)
        else:
            verify[tp] = hit
    deadline = time.monotonic() + timeout
    if verify:
        consumer.assign(sorted(verify))
        for tp, hit in verify.items():
            consumer.seek(tp, hit.offset)
        pending = set(verify)
        while pending and time.monotonic() < deadline:
            records = await consumer.getmany(*pending, timeout_ms=200, max_records=1)
            for tp, got in records.items():
                if tp not in pending or not got:
                    continue
                pending.discard(tp)
                hit = verify[tp]
                if got[0].offset == hit.offset and got[0].timestamp == hit.timestamp:
                    result[tp] = hit.offset  # Kafka's answer: the record's own time
                else:
                    scan[tp] = (starts.get(tp, 0), hit.offset, hit.offset)
        for tp in pending:  # not fetched in time: check what precedes it
            scan[tp] = (starts.get(tp, 0), verify[tp].offset, verify[tp].offset)
        consumer.pause(*verify)
    if scan:
        result.update(await _first_at_time(consumer, scan, since_ms, deadline))
    return result


async def _first_at_time(
    consumer: AIOKafkaConsumer,
    scan: Mapping[TopicPartition, tuple[int, int, int | None]],
    since_ms: int,
    deadline: float,
) -> dict[TopicPartition, int | None]:
    """Read each partition of ``scan`` over ``[start, limit)`` for its first record dated
    ``since_ms`` or later; see :func:`offsets_at_time`."""
    result: dict[TopicPartition, int | None] = {}
    pending = set()
    for tp, (start, limit, otherwise) in scan.items():
        if start >= limit:
            result[tp] = otherwise
        else:
            pending.add(tp)
    if not pending:
        return result
    probed = sorted(pending)
    consumer.assign(probed)
    for tp in probed:
        consumer.seek(tp, scan[tp][0])
    while pending and time.monotonic() < deadline:
        records = await consumer.getmany(*pending, timeout_ms=200)
        for tp, got in records.items():
            if tp not in pending:
                continue
            _, limit, otherwise = scan[tp]
            for record in got:
                if record.offset >= limit:
                    result[tp] = otherwise
                    pending.discard(tp)
                    break
                if record.timestamp >= since_ms:
                    result[tp] = record.offset
                    pending.discard(tp)
                    break
        for tp in list(pending):
            if await consumer.position(tp) >= scan[tp][1]:
                result[tp] = scan[tp][2]
                pending.discard(tp)
    for tp in pending:  # out of time: start where the reading stopped
        result[tp] = await consumer.position(tp)
    consumer.pause(*probed)  # no background prefetching between calls
    return result


async def plan_replay(
    settings: Settings, spec: StartSpec, *, stored: Mapping[tuple[str, int], int] | None = None
) -> list[PartitionPlan]:
    """Read the matching partitions' offsets from Kafka and resolve the plan.

    A selection that matches the dead-letter topic, or no topic at all, is refused (a
    :class:`~debug_sink.errors.ConfigurationError`) before anything is stored."""
    settings.require_dead_letters_unsubscribed()
    consumer = await kafka.start_client(kafka.reader(settings, auto_offset_reset="none"), settings)
    try:
        pattern = re.compile(settings.subscription_pattern)
        topics = sorted(t for t in await consumer.topics() if pattern.search(t))
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        if not tps:
            raise ConfigurationError(
                f"no topic matches {settings.subscription_pattern!r}: nothing to replay"
            )
        beginnings = await log_starts(consumer, tps)
        ends = await log_ends(consumer, tps)
        at_time: dict[tuple[str, int], int | None] = {}
        if spec.mode == "since":
            assert spec.since is not None
            # Record timestamps start at the epoch: an earlier time means every record
            # (Kafka refuses a negative target time).
            since_ms = max(0, int(spec.since.timestamp() * 1000))
            found = await offsets_at_time(consumer, tps, since_ms, beginnings, ends)
            at_time = {(tp.topic, tp.partition): offset for tp, offset in found.items()}
    except KafkaError as exc:
        raise BrokerUnavailable(f"cannot read offsets from Kafka: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
    return resolve_starts(
        spec,
        [(tp.topic, tp.partition) for tp in tps],
        {(tp.topic, tp.partition): o for tp, o in beginnings.items()},
        {(tp.topic, tp.partition): o for tp, o in ends.items()},
        stored=stored,
        at_time=at_time,
    )


def _db(settings: Settings) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection[Any]]:
    """A connection to the configured database and schema; driver errors translated."""
    return connection(
        settings.require_dsn(),
        schema=settings.db_schema,
        ssl=settings.postgres_ssl(),
        application_name="debug-sink-replay",
    )


async def group_offsets(settings: Settings, group_id: str) -> dict[tuple[str, int], int]:
    async with _db(settings) as conn:
        return await offsets.of_group(conn, group_id)


async def seed_offsets(settings: Settings, group_id: str, plan: Sequence[PartitionPlan]) -> None:
    """Store the plan's start offsets as ``group_id``'s offsets, replacing any stored ones
    (the sink itself only ever moves an offset forward)."""
    async with _db(settings) as conn, conn.transaction():
        await offsets.seed(conn, group_id, {(p.topic, p.partition): p.start for p in plan})


async def _row_counts(settings: Settings) -> dict[str, int]:
    async with _db(settings) as conn:
        return {
            table: int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            for table in SUMMARY_TABLES
        }


async def _progress_of(
    settings: Settings, group_id: str, plan: Sequence[PartitionPlan]
) -> tuple[int, bool]:
    """(events of the plan committed so far, whether every partition reached its end)."""
    stored = await group_offsets(settings, group_id)
    positions = [(p, stored.get((p.topic, p.partition), p.start)) for p in plan]
    done = sum(max(0, min(position, p.end) - p.start) for p, position in positions)
    return done, all(position >= p.end for p, position in positions)


async def run_replay(
    settings: Settings,
    plan: Sequence[PartitionPlan],
    *,
    on_progress: Any = None,
    poll_interval: float = 0.5,
) -> ReplaySummary:
    """Seed the offsets, run the sink in the replay group to the plan's end offsets (or
    until it is idle), count what changed.

    ``settings.group_id`` is the replay group. The sink is stopped once every partition's
    committed offset reached the plan's end: a live producer extending the topics does not
    keep a replay running (what it wrote past the end is written exactly once like the
    rest). ``on_progress(done, total)`` is called every ``poll_interval`` seconds with the
    committed events (from ``sink_offsets``).
    """
    from debug_sink.sink.runner import Sink

    group_id = settings.group_id
    started = time.monotonic()
    before = await _row_counts(settings)
    await seed_offsets(settings, group_id, plan)
    total = sum(p.count for p in plan)
    sink = Sink(settings, exit_when_idle=True, jobs=())

    async def watch() -> None:
        while True:
            await asyncio.sleep(poll_interval)
            try:
                done, reached = await _progress_of(settings, group_id, plan)
            except DebugSinkError:
                continue  # the sink itself waits out an unavailable database
            if on_progress is not None:
                on_progress(done, total)
            if reached:
                sink.stop()
                return

    interrupted = False

    def stop() -> None:
        nonlocal interrupted
        interrupted = True
        sink.stop()

    watcher = asyncio.create_task(watch())
    try:
        if total:
            await run_until_signal(sink.run, stop)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    done, _ = await _progress_of(settings, group_id, plan)
    if on_progress is not None:
        on_progress(done, total)
    after = await _row_counts(settings)
    return ReplaySummary(
        group_id=group_id,
        plan=list(plan),
        read=done,
        rows_added={t: after[t] - before[t] for t in SUMMARY_TABLES},
        seconds=time.monotonic() - started,
        interrupted=interrupted,
        parked=after["sink_parked_events"],
    )
