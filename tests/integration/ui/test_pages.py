"""The web view over HTTP, against real PostgreSQL and the real server (uvicorn on a loopback
port), as the read-only role: what each page lists, its filters and pages, 404s and 400s,
escaping, the security headers, credentials and the Host check.

The data (one database for the module: the tests only read): the demo fleet's workflows,
correlated; a workflow whose agent name, error and state carry markup; dead letters.
"""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import structlog.testing

from debug_sink.read.queries import DebugQueries, init_read_only
from debug_sink.read.workflows import WORKFLOW_STATUSES
from debug_sink.ui.security import CONTENT_SECURITY_POLICY
from debug_sink.ui.server import create_view_pool
from tests import support as s
from tests.ui_support import (
    IMG_INJECTION,
    INJECTION,
    Stored,
    running_view,
    store_dead_letter,
    store_fleet,
    view_settings,
)

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
ROW = re.compile(r'<tr data-status="([a-z]+)">(.*?)</tr>', re.S)
LINK = re.compile(r'href="/workflows/([0-9a-f-]{36})"')
TIME = re.compile(r'<time datetime="([^"]+)"')


@pytest_asyncio.fixture(scope="module")
async def stored(module_db: str) -> Stored:
    demo, injected = await store_fleet(module_db, workflows=30)
    letters = [
        await store_dead_letter(
            module_db,
            value=b'{"error_severity": "urgent", "note": "' + INJECTION.encode() + b'"}',
            reason=f"error_severity: Input should be 'low' {INJECTION}",
            offset=offset,
        )
        for offset in range(3)
    ]
    letters.append(
        await store_dead_letter(
            module_db,
            value=b"\xff\xfenot json",
            reason="not JSON",
            error_class="not_json",
            offset=9,
        )
    )
    return Stored(module_db, demo, injected, letters)


@pytest_asyncio.fixture(scope="module")
async def client(stored: Stored) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_view(view_settings(stored.dsn)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        yield http


@pytest_asyncio.fixture(scope="module")
async def queries(stored: Stored) -> AsyncIterator[DebugQueries]:
    async with await DebugQueries.connect(s.as_reader(stored.dsn)) as q:
        yield q


async def page(client: httpx.AsyncClient, path: str, **params: Any) -> str:
    # None, not {}: httpx replaces a path's own query with empty params.
    response = await client.get(path, params=params or None)
    assert response.status_code == 200, (path, response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def rows(html: str) -> list[tuple[str, uuid.UUID, str]]:
    """(status, correlation id, last activity) of each row of the workflow list."""
    found = []
    for status, body in ROW.findall(html):
        (ident,) = LINK.findall(body)
        found.append((status, uuid.UUID(ident), TIME.findall(body)[-1]))
    return found


class TestWorkflowList:
    """Every workflow, latest activity first; filters by the CLI's rules; keyset pages."""

    async def test_all_workflows_newest_first(
        self, client: httpx.AsyncClient, stored: Stored
    ) -> None:
        listed = rows(await page(client, "/workflows", limit=200))
        assert {i for _, i, _ in listed} == {*stored.demo, stored.injected}
        moments = [datetime.fromisoformat(t) for _, _, t in listed]
        assert moments == sorted(moments, reverse=True)

    @pytest.mark.parametrize("status", WORKFLOW_STATUSES)
    async def test_status_filter_agrees_with_the_workflows_command(
        self, client: httpx.AsyncClient, queries: DebugQueries, status: str
    ) -> None:
        """The list's status rule is the `debug-sink workflows` rule: same workflows."""
        listed = rows(await page(client, "/workflows", status=status, limit=200))
        assert all(st == status for st, _, _ in listed)
        expected = await queries.workflows(EPOCH, status=status, limit=200)
        assert {i for _, i, _ in listed} == {r["correlation_id"] for r in expected}

    async def test_rows_count_as_get_workflow_debug_summary(
        self, queries: DebugQueries, stored: Stored
    ) -> None:
        """The list's columns are get_workflow_debug_summary()'s, looked up inline."""
        page = await queries.workflow_page(limit=200)
        assert len(page.rows) == len(stored.demo) + 1
        for row in page.rows:
            summary = await queries.get_workflow_debug_summary(row["correlation_id"])
            for column in ("step_count", "failed_step_count", "error_count",
                           "unrecovered_error_count", "success_count", "recovery_count",
                           "llm_call_count", "transformation_count", "first_event_at"):  # fmt: skip
                assert row[column] == summary[column], (column, row, summary)
            assert row["agents"] == summary["agents_involved"]

    async def test_demo_has_failed_and_recovered_workflows(self, queries: DebugQueries) -> None:
        """The demo gives the list something to filter (the browser tests rely on it)."""
        for status in ("failed", "recovered"):
            assert await queries.workflows(EPOCH, status=status, limit=1), status

    async def test_error_type_and_agent_filters(
        self, client: httpx.AsyncClient, stored: Stored
    ) -> None:
        conn = await asyncpg.connect(stored.dsn)
        try:
            with_timeout = {
                r[0]
                for r in await conn.fetch(
                    "SELECT DISTINCT correlation_id FROM debug_error_events "
                    "WHERE error_type = 'TimeoutError'"
                )
            }
            with_coder = {
                r[0]
                for r in await conn.fetch(
                    "SELECT DISTINCT correlation_id FROM debug_workflow_steps "
                    "WHERE agent_name = 'coder'"
                )
            }
        finally:
            await conn.close()
        assert with_timeout
        listed = rows(await page(client, "/workflows", error_type="TimeoutError", limit=200))
        assert {i for _, i, _ in listed} == with_timeout
        listed = rows(await page(client, "/workflows", agent="coder", limit=200))
        assert {i for _, i, _ in listed} == with_coder

    async def test_keyset_pages_cover_every_workflow_once(self, client: httpx.AsyncClient) -> None:
        whole = [i for _, i, _ in rows(await page(client, "/workflows", limit=200))]
        seen: list[uuid.UUID] = []
        path, params = "/workflows", {"limit": "7"}
        for _ in range(20):
            html = await page(client, path, **params)
            seen += [i for _, i, _ in rows(html)]
            older = re.search(r'<a href="([^"]+)" rel="next">', html)
            if older is None:
                break
            path, params = older[1].replace("&amp;", "&"), {}
        assert seen == whole
        assert len(seen) > 7

    async def test_time_range(self, client: httpx.AsyncClient, stored: Stored) -> None:
        """The demo's workflows all ran in the last hours: "1h" shows some, "all" all."""
        recent = rows(await page(client, "/workflows", since="1h", limit=200))
        assert 0 < len(recent) <= len(stored.demo) + 1

    async def test_find_by_prefix(self, client: httpx.AsyncClient, stored: Stored) -> None:
        target = stored.demo[0]
        response = await client.get("/workflows", params={"q": str(target)[:13]})
        assert response.status_code == 303
        assert response.headers["location"] == f"/workflows/{target}"
        response = await client.get("/workflows", params={"q": "not-hex!"})
        assert response.status_code == 400

    @pytest.mark.parametrize(
        "params",
        [{"status": "exploded"}, {"limit": "0"}, {"limit": "x"}, {"before": "garbage"},
         {"since": "2y"}, {"error_type": "Timeout\x00Error"}, {"agent": "a\x00"}],
    )  # fmt: skip
    async def test_bad_parameters_are_400(
        self, client: httpx.AsyncClient, params: dict[str, str]
    ) -> None:
        response = await client.get("/workflows", params=params)
        assert response.status_code == 400
        assert next(iter(params)) in response.text


class TestWorkflowPage:
    """A workflow's page: waterfall rows, errors with their recovery, raw events."""

    async def test_a_stated_recovery_with_its_confidence(
        self, client: httpx.AsyncClient, stored: Stored
    ) -> None:
        conn = await asyncpg.connect(stored.dsn)
        try:
            link = await conn.fetchrow(
                "SELECT correlation_id, recovery_strategy, confidence_score "
                "FROM debug_error_success_correlation WHERE link_source = 'stated' LIMIT 1"
            )
            steps = await conn.fetchval(
                "SELECT count(DISTINCT (coalesce(parent_step_id::text, ''), step_number)) "
                "FROM debug_workflow_steps WHERE correlation_id = $1",
                link["correlation_id"],
            )
        finally:
            await conn.close()
        html = await page(client, f"/workflows/{link['correlation_id']}")
        recovered = re.findall(r'<p class="recovered">(.*?)</p>', html, re.S)
        assert any(
            link["recovery_strategy"] in r
            and "link-stated" in r
            and f"confidence {float(link['confidence_score']) * 100:.1f}%" in r
            for r in recovered
        ), recovered
        assert html.count('class="wf-row kind-step') == steps

    async def test_unknown_workflow_and_event(self, client: httpx.AsyncClient) -> None:
        for path in (f"/workflows/{uuid.uuid4()}", f"/events/{uuid.uuid4()}", "/events/x",
                     "/dead-letters/987654", "/nothing/here"):  # fmt: skip
            response = await client.get(path)
            assert response.status_code == 404, path
            assert "Not found" in response.text

    async def test_raw_event_as_html_and_json(
        self, client: httpx.AsyncClient, stored: Stored
    ) -> None:
        html = await page(client, f"/workflows/{stored.injected}")
        error_id = re.search(r'id="error-([0-9a-f-]{36})"', html)
        assert error_id is not None
        response = await client.get(f"/events/{error_id[1]}/json")
        document = response.json()
        assert (document["kind"], document["data"]["id"]) == ("error", error_id[1])
        # every column of the row, also those the timeline leaves out
        assert "error_stack_trace" in document["data"]
        assert document["data"]["error_message"] == IMG_INJECTION
        assert "error_message" in await page(client, f"/events/{error_id[1]}")


class TestEscaping:
    """Markup stored by an agent is shown as text on every page."""

    @pytest.mark.parametrize(
        "path", ["/workflows", "/workflows/{injected}", "/known-fixes", "/dead-letters",
                 "/dead-letters/{letter}", "/workflows?agent={agent}"],
    )  # fmt: skip
    async def test_markup_is_escaped(
        self, client: httpx.AsyncClient, stored: Stored, path: str
    ) -> None:
        url = path.format(injected=stored.injected, letter=stored.letters[0], agent=INJECTION)
        response = await client.get(url)
        assert response.status_code == 200
        body = response.text
        assert "<script>window.__pwned" not in body
        assert "<img src=x" not in body
        assert "<svg/onload" not in body
        # ... and is there, as text: the type on the known-fixes page, the name elsewhere
        assert "&lt;script&gt;window.__pwned" in body or "Xss&lt;svg/onload" in body

    async def test_injected_workflow_shows_its_text(
        self, client: httpx.AsyncClient, stored: Stored
    ) -> None:
        html = await page(client, f"/workflows/{stored.injected}")
        assert html.count("&lt;script&gt;window.__pwned = 1; alert(&#34;pwned&#34;)") >= 2
        assert "&lt;img src=x onerror=&#34;window.__pwned = 2; alert(2)&#34;&gt;" in html
        assert IMG_INJECTION not in html


class TestSecurity:
    """Headers, methods, the Host check and credentials."""

    @pytest.mark.parametrize("path", ["/workflows", "/nothing", "/static/style.css", "/live"])
    async def test_headers_on_every_response(self, client: httpx.AsyncClient, path: str) -> None:
        response = await client.get(path)
        headers = response.headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        if not path.startswith("/static/"):
            assert headers["cache-control"] == "no-store"
        assert "server" not in headers

    @pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
    async def test_no_method_writes(self, client: httpx.AsyncClient, method: str) -> None:
        response = await client.request(method, "/workflows")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD"

    async def test_no_form_posts(self, client: httpx.AsyncClient) -> None:
        for path in ("/workflows", "/known-fixes"):
            forms = re.findall(r"<form[^>]*>", await page(client, path))
            assert forms
            assert all('method="get"' in f for f in forms), forms

    async def test_only_loopback_host_names_without_credentials(
        self, client: httpx.AsyncClient
    ) -> None:
        """A page elsewhere cannot read the view by pointing its own name at 127.0.0.1."""
        for host in ("evil.example", "evil.example:9470", "10.0.0.1"):
            response = await client.get("/workflows", headers={"host": host})
            assert response.status_code == 421, host
        for host in ("localhost:1", "127.0.0.1", "[::1]:9470"):
            response = await client.get("/healthz", headers={"host": host})
            assert response.status_code == 200, host

    async def test_credentials_when_configured(self, stored: Stored) -> None:
        settings = view_settings(
            stored.dsn, ui_token="tok-123", ui_username="ops", ui_password="pw-456"
        )
        async with (
            running_view(settings) as url,
            httpx.AsyncClient(base_url=url) as http,
        ):
            assert (await http.get("/workflows")).status_code == 401
            assert (await http.get("/workflows")).headers["www-authenticate"].startswith("Basic")
            bad = {"authorization": "Bearer nope"}
            assert (await http.get("/workflows", headers=bad)).status_code == 401
            token = {"authorization": "Bearer tok-123"}
            assert (await http.get("/workflows", headers=token)).status_code == 200
            basic = base64.b64encode(b"ops:pw-456").decode()
            ok = await http.get("/workflows", headers={"authorization": f"Basic {basic}"})
            assert ok.status_code == 200
            # with credentials, any Host name is served (a proxy's, a cluster's)
            named = await http.get("/healthz", headers={**token, "host": "debug.example"})
            assert named.status_code == 200
            assert "tok-123" not in ok.text
            assert "pw-456" not in ok.text

    async def test_guessing_is_refused_per_address(self, stored: Stored) -> None:
        """After DEBUG_SINK_UI_FAILED_LOGINS wrong guesses, the address gets 429 for whatever
        it sends (right credentials too: an answer that differed would confirm a guess);
        another address, and requests without credentials, are not affected."""
        settings = view_settings(stored.dsn, ui_password="pw-456", ui_failed_logins=3)
        right = {"authorization": "Basic " + base64.b64encode(b"debug-sink:pw-456").decode()}
        wrong = {"authorization": "Basic " + base64.b64encode(b"debug-sink:guess").decode()}
        other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with (
            running_view(settings) as url,
            httpx.AsyncClient(base_url=url) as http,
            httpx.AsyncClient(base_url=url, transport=other) as elsewhere,
        ):
            with structlog.testing.capture_logs() as logs:
                for _ in range(5):  # a browser's first request is not a guess
                    assert (await http.get("/workflows")).status_code == 401
                assert (await http.get("/workflows", headers=right)).status_code == 200
                for _ in range(3):
                    assert (await http.get("/workflows", headers=wrong)).status_code == 401
                refused = [
                    await http.get("/workflows", headers=headers) for headers in (right, wrong, {})
                ]
                assert (await elsewhere.get("/workflows", headers=right)).status_code == 200
                assert (await elsewhere.get("/workflows", headers=wrong)).status_code == 401
            assert {r.status_code for r in refused} == {429}
            assert len({r.text for r in refused}) == 1
            assert all(0 < int(r.headers["retry-after"]) <= 300 for r in refused)
            locked = [e for e in logs if e["event"] == "ui_failed_logins"]
            assert [e["client"] for e in locked] == ["127.0.0.1"]
            for secret in (
                "guess",
                "pw-456",
                wrong["authorization"][6:],
                right["authorization"][6:],
            ):
                assert secret not in repr(logs)

    async def test_the_pool_cannot_write_even_as_the_owner(self, stored: Stored) -> None:
        """Every transaction of the view's pool is read-only, whatever its role may do --
        also after a connection went back to the pool (whose reset, ``RESET ALL``, undid
        the session's settings: the second use could write, and lost its generic plans)."""
        conn = await asyncpg.connect(stored.dsn)
        try:
            await init_read_only(conn)
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await conn.execute("DELETE FROM sink_dead_letters")
        finally:
            await conn.close()
        queries = await DebugQueries.connect(stored.dsn, max_size=1, read_only=True)
        for pool, plans in (
            (await create_view_pool(stored.dsn, max_size=1), "force_generic_plan"),
            (queries._pool, "auto"),
        ):
            try:
                for _ in range(3):
                    async with pool.acquire() as conn:
                        assert await conn.fetchval("SHOW default_transaction_read_only") == "on"
                        assert await conn.fetchval("SHOW plan_cache_mode") == plans
                        assert await conn.fetchval("SHOW search_path") == "public"
                        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                            await conn.execute("DELETE FROM sink_dead_letters")
            finally:
                await pool.close()


class TestKnownFixes:
    """Strategies per error type in the order known_fixes() ranks them."""

    async def test_overview_ranks_as_known_fixes(
        self, client: httpx.AsyncClient, queries: DebugQueries
    ) -> None:
        html = await page(client, "/known-fixes")
        types = await queries.error_type_names()
        recovered = [t["error_type"] for t in types if t["recovered"]]
        assert recovered
        for error_type in recovered[:3]:
            detail = await page(client, "/known-fixes", error_type=error_type)
            shown = re.findall(r'<td data-label="Strategy" class="strategy">([^<]+)</td>', detail)
            expected = [f["recovery_strategy"] for f in await queries.known_fixes(error_type)]
            assert shown == expected
            counts = [f["success_count"] for f in await queries.known_fixes(error_type)]
            assert counts == sorted(counts, reverse=True)
            assert error_type in html


class TestDeadLetters:
    async def test_groups_letters_and_one_letter(
        self, client: httpx.AsyncClient, stored: Stored
    ) -> None:
        html = await page(client, "/dead-letters")
        assert re.search(r"schema</a></td>\s*<td[^>]*>3</td>", html), html
        assert "not_json" in html
        assert "error_severity: Input should be" in html
        one = await page(client, f"/dead-letters/{stored.letters[0]}")
        assert "&#34;error_severity&#34;: &#34;urgent&#34;" in one  # indented JSON, escaped
        binary = await page(client, f"/dead-letters/{stored.letters[-1]}")
        assert "not json" in binary

    async def test_pages_of_letters(self, client: httpx.AsyncClient, stored: Stored) -> None:
        first = await page(client, "/dead-letters", limit=2, topic="debug.error_events")
        ids = re.findall(r'<a href="/dead-letters/(\d+)">', first)
        assert ids == [str(i) for i in sorted(stored.letters, reverse=True)[:2]]
        assert 'rel="next"' in first


class TestLive:
    """Figures from each sink's /metrics; a sink that does not answer is shown down."""

    async def test_figures_and_a_sink_down(self, stored: Stored) -> None:
        from debug_sink.metrics import Metrics

        metrics = Metrics()
        metrics.lag.labels(topic="debug.error_events", partition="0").set(4321)
        metrics.parked_rows.set(17)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            body = metrics.render()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        urls = (f"http://127.0.0.1:{port}/metrics", "http://127.0.0.1:9/metrics")
        try:
            async with (
                running_view(view_settings(stored.dsn, ui_metrics_urls=urls)) as url,
                httpx.AsyncClient(base_url=url) as http,
            ):
                html = (await http.get("/live")).text
        finally:
            server.close()
            await server.wait_closed()
        assert "4,321" in html
        assert "17" in html
        assert html.count('class="badge status-ok">up') == 1
        assert html.count('class="badge status-failed">down') == 1
        assert "unreachable" in html
        assert "Correlator runs" in html

    async def test_healthz(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.json() == {"ok": True}
