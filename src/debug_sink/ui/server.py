"""Serving the web view: :class:`WebView`, the component ``debug-sink ui`` and ``debug-sink
dev`` run.

Owns the view's lifecycle: check the bind (:func:`~debug_sink.ui.security.check_bind`:
nothing beyond loopback without credentials), open the read-only pool (the reader role's
DSN, every transaction read-only), bind the socket itself (a taken port is an error with the
address, before anything is served; port 0 gives a free one, :attr:`WebView.url` says which),
then serve the app (:func:`~debug_sink.ui.app.create_app`) with uvicorn in the caller's event
loop until :meth:`WebView.close`. ``DEBUG_SINK_UI_ROOT_PATH`` is uvicorn's ASGI ``root_path``:
the prefix a reverse proxy publishes the view under and strips before forwarding; the routes
stay where they are, the pages write every URL under it (:mod:`.formatting`). Proxy headers
(``X-Forwarded-*``, ``X-Forwarded-Prefix``) are not read: a client could forge them.

Guarantees: :meth:`WebView.start` returns once the socket accepts connections; ``close``
stops accepting, lets requests in flight finish (at most ``shutdown_timeout`` seconds) and
closes the pool; both idempotent. Signals are the caller's (``run_until_signal`` in the
command, the session's handler in ``dev``): uvicorn installs none. Not guaranteed: TLS
beyond what uvicorn's ``ssl_certfile``/``ssl_keyfile`` give.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any, Final

import asyncpg
import structlog
import uvicorn

from debug_sink.db.pg import create_pool
from debug_sink.errors import ConfigurationError
from debug_sink.lifecycle import Lifecycle
from debug_sink.read.queries import READ_ONLY_SESSION, DebugQueries, init_connection
from debug_sink.settings import ENV_PREFIX, Settings
from debug_sink.ui.app import PAGE_DEADLINE_S, create_app
from debug_sink.ui.live import Scraper
from debug_sink.ui.security import Access, check_bind

__all__ = ["VIEW_SESSION", "WebView", "create_view_pool"]

log = structlog.get_logger("debug_sink")

#: Connections of the view's pool: pages run a few queries each, one after another.
_POOL_SIZE: Final = 4
#: A page's query that runs longer is cancelled (the page says so): a view must not pile up
#: slow queries on a busy database.
_STATEMENT_TIMEOUT_S: Final = 15.0
#: A page with no answer within this many seconds, waiting for one of the pool's connections
#: included, is a 503: with the database slow (a lock held on a table), the requests beyond
#: the pool's size would otherwise queue a statement timeout per batch of ``_POOL_SIZE``.
_PAGE_DEADLINE_S: Final = PAGE_DEADLINE_S


#: The view's sessions: read-only (:data:`READ_ONLY_SESSION`), and generic plans for the
#: prepared statements. The pages' queries are index lookups whatever their values; planning
#: their many subqueries on every call cost more than running them (the workflow list's
#: rows: 12 -> 10 ms at 1M events). Run again after each release's reset.
VIEW_SESSION: Final = (*READ_ONLY_SESSION, "SET plan_cache_mode = force_generic_plan")


async def create_view_pool(
    dsn: str,
    *,
    schema: str = "public",
    ssl: Any = None,
    max_size: int = _POOL_SIZE,
    application_name: str = "debug-sink-ui",
) -> asyncpg.Pool:
    """The view's pool: sessions set up as :data:`VIEW_SESSION` says, after every release
    too, with the read side's codecs (:func:`init_connection`)."""
    return await create_pool(
        dsn,
        schema=schema,
        application_name=application_name,
        ssl=ssl,
        min_size=1,
        max_size=max_size,
        init=init_connection,
        session=VIEW_SESSION,
        command_timeout=_STATEMENT_TIMEOUT_S,
    )


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the process's signals belong to the caller."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebView(Lifecycle):
    """The web view of ``settings``' database on ``settings.ui_host``:``ui_port``."""

    def __init__(self, settings: Settings, *, shutdown_timeout: int = 5) -> None:
        self.settings = settings
        self.access = Access.from_settings(settings)
        self.shutdown_timeout = shutdown_timeout
        self._pool: Any = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self._port = settings.ui_port

    @property
    def scheme(self) -> str:
        return "https" if self.settings.ui_tls_cert else "http"

    @property
    def url(self) -> str:
        """Where the view answers (the bound port once started)."""
        host = self.settings.ui_host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self._port}/"

    async def start(self) -> None:
        if self._task is not None:
            return
        settings = self.settings
        check_bind(settings.ui_host, self.access)
        if bool(settings.ui_tls_cert) != bool(settings.ui_tls_key):
            raise ConfigurationError(
                f"{ENV_PREFIX}UI_TLS_CERT and {ENV_PREFIX}UI_TLS_KEY go together: set both"
            )
        self._socket = _bind(settings.ui_host, settings.ui_port)
        self._port = self._socket.getsockname()[1]
        try:
            self._pool = await create_view_pool(
                settings.require_dsn(), schema=settings.db_schema, ssl=settings.postgres_ssl()
            )
            app = create_app(
                DebugQueries(self._pool),
                self._pool,
                access=self.access,
                scraper=Scraper(settings.ui_metrics_urls),
                deadline_s=_PAGE_DEADLINE_S,
            )
            config = uvicorn.Config(
                app,
                lifespan="off",
                log_config=None,
                access_log=False,
                server_header=False,
                proxy_headers=False,
                # The prefix a reverse proxy publishes the view under (it strips it before
                # forwarding): the routes stay where they are, every URL a page writes,
                # redirect included, starts with it (pages.render, formatting).
                root_path=settings.ui_root_path,
                timeout_graceful_shutdown=self.shutdown_timeout,
                ssl_certfile=settings.ui_tls_cert,
                ssl_keyfile=settings.ui_tls_key,
            )
            self._server = _Server(config)
            self._task = asyncio.create_task(
                self._server.serve(sockets=[self._socket]), name="web-view"
            )
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # its error, if it failed to start
                    raise ConfigurationError("the web view stopped while starting")
                await asyncio.sleep(0.01)
        except BaseException:
            await self.close()
            raise
        log.info("ui_started", url=self.url, auth="required" if self.access.required else "none")

    async def wait(self) -> None:
        """Until the server stops (it does when :meth:`close` is called)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def close(self) -> None:
        server, task, pool, sock = self._server, self._task, self._pool, self._socket
        self._server = self._task = self._pool = self._socket = None
        if server is not None:
            server.should_exit = True
        if task is not None:
            with contextlib.suppress(Exception):
                await task
        if sock is not None:
            sock.close()
        if pool is not None:
            await pool.close()
        if task is not None:
            log.info("ui_stopped")


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port``; ConfigurationError when it cannot be."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}: {exc}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another with "
            f"--port or {ENV_PREFIX}UI_PORT)"
        ) from exc
    return sock
