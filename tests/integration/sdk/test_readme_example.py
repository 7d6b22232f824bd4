"""The README's agent example, run as a newcomer would run it, lands in the database."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import asyncpg

from tests import support as s
from tests.unit.test_readme import python_example


async def test_the_readme_example_runs_and_lands(db_dsn: str, kafka: Any, tmp_path: Path) -> None:
    await s.create_topics(kafka)
    script = tmp_path / "agent.py"
    script.write_text(python_example())
    env = s.cli_env(
        DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
        DEBUG_SINK_TOPIC_PREFIX=kafka.topic_prefix,
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    workflow = out.decode().split()[-1]
    await s.run_sink(s.sink_settings(db_dsn, kafka))
    conn = await asyncpg.connect(db_dsn)
    try:
        summary = await conn.fetchrow("SELECT * FROM get_workflow_debug_summary($1)", workflow)
    finally:
        await conn.close()
    assert summary is not None
    assert (summary["step_count"], summary["error_count"], summary["success_count"]) == (1, 1, 2)
    assert summary["llm_call_count"] == 1
