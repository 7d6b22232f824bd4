"""`debug-sink replay --dry-run`: what it selects is what the operator asked for, and an
offset it cannot honour is said, not silently read as nothing.

(From a red team's tests: `--topics` also listed the OTLP topic, which the live sink
subscribes to beside its pattern; an offset past the end was a silent no-op.)"""

from __future__ import annotations

import asyncio
import shlex
from typing import Any

import asyncpg
import pytest

from debug_sink.wire.events import EventKind
from tests import support as s

pytestmark = pytest.mark.timeout(150)


async def replay_cli(settings: Any, *args: str, timeout: float = 90) -> tuple[int, str, str]:
    settings = settings.model_copy(update={"kafka_session_timeout_ms": 3000})
    proc = await asyncio.create_subprocess_exec(
        *s.CLI,
        "replay",
        *args,
        env=s.sink_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def test_topics_is_the_whole_selection(db_dsn: str, kafka: Any) -> None:
    await s.create_topics(kafka, partitions=1, kinds=[EventKind.HOOK])
    hooks = s.topic(kafka, EventKind.HOOK)
    otlp = kafka.topic_prefix + "otlp_spans"
    await s.produce(kafka, [(hooks, s.hook(s.uid())) for _ in range(3)])
    await s.produce(kafka, [(otlp, b"not an otlp request") for _ in range(2)])
    settings = s.sink_settings(db_dsn, kafka)
    pattern = "^" + hooks.replace(".", r"\.") + "$"
    code, out, err = await replay_cli(
        settings, "--dry-run", "--from-beginning", "--topics", pattern
    )
    assert code == 0, err
    assert otlp not in out
    assert "total: 3 events in 1 partitions" in out
    # Without --topics the OTLP topic is replayed too, as the live sink reads it.
    code, out, err = await replay_cli(settings, "--dry-run", "--from-beginning")
    assert code == 0, err
    assert otlp in out


async def test_an_offset_past_the_end_is_said(db_dsn: str, kafka: Any) -> None:
    await s.create_topics(kafka, partitions=1, kinds=[EventKind.HOOK])
    topic = s.topic(kafka, EventKind.HOOK)
    await s.produce(kafka, [(topic, s.hook(s.uid())) for _ in range(5)])
    code, out, err = await replay_cli(
        s.sink_settings(db_dsn, kafka), "--dry-run", "--from-offsets", f"{topic}:0:1000000"
    )
    assert code == 0, err
    assert f"note: {topic}[0]: offset 1000000 asked is past the end; read from 5" in out


async def test_a_selection_holding_the_dead_letter_topic_is_refused_before_anything(
    db_dsn: str, kafka: Any
) -> None:
    # (From a red team's tests: the dry run listed the dead-letter topic as to be read, and
    # the run itself refused only after storing the group's start offsets.)
    await s.create_topics(kafka, partitions=1, kinds=[EventKind.HOOK])
    hooks = s.topic(kafka, EventKind.HOOK)
    await s.produce(kafka, [(hooks, s.hook(s.uid())), (hooks, b"{not json")])
    settings = s.sink_settings(db_dsn, kafka)
    await s.run_sink(settings.model_copy(update={"kafka_session_timeout_ms": 3000}), idle_grace=3)
    everything = "^" + kafka.dead_letter_topic.split(".")[0]  # the events and the letters
    for args in (["--dry-run"], ["--group-id", "letters-1"]):
        code, out, err = await replay_cli(
            settings, *args, "--from-beginning", "--topics", everything
        )
        assert code == 1, out
        assert f"the dead-letter topic {kafka.dead_letter_topic!r} matches" in err
        assert len(err.strip().splitlines()) == 1, err
        assert "to read" not in out
    conn = await asyncpg.connect(db_dsn)
    try:
        groups = await conn.fetchval(
            "SELECT count(*) FROM sink_offsets WHERE group_id <> $1", kafka.group_id
        )
    finally:
        await conn.close()
    assert groups == 0, "a refused replay stores no offsets"


async def test_a_selection_matching_no_topic_is_an_error(db_dsn: str, kafka: Any) -> None:
    # (From a red team's tests: a mistyped --topics replayed nothing, said "every event was
    # already stored", and exited 0.)
    await s.create_topics(kafka, partitions=1, kinds=[EventKind.HOOK])
    code, out, err = await replay_cli(
        s.sink_settings(db_dsn, kafka), "--from-beginning", "--topics", "^no-such-topic$"
    )
    assert code == 1, out
    assert "no topic matches" in err
    assert "already stored" not in out


async def test_the_printed_resume_command_keeps_the_selection(db_dsn: str, kafka: Any) -> None:
    # (From a red team's tests: after `replay --topics X`, the printed "resume with" command
    # left --topics out, so following it replayed every topic from its log start.)
    await s.create_topics(kafka, partitions=1, kinds=[EventKind.HOOK, EventKind.ERROR])
    hooks, errors = s.topic(kafka, EventKind.HOOK), s.topic(kafka, EventKind.ERROR)
    await s.produce(kafka, [(hooks, s.hook(s.uid())), (errors, s.error(s.uid()))])
    settings = s.sink_settings(db_dsn, kafka)
    pattern = "^" + hooks.replace(".", r"\.") + "$"
    code, out, err = await replay_cli(
        settings, "--from-beginning", "--group-id", "narrow-1", "--topics", pattern
    )
    assert code == 0, err[-3000:]
    hint = next(line for line in out.splitlines() if "resume or extend later with:" in line)
    command = shlex.split(hint.split("with:", 1)[1].split(";", 1)[0])
    assert command[:2] == ["debug-sink", "replay"], hint
    code, out, err = await replay_cli(settings, *command[2:], "--dry-run")
    assert code == 0, err
    assert hooks in out
    assert errors not in out, "the resumed replay reads what the first one selected"


async def test_a_clamped_offset_is_said_by_the_replay_itself(db_dsn: str, kafka: Any) -> None:
    # (From a red team's tests: only --dry-run printed the note; the replay itself read
    # nothing and said "every event was already stored".)
    await s.create_topics(kafka, partitions=1, kinds=[EventKind.HOOK])
    topic = s.topic(kafka, EventKind.HOOK)
    await s.produce(kafka, [(topic, s.hook(s.uid())) for _ in range(5)])
    code, out, err = await replay_cli(
        s.sink_settings(db_dsn, kafka), "--from-offsets", f"{topic}:0:1000000"
    )
    assert code == 0, err[-3000:]
    assert f"note: {topic}[0]: offset 1000000 asked is past the end; read from 5" in out
    assert "already stored" not in out
