"""A session resumed after its hook state expired (EXPIRE_DAYS = 14; any shipper of the hook
directory -- another session's -- expires it) numbers its events from 1 again. The events'
ids are derived from that number (``event_id(workflow, name, "#<seq>")``), so the resumed
session's prompts, turns and stops get the ids of the session's first ones: the sink stores
an event once by its id, so what the user did after resuming is silently not stored (or
merged into the old turn). Fixed: a fresh state draws a nonce of its own, which the counted
ids include."""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
import time

import asyncpg

from debug_sink.hooks.ids import session_uuid
from debug_sink.hooks.state import EXPIRE_DAYS
from tests import support as s
from tests.conftest import KafkaNames
from tests.integration.hooks.hook_support import cli, env_for, hook_once

SESSION = "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a"


def _event(name: str, **fields: object) -> dict[str, object]:
    return {
        "session_id": SESSION,
        "transcript_path": f"/home/dev/.claude/projects/x/{SESSION}.jsonl",
        "cwd": "/home/dev/shop",
        "permission_mode": "default",
        "hook_event_name": name,
        **fields,
    }


async def test_a_resumed_session_after_state_expiry_keeps_its_new_prompts(
    kafka: KafkaNames, db_dsn: str
) -> None:
    await s.create_topics(kafka)
    directory = tempfile.mkdtemp(prefix="rt-resume-")
    env = env_for(directory, kafka.bootstrap_servers, kafka.topic_prefix)
    try:
        for payload in (
            _event("SessionStart", source="startup", model="claude-sonnet-4-5"),
            _event("UserPromptSubmit", prompt="first prompt: fix the cart"),
            _event("Stop", stop_hook_active=False, last_assistant_message="Fixed the cart."),
        ):
            assert hook_once(payload, env).returncode == 0
        assert cli("hook", "--flush", "--timeout", "30", env=env).returncode == 0
        cli("hook", "--stop", env=env)
        # Two weeks and a day later (other sessions ran meanwhile: their shipper expires it).
        old = time.time() - (EXPIRE_DAYS + 1) * 86400
        for path in glob.glob(os.path.join(directory, "sessions", "*.json")):
            os.utime(path, (old, old))
        assert cli("hook", "--flush", "--timeout", "30", env=env).returncode == 0  # a shipper
        for payload in (
            _event("SessionStart", source="resume", model="claude-sonnet-4-5"),
            _event("UserPromptSubmit", prompt="second prompt: now add tests"),
            _event("Stop", stop_hook_active=False, last_assistant_message="Added tests."),
        ):
            assert hook_once(payload, env).returncode == 0
        assert cli("hook", "--flush", "--timeout", "30", env=env).returncode == 0
    finally:
        cli("hook", "--stop", env=env)
        shutil.rmtree(directory, ignore_errors=True)
    await s.run_sink(s.sink_settings(db_dsn, kafka), idle_grace=1.0)
    conn = await asyncpg.connect(db_dsn)
    try:
        corr = session_uuid(SESSION)
        prompts = [
            json.loads(r[0]).get("prompt")
            for r in await conn.fetch(
                "SELECT payload::text FROM hook_events WHERE correlation_id = $1 "
                "AND source = 'UserPromptSubmit' ORDER BY created_at",
                corr,
            )
        ]
        turns = [
            (r[0], r[1])
            for r in await conn.fetch(
                "SELECT step_number, step_description FROM debug_workflow_steps "
                "WHERE correlation_id = $1 ORDER BY started_at",
                corr,
            )
        ]
    finally:
        await conn.close()
    assert prompts == ["first prompt: fix the cart", "second prompt: now add tests"], (
        f"prompts stored: {prompts}; turns stored: {turns}"
    )
    # Both turns, each its own step (numbered from 1 again after the state was lost).
    assert [description for _, description in turns] == [
        "turn 1: first prompt: fix the cart",
        "turn 1: second prompt: now add tests",
    ], turns
