"""Who may look at the web view (debug_sink.ui.security): credentials, loopback, bind."""

from __future__ import annotations

import base64

import pytest

from debug_sink.errors import ConfigurationError
from debug_sink.settings import Settings
from debug_sink.ui.security import (
    Access,
    FailedLogins,
    _host_name,
    check_bind,
    is_loopback,
)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TestAccess:
    """A request carries the token (bearer, or basic auth's password) or the user/password."""

    def test_nothing_required_allows_anything(self) -> None:
        assert Access().allows(None)

    def test_token_as_bearer_or_basic_password(self) -> None:
        access = Access(token="s3cret")
        assert access.allows("Bearer s3cret")
        assert access.allows(basic("anyone", "s3cret"))
        assert not access.allows("Bearer s3cre")
        assert not access.allows(basic("anyone", "wrong"))
        assert not access.allows(None)
        assert not access.allows("Basic !!notbase64")
        assert not access.allows("Digest s3cret")

    def test_user_and_password(self) -> None:
        access = Access(username="ops", password="pw")
        assert access.allows(basic("ops", "pw"))
        assert not access.allows(basic("root", "pw"))
        assert not access.allows(basic("ops", "PW"))
        assert not access.allows("Bearer pw")

    def test_from_settings(self) -> None:
        settings = Settings(ui_password="pw", ui_username="ops", ui_token="t")
        access = Access.from_settings(settings)
        assert access.required
        assert access.allows(basic("ops", "pw"))
        assert access.allows("Bearer t")
        assert not Access.from_settings(Settings()).required


class TestLoopback:
    @pytest.mark.parametrize(
        "host", ["127.0.0.1", "127.8.9.1", "localhost", "LOCALHOST", "::1", "[::1]"]
    )
    def test_loopback(self, host: str) -> None:
        assert is_loopback(host)

    @pytest.mark.parametrize(
        "host", ["0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.evil.com", ""]
    )
    def test_not_loopback(self, host: str) -> None:
        assert not is_loopback(host)

    @pytest.mark.parametrize(
        ("header", "name"),
        [("localhost:9470", "localhost"), ("[::1]:9470", "[::1]"), ("127.0.0.1", "127.0.0.1")],
    )
    def test_host_header_without_port(self, header: str, name: str) -> None:
        assert _host_name(header) == name


class TestBind:
    """Beyond loopback only with credentials."""

    def test_refuses_any_address_without_credentials(self) -> None:
        with pytest.raises(ConfigurationError, match="UI_TOKEN"):
            check_bind("0.0.0.0", Access())

    def test_allows_loopback_or_credentials(self) -> None:
        check_bind("127.0.0.1", Access())
        check_bind("0.0.0.0", Access(token="t"))


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestFailedLogins:
    """A sliding window of failures per client address."""

    def test_the_limit_then_a_wait_until_the_oldest_expires(self) -> None:
        clock = _Clock()
        failures = FailedLogins(3, 300, clock=clock)
        assert not failures.failed("10.0.0.1")
        clock.now += 100
        assert not failures.failed("10.0.0.1")
        assert failures.retry_after("10.0.0.1") == 0
        clock.now += 100
        assert failures.failed("10.0.0.1")  # the third: no guess left
        assert failures.retry_after("10.0.0.1") == pytest.approx(100)
        assert failures.retry_after("10.0.0.2") == 0
        clock.now += 100  # the first is 300 s old: one guess again, not three
        assert failures.retry_after("10.0.0.1") == 0
        assert failures.failed("10.0.0.1")
        assert failures.retry_after("10.0.0.1") == pytest.approx(100)

    def test_a_guesser_gets_the_limit_per_window_however_fast(self) -> None:
        clock = _Clock()
        failures = FailedLogins(10, 300, clock=clock)
        guesses = 0
        for _ in range(3600):  # one hour, a request a second
            clock.now += 1
            if failures.retry_after("10.0.0.1") == 0:
                guesses += 1
                failures.failed("10.0.0.1")
        assert guesses <= 10 * (3600 // 300 + 1)
        assert guesses >= 10 * (3600 // 300)

    def test_ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4(self) -> None:
        failures = FailedLogins(2, 300, clock=_Clock())
        failures.failed("2001:db8:1:2::1")
        failures.failed("2001:db8:1:2:ffff::9")
        assert failures.retry_after("2001:db8:1:2::77") > 0
        assert failures.retry_after("2001:db8:1:3::1") == 0
        failures.failed("::ffff:10.1.1.1")
        failures.failed("10.1.1.1")
        assert failures.retry_after("10.1.1.1") > 0

    def test_memory_is_bounded_forgetting_the_least_recent(self) -> None:
        failures = FailedLogins(1, 300, clock=_Clock(), max_clients=100)
        for i in range(1000):
            failures.failed(f"10.0.{i // 256}.{i % 256}")
        assert len(failures._failures) == 100
        assert failures.retry_after("10.0.3.231") > 0  # the 1000th, still remembered
        assert failures.retry_after("10.0.0.0") == 0

    def test_zero_is_no_limit(self) -> None:
        failures = FailedLogins(0, 300, clock=_Clock())
        assert not any(failures.failed("10.0.0.1") for _ in range(100))
        assert failures.retry_after("10.0.0.1") == 0

    def test_from_settings(self) -> None:
        assert Access.from_settings(Settings(ui_failed_logins=4)).failed_logins == 4
        assert Access.from_settings(Settings()).failed_logins == 10


class _Broken:
    """Queries that fail the way nothing expects: the page is a 500."""

    def __getattr__(self, name: str) -> object:
        async def fail(*args: object, **kwargs: object) -> object:
            raise RuntimeError("unexpected")

        return fail


async def test_a_failed_page_has_the_security_headers_too() -> None:
    """Starlette answers a 500 from its outermost middleware, outside SecurityHeaders."""
    import httpx

    from debug_sink.ui.app import create_app
    from debug_sink.ui.live import Scraper
    from debug_sink.ui.security import CONTENT_SECURITY_POLICY

    app = create_app(_Broken(), None, access=Access(), scraper=Scraper(()))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.get("/workflows")
    assert response.status_code == 500
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
