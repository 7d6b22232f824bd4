"""The web view when PostgreSQL goes away under it, and hostile requests: host names that
rebind, parameters that are odd, huge, or beyond what the columns they reach can hold.

PostgreSQL "goes down" through a TCP relay in front of the suite's server: closing the relay
resets the pool's connections and refuses new ones, as a restarted or crashed server does.

(From a red team's tests; the parameters beyond a column's type were 500s: asyncpg's
DataError for a number past a bigint, ValueError for digits ``int`` does not read.)"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import structlog

from tests import support as s
from tests.integration.hooks.relay import Relay
from tests.ui_support import running_view, store_dead_letter, store_injection, view_settings

PASSWORD = "Pg-Passw0rd-Must-Not-Leak"
PAGES = ["/workflows", "/known-fixes", "/dead-letters", "/live", "/workflows?agent=x"]


def _through(dsn: str, relay: Relay) -> str:
    parts = urlsplit(s.as_reader(dsn))
    netloc = f"{parts.username}:{PASSWORD}@{relay.address}"
    return urlunsplit(parts._replace(netloc=netloc))


def _leaks(text: str, relay: Relay) -> list[str]:
    found = [w for w in (PASSWORD, "Traceback", 'File "', "asyncpg", relay.address) if w in text]
    return found


async def test_database_down_under_a_running_view_is_a_clear_503(db_dsn: str) -> None:
    """README: the error pages are "503 when the database is unavailable ... each a page of
    the view, never a traceback". The pool's connections die with the server."""
    corr = await store_injection(db_dsn)
    pg = urlsplit(db_dsn)
    relay = Relay(f"{pg.hostname}:{pg.port}")
    relay.open()
    try:
        settings = view_settings(db_dsn, postgres_dsn=_through(db_dsn, relay))
        async with running_view(settings) as url, httpx.AsyncClient(base_url=url) as http:
            paths = [*PAGES, f"/workflows/{corr}"]
            for path in paths:
                assert (await http.get(path)).status_code == 200, path
            relay.close()  # PostgreSQL is gone
            answers = {}
            event = uuid.uuid4()
            with structlog.testing.capture_logs() as logs:
                for path in [*paths, f"/events/{event}", "/healthz"]:
                    response = await http.get(path)
                    answers[path] = (response.status_code, _leaks(response.text, relay))
            wrong = {p: a for p, a in answers.items() if a[1] or a[0] != 503}
            assert not wrong, f"status and leaks per page: {answers}"
            # The log names the route, never a request's ids or search text.
            routes = {e["route"] for e in logs if e["event"] == "ui_database_unavailable"}
            assert "/events/{event_id}" in routes, routes
            assert not [e for e in logs if str(event) in str(e) or str(corr) in str(e)]
    finally:
        relay.close()


async def test_database_back_after_an_outage_serves_again(db_dsn: str) -> None:
    """After PostgreSQL is back the view serves pages again without a restart (README: "this
    page will work again once it does")."""
    pg = urlsplit(db_dsn)
    relay = Relay(f"{pg.hostname}:{pg.port}")
    relay.open()
    try:
        settings = view_settings(db_dsn, postgres_dsn=_through(db_dsn, relay))
        async with running_view(settings) as url, httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/workflows")).status_code == 200
            relay.close()
            for path in PAGES:
                await http.get(path)
            relay.open()
            statuses = {}
            for path in PAGES:
                statuses[path] = (await http.get(path)).status_code
            assert set(statuses.values()) == {200}, statuses
    finally:
        relay.close()


async def test_many_requests_on_a_locked_database_all_answer_in_bounded_time(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock held on the tables the pages read (a migration, an operator's ``LOCK TABLE``)
    and 200 requests at once: each is a 503 within the page's deadline, including the time
    it waits for one of the pool's few connections, and pages work again once the lock goes.

    (From a red team's tests: requests queued for the pool's 4 connections without a bound,
    each batch of 4 waiting out the statement timeout: the 200th answered after ~50 statement
    timeouts -- 12 minutes at the 15 s default.)"""
    from debug_sink.ui import server

    monkeypatch.setattr(server, "_STATEMENT_TIMEOUT_S", 2.0)
    monkeypatch.setattr(server, "_PAGE_DEADLINE_S", 3.0, raising=False)
    corr = await store_injection(db_dsn)
    locker = await asyncpg.connect(db_dsn)
    limits = httpx.Limits(max_connections=250)
    try:
        async with (
            running_view(view_settings(db_dsn)) as url,
            httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http,
        ):
            assert (await http.get("/workflows")).status_code == 200
            async with locker.transaction():
                await locker.execute(
                    "LOCK TABLE debug_workflow_steps, debug_error_events, debug_success_events "
                    "IN ACCESS EXCLUSIVE MODE"
                )
                start = time.monotonic()
                paths = ["/workflows", f"/workflows/{corr}"] * 100
                answers = await asyncio.gather(*(http.get(p) for p in paths))
                took = time.monotonic() - start
                statuses = {r.status_code for r in answers}
                assert statuses == {503}, statuses
                assert "Database unavailable" in answers[-1].text
                assert took < 30, f"200 requests answered after {took:.0f} s"
            # The lock is gone: the view serves again, and no query of its is left waiting.
            assert (await http.get(f"/workflows/{corr}")).status_code == 200
            waiting = await locker.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                "'debug-sink-ui' AND wait_event_type = 'Lock'"
            )
            assert waiting == 0
    finally:
        await locker.close()


@pytest.mark.parametrize(
    "host",
    [
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "localhost@evil.example",
        "evil.example#localhost",
        "0.0.0.0",
        "[::ffff:127.0.0.1]",
        "127.1",
        "",
    ],
)
async def test_rebinding_host_names_are_refused(db_dsn: str, host: str) -> None:
    """Without credentials only loopback names are served: none of these is one a browser
    would send for the view itself (a rebinding page sends its own name)."""
    async with running_view(view_settings(db_dsn)) as url, httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/workflows", headers={"host": host})
        assert response.status_code in (400, 421), (host, response.status_code)


async def test_huge_and_odd_query_parameters_are_400_or_ignored(db_dsn: str) -> None:
    async with running_view(view_settings(db_dsn)) as url, httpx.AsyncClient(base_url=url) as http:
        checks = {
            "/workflows?limit=-1": {400},
            "/workflows?limit=99999999999999999999": {400},
            "/workflows?limit=1e3": {400},
            "/workflows?limit=%EF%BC%95": {200, 400},  # full-width 5: int() reads it
            "/workflows?limit=%D9%A5": {200, 400},  # Arabic-indic 5
            "/workflows?before=" + "A" * 100: {400},
            "/workflows?agent=" + "x" * 10_000: {400},
            "/workflows?agent=%27%3B%20DROP%20TABLE%20hook_events%3B--": {200},
            "/workflows?q=%27%20OR%201%3D1--": {400, 200},
            "/dead-letters?before=-5": {400},
            "/dead-letters?before=99999999999999999999999": {400},
            "/dead-letters?limit=5&before=" + "9" * 20: {400},
            "/workflows/" + "f" * 250: {404, 400, 200},
            "/events/" + str(uuid.UUID(int=0)) + "/json": {404},
            "/dead-letters/99999999999999999999999": {404},
            "/known-fixes?error_type=%00": {400},
            "/events/..%2F..%2Fetc%2Fpasswd": {404},
            "/static/..%2F..%2Fsettings.py": {404},
            "/static/../app.py": {404},
            "/workflows/%00": {400, 404},
            "/workflows/%C0%AF": {400, 404},
            "/workflows/abc%20def": {400, 404},
            "/events/%00": {404},
            "/dead-letters/-1": {404},
            "/workflows?since=%00": {400},
            "/workflows?status=failed%27--": {400},
            "/known-fixes?error_type=" + "x" * 300: {400},
            "/workflows?error_type=%F0%9F%92%A5%E2%80%AE": {200},
        }
        wrong = {}
        for path, allowed in checks.items():
            response = await http.get(path)
            if response.status_code not in allowed or "Traceback" in response.text:
                wrong[path[:70]] = response.status_code
            assert not re.search(r"root:.*:0:0:", response.text)
        assert not wrong, f"unexpected statuses: {wrong}"


BIGINT_MAX = 2**63 - 1
UUID0 = uuid.UUID(int=0)


BEYOND_THEIR_TYPES = {
    # dead letters' ids are bigints: one past is a 400 (a page) or a 404 (an id)
    f"/dead-letters?before={BIGINT_MAX + 1}": 400,
    f"/dead-letters?before={BIGINT_MAX}": 200,
    "/dead-letters?before=0": 200,
    f"/dead-letters/{BIGINT_MAX + 1}": 404,
    f"/dead-letters/{BIGINT_MAX}": 404,
    "/dead-letters/" + "0" * 30 + "7": 404,
    "/dead-letters/" + "9" * 5000: 404,  # more digits than int() reads
    "/dead-letters/0x10": 404,
    "/dead-letters/%EF%BC%95": 404,  # a full-width 5
    # digits int() does not read, or reads though they are not ASCII
    "/dead-letters?before=%C2%B2": 400,  # a superscript 2
    "/dead-letters?before=%EF%BC%95": 400,
    "/dead-letters?limit=%C2%B2": 400,
    "/workflows?limit=%C2%B2": 400,
    "/workflows?limit=%EF%BC%95": 400,
    "/workflows?limit=%D9%A5": 400,  # an Arabic-Indic 5
    "/workflows?limit=0025": 200,
    # uuids, and the list's cursor (a moment and a uuid) at the ends of their types
    f"/workflows?before=0001-01-01T00:00:00%2B05:00/{UUID0}": 200,
    f"/workflows?before=9999-12-31T23:59:59-05:00/{UUID0}": 200,
    f"/workflows?before=2024-01-01T00:00:00%2B00:00/{'f' * 33}": 400,
    f"/workflows/{UUID0}": 404,
    "/workflows/" + "f" * 33: 400,
    "/workflows?q=" + "f" * 33: 400,
    f"/events/urn:uuid:{UUID0}": 404,
    f"/events/{UUID0}/json": 404,
    # text compared with text columns: no NUL, and no lone surrogate once decoded
    "/dead-letters?topic=a%00b": 400,
    "/dead-letters?error_class=%00": 400,
    "/workflows?agent=%ED%A0%80": 200,
    "/known-fixes?error_type=%ED%A0%80": 200,
}


async def test_parameters_postgresql_would_refuse_never_reach_it(db_dsn: str) -> None:
    """README: a parameter a page cannot use is a 400, an unknown id a 404 -- whatever the
    value, never a 500 from PostgreSQL (or int()) refusing it."""
    letter = await store_dead_letter(db_dsn, value=b"{}", reason="test")
    expected = {**BEYOND_THEIR_TYPES, "/dead-letters/" + "0" * 30 + str(letter): 200}
    async with running_view(view_settings(db_dsn)) as url, httpx.AsyncClient(base_url=url) as http:
        got = {path: (await http.get(path)).status_code for path in expected}
    wrong = {p[:70]: (got[p], want) for p, want in expected.items() if got[p] != want}
    assert not wrong, f"(status, expected) per path: {wrong}"
