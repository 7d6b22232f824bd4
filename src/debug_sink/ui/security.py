"""What keeps the web view safe by default: who may look, from where, and what a page may do.

Owns :class:`Access` (the credentials a request must carry, decided from the settings),
:func:`check_bind` (the refusal to listen beyond loopback without credentials) and the
three ASGI middlewares every response goes through, outermost first:

- :class:`ReadOnlyMethods` -- only ``GET`` and ``HEAD``: anything else is ``405`` with
  ``Allow: GET, HEAD`` (the web view has no write endpoint, and no form that posts);
- :class:`SecurityHeaders` -- a Content-Security-Policy that allows scripts, styles and
  images from the view itself only (no inline script, no other origin: nothing a stored
  string could smuggle in would run), ``frame-ancestors 'none'``, ``nosniff``, no referrer,
  and ``no-store`` on pages (what they show may be sensitive);
- :class:`Authenticate` -- with credentials configured, ``401`` (``WWW-Authenticate:
  Basic``) unless the request carries them, and ``429`` (``Retry-After``) for a client
  address that made too many failed logins lately (:class:`FailedLogins`), whatever it
  carries now; without credentials, only requests addressed to a loopback name (``Host:
  localhost``, ``127.0.0.1``, ``[::1]``) are served, so a web page elsewhere cannot read the
  view through DNS rebinding.

Guarantees: secrets are compared in constant time and never logged or echoed; a client
address gets at most ``Access.failed_logins`` wrong guesses per :data:`LOGIN_WINDOW_S`
seconds (an IPv6 address is counted by its /64, which one host may hold whole), and while
it is refused the answer does not depend on what it sent. Not guaranteed: that a client
behind the same proxy or NAT as a guesser is served meanwhile (it shares the address), nor
a limit across several view processes (each counts its own). Not
guaranteed: confidentiality on the wire -- basic auth and tokens travel in clear over plain
HTTP; serve over TLS (``DEBUG_SINK_UI_TLS_CERT``) or behind a TLS proxy beyond loopback.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from debug_sink.errors import ConfigurationError
from debug_sink.settings import ENV_PREFIX, Settings
from debug_sink.ui.formatting import route_path

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "DEFAULT_FAILED_LOGINS",
    "LOGIN_WINDOW_S",
    "Access",
    "Authenticate",
    "FailedLogins",
    "ReadOnlyMethods",
    "SecurityHeaders",
    "add_security_headers",
    "check_bind",
    "is_loopback",
]

#: Everything from the view itself, nothing inline, nothing from elsewhere.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS: Final = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
_READ_METHODS: Final = frozenset({"GET", "HEAD"})
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.", "ip6-localhost"})
_REALM: Final = 'Basic realm="debug-sink", charset="UTF-8"'

log = structlog.get_logger("debug_sink")

#: Failed logins of a client address count for this many seconds.
LOGIN_WINDOW_S: Final = 300.0
#: Failed logins a client address may make per window (``DEBUG_SINK_UI_FAILED_LOGINS``).
DEFAULT_FAILED_LOGINS: Final = 10
#: Client addresses whose failures are remembered at most; the one that failed least
#: recently is forgotten first (memory stays bounded whatever the number of guessers).
_MAX_CLIENTS: Final = 10_000


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name, IPv6 with or without brackets) is this machine
    only. A name other than ``localhost`` is not: it may resolve anywhere."""
    name = host.strip().lower().removeprefix("[").removesuffix("]")
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Access:
    """The credentials the view requires: a token (as a bearer token or as the password of
    basic auth, any user name), and/or a user name and password for basic auth. Neither:
    open, for loopback only."""

    token: str | None = None
    username: str | None = None
    password: str | None = None
    #: Failed logins a client address may make per :data:`LOGIN_WINDOW_S` (0: no limit).
    failed_logins: int = DEFAULT_FAILED_LOGINS

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        return cls(
            token=settings.ui_token.get_secret_value() if settings.ui_token else None,
            username=settings.ui_username if settings.ui_password else None,
            password=settings.ui_password.get_secret_value() if settings.ui_password else None,
            failed_logins=settings.ui_failed_logins,
        )

    @property
    def required(self) -> bool:
        return bool(self.token or self.password)

    def allows(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries the credentials (always when
        none are required)."""
        if not self.required:
            return True
        if not authorization:
            return False
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return self.token is not None and _same(value, self.token)
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        by_token = self.token is not None and _same(password, self.token)
        by_password = (
            self.password is not None
            and self.username is not None
            # Both compared, whatever the first gives: the time says nothing about which.
            and _same(user, self.username) & _same(password, self.password)
        )
        return by_token or by_password


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class FailedLogins:
    """Failed logins by client address over the last ``window_s`` seconds (a sliding
    window): an address with ``limit`` of them is refused until the oldest is ``window_s``
    old, so a guesser gets ``limit`` guesses per window however fast it asks. Successes
    reset nothing (they would let a guesser that shares an address with a user go on)."""

    def __init__(
        self,
        limit: int,
        window_s: float = LOGIN_WINDOW_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = _MAX_CLIENTS,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        times = self._failures.get(_client_key(client))
        if not self.limit or times is None or len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.window_s - self._clock())

    def failed(self, client: str) -> bool:
        """Count a failed login of ``client``; True when it used the last one it had."""
        if not self.limit:
            return False
        key = _client_key(client)
        now = self._clock()
        times = self._failures.pop(key, None) or deque(maxlen=self.limit)
        while times and times[0] + self.window_s <= now:
            times.popleft()
        times.append(now)
        self._failures[key] = times  # the most recently failing last
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)
        return len(times) >= self.limit


def _client_key(client: str) -> str:
    """IPv4 addresses (and names) as they are; IPv6 by /64, the smallest block one host
    may be given (a guesser would otherwise have 2**64 addresses to take turns with)."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def check_bind(host: str, access: Access) -> None:
    """Refuse (:class:`~debug_sink.errors.ConfigurationError`) to listen on ``host`` when it
    is not loopback and no credentials are configured."""
    if not is_loopback(host) and not access.required:
        raise ConfigurationError(
            f"the web view would listen on {host}, beyond this machine, without "
            f"credentials: set {ENV_PREFIX}UI_TOKEN or {ENV_PREFIX}UI_PASSWORD (and serve it "
            f"over TLS: {ENV_PREFIX}UI_TLS_CERT / {ENV_PREFIX}UI_TLS_KEY, or a TLS proxy), "
            f"or listen on 127.0.0.1"
        )


async def _plain(send: Send, status: int, text: str, headers: Iterable[tuple[str, str]]) -> None:
    body = text.encode()
    raw = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class ReadOnlyMethods:
    """``405`` for every method but GET and HEAD, on every path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in _READ_METHODS:
            await _plain(send, 405, "read-only: GET and HEAD only\n", [("allow", "GET, HEAD")])
            return
        await self.app(scope, receive, send)


def add_security_headers(headers: MutableHeaders, *, static: bool = False) -> None:
    """The headers of the module doc: on every response, also those made outside
    :class:`SecurityHeaders` (Starlette answers a 500 from its outermost middleware)."""
    for name, value in _HEADERS.items():
        headers[name] = value
    if not static:
        headers["cache-control"] = "no-store"


class SecurityHeaders:
    """The headers of the module doc on every HTTP response; pages (not ``/static``) are
    ``Cache-Control: no-store``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = route_path(scope).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_security_headers(MutableHeaders(scope=message), static=static)
            await send(message)

        await self.app(scope, receive, with_headers)


class Authenticate:
    """Credentials when configured; otherwise loopback ``Host`` names only."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access
        self.failures = FailedLogins(access.failed_logins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.access.required:
            client = scope["client"][0] if scope.get("client") else ""
            wait = self.failures.retry_after(client)
            if wait > 0:
                # Whatever the request carries: an answer that depended on it would tell the
                # guesser which guess was right.
                seconds = max(1, math.ceil(wait))
                await _plain(
                    send,
                    429,
                    f"too many failed logins from this address: try again in {seconds} s\n",
                    [("retry-after", str(seconds))],
                )
                return
            authorization = headers.get("authorization")
            if not self.access.allows(authorization):
                # A request without credentials is a browser asking what to send, not a guess.
                if authorization is not None and self.failures.failed(client):
                    log.warning(
                        "ui_failed_logins",
                        client=client,
                        failures=self.failures.limit,
                        window_s=self.failures.window_s,
                        refused_s=round(self.failures.retry_after(client)),
                    )
                await _plain(send, 401, "credentials required\n", [("www-authenticate", _REALM)])
                return
        elif not is_loopback(_host_name(headers.get("host", ""))):
            await _plain(
                send,
                421,
                "this view answers to localhost only (no credentials are configured)\n",
                [],
            )
            return
        await self.app(scope, receive, send)


def _host_name(host: str) -> str:
    """``Host`` without its port: ``[::1]:9470`` -> ``[::1]``, ``localhost:9470`` ->
    ``localhost``."""
    host = host.strip()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
