"""The web view when PostgreSQL goes away under it, and hostile requests: host names that
rebind.

PostgreSQL "goes down" through a TCP relay in front of the suite's server: closing the relay
resets the pool's connections and refuses new ones, as a restarted or crashed server does.

(From a red team's tests.)"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests import support as s
from tests.integration.hooks.relay import Relay
from tests.ui_support import running_view, store_injection, view_settings

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
            for path in [*paths, f"/events/{uuid.uuid4()}", "/healthz"]:
                response = await http.get(path)
                answers[path] = (response.status_code, _leaks(response.text, relay))
            wrong = {p: a for p, a in answers.items() if a[1] or a[0] != 503}
            assert not wrong, f"status and leaks per page: {answers}"
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
