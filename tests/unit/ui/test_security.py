"""Who may look at the web view (debug_sink.ui.security): credentials, loopback, bind."""

from __future__ import annotations

import base64

import pytest

from debug_sink.errors import ConfigurationError
from debug_sink.settings import Settings
from debug_sink.ui.security import Access, _host_name, check_bind, is_loopback


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
