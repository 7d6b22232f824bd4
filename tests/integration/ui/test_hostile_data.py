"""The web view with hostile stored data (one event, a chain or a cycle of parents, a name
ending with a space, an absurd latency), over HTTP against the real server."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio

from debug_sink.sdk.emitter import MemoryEmitter
from debug_sink.sink.tables import init_connection
from debug_sink.sink.writer import BatchWriter
from tests import support as s
from tests.sdk_support import memory_manager, settings_for, write_direct
from tests.support import HK, ST
from tests.ui_support import running_view, view_settings


async def _write(dsn: str, manager: Any) -> None:
    await manager.close()
    emitter = manager.emitter
    assert isinstance(emitter, MemoryEmitter)
    await write_direct(settings_for(dsn), emitter.messages)


async def _write_events(dsn: str, events: list[tuple[Any, dict[str, Any]]]) -> None:
    """Wire-format ``events`` through the sink's BatchWriter, as the writer role."""
    pool = await asyncpg.create_pool(s.as_writer(dsn), min_size=1, max_size=2, init=init_connection)
    try:
        await BatchWriter(pool, group_id="hostile", park_grace=600).write(
            s.batch_of(events, itertools.count())
        )
    finally:
        await pool.close()


async def store_deep_chain(dsn: str, depth: int) -> uuid.UUID:
    """A workflow of ``depth`` steps, each the child of the one before (parent_step_id)."""
    corr = uuid.uuid4()
    manager = memory_manager()
    parent = None
    for n in range(1, depth + 1):
        step = await manager.start_step(
            corr, "agent", f"op{n}", step_number=n, parent_step_id=parent
        )
        await manager.complete_step(step, "completed")
        parent = step.id
    await _write(dsn, manager)
    return corr


async def store_parent_cycle(dsn: str) -> tuple[uuid.UUID, list[str]]:
    """A workflow whose steps 2 and 3 name each other as parent, written through the sink's
    BatchWriter as one batch (a raw producer chooses ids and parent_step_id); step 1 is
    ordinary."""
    corr = str(uuid.uuid4())
    a, b = s.uid(), s.uid()
    events = [
        (ST, s.step(corr, 1, "completed", operation_name="first_op", started_at=s.ts(0),
                    completed_at=s.ts(1))),
        (ST, s.step(corr, 2, "completed", id=a, parent_step_id=b, operation_name="second_op",
                    started_at=s.ts(1), completed_at=s.ts(2))),
        (ST, s.step(corr, 3, "completed", id=b, parent_step_id=a, operation_name="third_op",
                    started_at=s.ts(2), completed_at=s.ts(3))),
    ]  # fmt: skip
    pool = await asyncpg.create_pool(s.as_writer(dsn), min_size=1, max_size=2, init=init_connection)
    try:
        result = await BatchWriter(pool, group_id="redteam", park_grace=600).write(
            s.batch_of(events, itertools.count())
        )
    finally:
        await pool.close()
    conn = await asyncpg.connect(dsn)
    try:
        n = await conn.fetchval(
            "SELECT count(*) FROM debug_workflow_steps WHERE correlation_id = $1::uuid", corr
        )
    finally:
        await conn.close()
    assert n == 3, (n, result)
    return uuid.UUID(corr), [a, b]


@pytest_asyncio.fixture
async def client(db_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_view(view_settings(db_dsn)) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as http,
    ):
        yield http


async def test_deeply_nested_steps_workflow_page_renders(
    db_dsn: str, client: httpx.AsyncClient
) -> None:
    """A workflow of 1,200 nested steps (any producer can send parent_step_id chains): its
    page must render, not fail with a 500."""
    corr = await store_deep_chain(db_dsn, 1200)
    response = await client.get(f"/workflows/{corr}")
    assert response.status_code == 200, (response.status_code, response.text[-400:])


async def test_steps_in_a_parent_cycle_are_shown(db_dsn: str, client: httpx.AsyncClient) -> None:
    """README: a waterfall with "a row per step". Steps whose parent_step_ids point at each
    other (hostile or buggy producer) must not vanish from the waterfall."""
    corr, _ids = await store_parent_cycle(db_dsn)
    response = await client.get(f"/workflows/{corr}")
    assert response.status_code == 200
    html = response.text
    waterfall = html.split('id="waterfall"', 1)[1].split("</section>", 1)[0]
    assert "first_op" in waterfall
    assert "second_op" in waterfall, waterfall[:3000]
    assert "third_op" in waterfall, waterfall[:3000]


PAYLOADS = [
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(2)>",
    "</textarea></title></pre><script>alert(3)</script>",
    "javascript:alert(4)//",
]


async def test_hostile_strings_escaped_everywhere(db_dsn: str, client: httpx.AsyncClient) -> None:
    """Attribute-breaking quotes, closing tags and javascript: in every free-text field,
    on every page that shows them (control: expected to hold)."""
    from tests.sdk_support import correlate

    corr = uuid.uuid4()
    manager = memory_manager()
    p = " ".join(PAYLOADS)
    good = {"k": p, p: {"n": p}}
    await manager.capture_snapshot(corr, p, good, "checkpoint", user_request=p)
    step = await manager.start_step(corr, p, p, step_description=p, agent_state=good)
    error = await manager.capture_error_state(
        corr, p, p, {**good, "k": p + "!", "new" + p: [p]}, "high", error_type=p,
        operation_name=p, error_code=p, recovery_strategy=p,
    )  # fmt: skip
    await manager.complete_step(step, "failed", error_event_id=error)
    await manager.start_step(corr, p, p, step_number=1, attempt=2)
    await _write(db_dsn, manager)
    await correlate(db_dsn)
    pages = [
        "/workflows",
        f"/workflows/{corr}",
        f"/events/{error}",
        "/known-fixes",
        "/workflows?" + httpx.QueryParams({"agent": p[:255]}).__str__(),
        "/known-fixes?" + httpx.QueryParams({"error_type": p[:255]}).__str__(),
        "/workflows?" + httpx.QueryParams({"q": PAYLOADS[0]}).__str__(),
        "/workflows?" + httpx.QueryParams({"status": PAYLOADS[1]}).__str__(),
        "/workflows/" + "%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
        "/dead-letters?" + httpx.QueryParams({"topic": p[:255]}).__str__(),
    ]
    for path in pages:
        response = await client.get(path)
        assert response.status_code in (200, 400, 404), (path, response.status_code)
        body = response.text
        for needle in ("<img src=x", "<svg onload", "<script>alert", 'href="javascript:'):
            assert needle not in body, (path, needle)
        if path in ("/workflows", f"/workflows/{corr}", f"/events/{error}", "/known-fixes"):
            assert "&lt;img src=x" in body or "&#34;&gt;&lt;img" in body, path


async def test_agent_link_with_trailing_space_lists_that_agents_workflows(
    db_dsn: str, client: httpx.AsyncClient
) -> None:
    """The agent links of a workflow page lead to "/workflows?agent=NAME". An agent named
    "planner " (trailing space: a valid Name255) must list its own workflow, not another
    agent's."""
    spaced, plain = s.uid(), s.uid()
    now = s.ts(0)
    events = [
        (ST, s.step(spaced, 1, "completed", agent_name="planner ", started_at=now,
                    completed_at=now)),
        (ST, s.step(plain, 1, "completed", agent_name="planner", started_at=now,
                    completed_at=now)),
    ]  # fmt: skip
    await _write_events(db_dsn, events)
    page = (await client.get(f"/workflows/{spaced}")).text
    href = page.split('<a class="agent" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert href == "/workflows?agent=planner+", href
    listed = (await client.get(href)).text
    assert f"/workflows/{spaced}" in listed, "the spaced agent's own workflow is missing"
    assert f"/workflows/{plain}" not in listed, "another agent's workflow is listed instead"


async def store_huge_latency(db_dsn: str) -> str:
    """A workflow of one step and one PostToolUse hook event whose free-form payload says
    quality_metrics.latency_ms = 1e15 (valid JSON, accepted by the schema)."""
    corr = s.uid()
    now = s.ts(0)
    events = [
        (ST, s.step(corr, 1, "completed", started_at=now, completed_at=s.ts(1))),
        (HK, s.hook(corr, payload={"quality_metrics": {"latency_ms": 1e15}})),
    ]
    await _write_events(db_dsn, events)
    return corr


async def test_llm_call_with_huge_latency_does_not_break_the_page(
    db_dsn: str, client: httpx.AsyncClient
) -> None:
    """A PostToolUse hook event's payload is free-form JSON; its quality_metrics.latency_ms
    becomes the LLM call's bar. A huge number there must not make the workflow page a 500."""
    corr = await store_huge_latency(db_dsn)
    response = await client.get(f"/workflows/{corr}")
    result = s.run_cli("show", corr, "--no-color", env=s.cli_env(s.as_reader(db_dsn)))
    assert result.returncode == 0, result.stderr[-600:]  # the CLI copes
    assert response.status_code == 200, response.status_code


async def store_long_workflow(db_dsn: str, steps: int) -> uuid.UUID:
    """A workflow of ``steps`` completed steps, one millisecond apart (one INSERT: a fleet's
    long-running workflow), then one error with a 100,000-character message whose state
    differs from a good snapshot before it in 2,000 keys."""
    corr = uuid.uuid4()
    await s.store_completed_steps(db_dsn, corr, steps)
    good = s.snapshot(str(corr), {f"k{n}": n for n in range(2000)}, captured_at=s.ts(-2))
    state = s.snapshot(
        str(corr),
        {f"k{n}": -n - 1 for n in range(2000)},
        snapshot_type="error",
        captured_at=s.ts(-1),
    )
    error = s.error(
        str(corr), state_snapshot_id=state["id"], occurred_at=s.ts(-1), error_message="m" * 100_000
    )
    await _write_events(db_dsn, [(s.SN, good), (s.SN, state), (s.ER, error)])
    return corr


async def test_workflow_of_many_events_shows_a_bounded_page(
    db_dsn: str, client: httpx.AsyncClient
) -> None:
    """A workflow of more events than a page shows (a fleet's workflows reach hundreds of
    thousands: the page was hundreds of MB, built for tens of seconds while the view's
    event loop waited): the first WORKFLOW_EVENTS by time, and the page says there are
    more; an error's long message and large diff are cut, and say so."""
    from debug_sink.ui.pages import DIFF_ROWS, MESSAGE_CHARS, WORKFLOW_EVENTS

    corr = await store_long_workflow(db_dsn, WORKFLOW_EVENTS + 500)
    response = await client.get(f"/workflows/{corr}")
    assert response.status_code == 200
    html = response.text
    assert 'id="events-cut"' in html
    assert html.count('<li class="wf-row ') <= WORKFLOW_EVENTS
    assert f"op{WORKFLOW_EVENTS + 500}<" not in html  # the last step: beyond the page
    assert "m" * (MESSAGE_CHARS + 1) not in html
    assert "100,000 characters" in html
    assert html.count('<tr class="diff-changed">') == DIFF_ROWS
    assert f"{2000 - DIFF_ROWS:,} more changes" in html
    assert len(response.content) < 4_000_000


async def test_show_of_many_events_is_bounded(db_dsn: str) -> None:
    """``show`` reads the first --limit events by time (the whole workflow before) and says
    when there are more, in text and in JSON."""
    corr = await store_long_workflow(db_dsn, 30)
    env = s.cli_env(s.as_reader(db_dsn))
    result = s.run_cli("show", str(corr), "--limit", "10", "--no-color", env=env)
    assert result.returncode == 0, result.stderr[-600:]
    assert "the first 10 events by time" in result.stdout
    assert "m" * 2001 not in result.stdout
    result = s.run_cli("show", str(corr), "--limit", "10", "--json", env=env)
    document = orjson.loads(result.stdout)
    assert len(document["timeline"]) == 10
    assert document["timeline_complete"] is False
    result = s.run_cli("show", str(corr), "--json", env=env)
    assert orjson.loads(result.stdout)["timeline_complete"] is True


async def test_workflow_page_reads_no_more_rows_than_it_shows(
    db_dsn: str, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workflow of 3,000 errors, each recovered by its own success: no query of its page
    returns more rows than the page shows events (its recovery links were read for every
    error of the workflow, not only for those on the page)."""
    from debug_sink.read.queries import DebugQueries
    from debug_sink.ui.pages import WORKFLOW_EVENTS

    corr = uuid.uuid4()
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            "CREATE TEMP TABLE pair AS SELECT g, gen_random_uuid() AS e, gen_random_uuid() AS u "
            "FROM generate_series(1, 3000) AS g;"
            "INSERT INTO debug_error_events (id, correlation_id, error_type, error_category, "
            "error_severity, error_message, agent_name, occurred_at) "
            f"SELECT e, '{corr}', 'TimeoutError', 'external', 'high', 'x', 'agent', "
            "now() - interval '1 hour' + g * interval '1 s' FROM pair;"
            "INSERT INTO debug_success_events (id, correlation_id, success_type, operation_name, "
            f"agent_name, occurred_at) SELECT u, '{corr}', 'recovery_success', 'op', 'agent', "
            "now() - interval '1 hour' + g * interval '1 s' + interval '1 ms' FROM pair;"
            "INSERT INTO debug_error_success_correlation (error_event_id, success_event_id, "
            f"correlation_id, recovery_strategy) SELECT e, u, '{corr}', 'retry' FROM pair"
        )
    finally:
        await conn.close()
    returned: dict[str, int] = {}
    fetch = DebugQueries._fetch

    async def counting(self: DebugQueries, name: str, *args: Any) -> Any:
        rows = await fetch(self, name, *args)
        returned[name] = max(returned.get(name, 0), len(rows))
        return rows

    monkeypatch.setattr(DebugQueries, "_fetch", counting)
    response = await client.get(f"/workflows/{corr}")
    assert response.status_code == 200
    assert 'id="events-cut"' in response.text
    assert max(returned.values()) <= WORKFLOW_EVENTS + 1, returned


async def test_a_workflow_of_thousands_of_agents_names_a_few(
    db_dsn: str, client: httpx.AsyncClient
) -> None:
    """One workflow whose 3,000 steps ran in 3,000 differently named workers: the list's
    row and the page's summary named every one (a row of the list as large as the page)."""
    from debug_sink.ui.pages import AGENTS_SHOWN

    corr = uuid.uuid4()
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            "INSERT INTO debug_workflow_steps (correlation_id, step_number, step_type, "
            "agent_name, operation_name, status, started_at, completed_at) "
            "SELECT $1::uuid, g, 'execution', 'worker-' || g, 'op', 'completed', "
            "now() - interval '1 minute', now() - interval '1 minute' "
            "FROM generate_series(1, 3000) AS g",
            corr,
        )
    finally:
        await conn.close()
    page = (await client.get(f"/workflows/{corr}")).text
    summary = page.split('<dd class="agents">', 1)[1].split("</dd>", 1)[0]
    assert summary.count('class="agent"') == AGENTS_SHOWN
    assert f"and {3000 - AGENTS_SHOWN:,} more" in summary
    listed = (await client.get("/workflows")).text
    row = listed.split(f"/workflows/{corr}", 1)[1].split("</tr>", 1)[0]
    assert row.count('class="agent"') == AGENTS_SHOWN
