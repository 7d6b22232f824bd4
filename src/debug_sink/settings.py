"""The one settings model: every knob of debug-sink, read from ``DEBUG_SINK_*`` variables.

Only the CLI builds :class:`Settings` (from the environment and flags); components receive it
(or the part they need) and never read the environment themselves. Secrets are ``SecretStr``
and never appear in logs, ``repr`` or ``--help`` output.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from debug_sink.db.pg import normalise_dsn, redact_dsn
from debug_sink.errors import ConfigurationError
from debug_sink.otlp.decode import Encoding
from debug_sink.otlp.mapping import DEFAULT_STATE_ATTRIBUTES
from debug_sink.wire.events import EventKind
from debug_sink.wire.redact import DEFAULT_REDACT_PATTERNS, Redactor
from debug_sink.wire.validation import MAX_DEPTH_LIMIT

ENV_PREFIX = "DEBUG_SINK_"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: A topic name Kafka accepts.
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_TOPIC_RULE = "a Kafka topic name is 1-249 of A-Z a-z 0-9 . _ -"
#: The web view's path prefix: ``/``-led segments of characters a URL path takes as they are
#: (RFC 3986's unreserved), none of them ``.`` or ``..``; empty for none. Nothing in it needs
#: escaping in a URL or in HTML, and ``//host`` (another origin) cannot be written.
UI_ROOT_PATH = re.compile(r"(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._~-]+){0,32}")

#: Topic suffix per event kind; the topic is ``topic_prefix + suffix``.
TOPIC_SUFFIXES: dict[EventKind, str] = {
    EventKind.SNAPSHOT: "state_snapshots",
    EventKind.ERROR: "error_events",
    EventKind.SUCCESS: "success_events",
    EventKind.STEP: "workflow_steps",
    EventKind.TRANSFORMATION: "transformation_events",
    EventKind.HOOK: "hook_events",
}


class Settings(BaseSettings):
    """All settings. Environment variable = ``DEBUG_SINK_`` + the field name in upper case."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        env_file=None,
        validate_default=True,
        allow_inf_nan=False,
    )

    # PostgreSQL
    postgres_dsn: SecretStr | None = Field(
        default=None,
        description="PostgreSQL DSN: postgresql://sink@db:5432/debug or libpq's "
        "'host=db user=sink dbname=debug' (password via PGPASSWORD or the DSN; never logged).",
    )
    db_schema: str = Field(
        default="public", description="Schema that holds every debug-sink object."
    )
    postgres_ssl_mode: (
        Literal["disable", "prefer", "require", "verify-ca", "verify-full"] | None
    ) = Field(default=None, description="PostgreSQL TLS mode (overrides sslmode in the DSN).")
    postgres_ssl_ca: Path | None = Field(default=None, description="CA bundle for PostgreSQL TLS.")
    postgres_ssl_cert: Path | None = Field(default=None, description="Client certificate (mTLS).")
    postgres_ssl_key: Path | None = Field(default=None, description="Client key (mTLS).")
    postgres_pool_size: int = Field(
        default=4, ge=1, le=64, description="Connections the sink keeps open."
    )

    # Kafka
    kafka_bootstrap_servers: str = Field(
        default="localhost:9092", description="Comma-separated host:port list."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Kafka security protocol."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism."
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL username.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    kafka_ssl_ca: Path | None = Field(default=None, description="CA bundle for Kafka TLS.")
    kafka_ssl_cert: Path | None = Field(
        default=None, description="Client certificate for Kafka mTLS."
    )
    kafka_ssl_key: Path | None = Field(default=None, description="Client key for Kafka mTLS.")
    kafka_ssl_key_password: SecretStr | None = Field(
        default=None, description="Password of the client key."
    )
    group_id: str = Field(default="debug-sink", description="Kafka consumer group of the sink.")
    kafka_session_timeout_ms: int = Field(
        default=30_000,
        ge=1000,
        description="Consumer-group session timeout: how soon a "
        "crashed replica's partitions move to the others.",
    )
    topic_prefix: str = Field(
        default="debug.",
        description="Topic names are PREFIX + state_snapshots, error_events, "
        "success_events, workflow_steps, transformation_events, hook_events.",
    )
    topic_pattern: str = Field(
        default=r"^debug\.", description="Regex of the topics the sink subscribes to."
    )
    dead_letter_topic: str = Field(
        default="debug-sink.dead-letters",
        description="Where rejected messages go (must not match the topic pattern).",
    )
    otlp_topics: dict[str, Encoding] | None = Field(
        default=None,
        description="OTLP traces topics (the OpenTelemetry Collector's Kafka exporter) and "
        "their encoding: auto (detected per message), otlp_proto or otlp_json, as a JSON "
        'object, e.g. {"otlp_spans": "auto"}. Default: PREFIX + otlp_spans, auto; {} reads '
        "none. A topic the pattern does not match is subscribed to as well.",
    )
    otlp_state_attributes: tuple[str, ...] = Field(
        default=DEFAULT_STATE_ATTRIBUTES,
        description="Span attributes that hold the agent's state (a map, or a JSON object as "
        "a string): each becomes a state snapshot (JSON list).",
    )

    # Batching and memory
    batch_max_events: int = Field(
        default=2500, ge=1, description="A batch closes at this many events."
    )
    batch_max_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="... or at this many bytes of message values."
    )
    batch_max_age_ms: int = Field(
        default=50, ge=1, description="... or when its first event is this old."
    )
    max_inflight_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024 * 1024,
        description="Fetching pauses while this many bytes are fetched but not yet committed.",
    )

    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop",
        description="The `run` service's event loop: uvloop (libuv; ~10% more events/s "
        "in a drain here) or the standard library's asyncio.",
    )

    # Validation
    max_state_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest agent_state (canonical JSON bytes) accepted.",
    )
    max_depth: int = Field(
        default=64, ge=2, le=MAX_DEPTH_LIMIT, description="Deepest JSON nesting accepted."
    )
    redact_patterns: tuple[str, ...] = Field(
        default=DEFAULT_REDACT_PATTERNS,
        description="Regexes of secret key names (searched in the key lower-cased, without "
        "separators); their values become [REDACTED] (JSON list).",
    )
    redact_value_patterns: tuple[str, ...] = Field(
        default=(),
        description="Extra regexes of secret values, redacted in every stored string on top "
        "of the built-in formats (JSON list; a capture group redacts only its part).",
    )
    dead_letter_max_bytes: int = Field(
        default=900_000,
        ge=4096,
        le=64 << 20,
        description="Largest dead letter kept (value, key and headers): a larger one is cut, "
        "with its size (and SHA-256, when nothing was redacted) in its headers. Keep it under "
        "the broker's message limit.",
    )

    # References, jobs
    park_grace_seconds: float = Field(
        default=600.0,
        ge=0,
        le=315_360_000,
        description="How long an event waits for a missing parent "
        "before it is written with the reference NULL (at most ten years).",
    )
    correlator_interval: float = Field(
        default=30.0, ge=0, description="Seconds between correlator runs (0 disables)."
    )
    retention_days: int = Field(
        default=90,
        ge=0,
        le=999_999_999,
        description="Delete events older than this (0 disables).",
    )

    # Claude Code hooks (debug-sink hook; its fast path reads these with hooks.config)
    hook_dir: Path | None = Field(
        default=None,
        description="Where `debug-sink hook` keeps its spool, session state, known-fixes cache "
        "and log (default: $XDG_STATE_HOME/debug-sink/hooks, else "
        "~/.local/state/debug-sink/hooks).",
    )
    hook_spool_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=64 * 1024,
        le=2**40,
        description="Most bytes of unshipped events the hook spool holds; events beyond are "
        "dropped and counted.",
    )
    hook_context: bool = Field(
        default=True,
        description="Whether a failed tool's hook prints the known fixes of its error type "
        "for the model (additionalContext).",
    )
    hook_context_budget_ms: int = Field(
        default=60,
        ge=0,
        le=1000,
        description="How long the hook waits for known fixes not in its cache (0: cache only).",
    )
    hook_context_ttl_seconds: float = Field(
        default=300.0,
        ge=0,
        le=7 * 24 * 3600,
        description="How long a known-fixes answer is reused from the hook's cache.",
    )
    hook_idle_seconds: float = Field(
        default=60.0,
        ge=1,
        le=24 * 3600,
        description="The hook's background shipper exits after this long without new events.",
    )

    # Operations
    metrics_host: str = Field(default="0.0.0.0", description="Address of /metrics and /healthz.")
    metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="Port of /metrics and /healthz (0 disables)."
    )
    stall_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A partition with records waiting and no committed progress for this "
        "long, or a batch retried this long, makes /healthz unready (stalled).",
    )
    shutdown_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to finish the batch in flight on SIGTERM."
    )
    # The web view (`debug-sink ui`)
    ui_host: str = Field(
        default="127.0.0.1",
        description="Address the web view listens on. Any address but a loopback one needs "
        "DEBUG_SINK_UI_TOKEN or DEBUG_SINK_UI_PASSWORD (it refuses to start without).",
    )
    ui_port: int = Field(
        default=9470, ge=0, le=65535, description="Port of the web view (0: any free port)."
    )
    ui_root_path: str = Field(
        default="",
        max_length=255,
        description="The path prefix a reverse proxy publishes the web view under, e.g. "
        "/debug-sink (the proxy strips it before forwarding): every link, asset, form and "
        "redirect of the view starts with it. Starts with /, no trailing /; letters, digits "
        "and . _ ~ - only.",
    )
    ui_token: SecretStr | None = Field(
        default=None,
        description="A token the web view requires: 'Authorization: Bearer TOKEN', or as "
        "the password of HTTP basic auth with any user name (what a browser asks for).",
    )
    ui_username: str = Field(
        default="debug-sink", description="The user name of DEBUG_SINK_UI_PASSWORD."
    )
    ui_password: SecretStr | None = Field(
        default=None,
        description="HTTP basic auth for the web view: DEBUG_SINK_UI_USERNAME with this password.",
    )
    ui_failed_logins: int = Field(
        default=10,
        ge=0,
        le=1_000_000,
        description="Failed logins a client address may make in 5 minutes (an IPv6 address "
        "counted by its /64); beyond, all its requests get 429 until the oldest is 5 minutes "
        "old. 0: no limit.",
    )
    ui_tls_cert: Path | None = Field(
        default=None,
        description="Certificate (PEM) to serve the web view over HTTPS, with "
        "DEBUG_SINK_UI_TLS_KEY.",
    )
    ui_tls_key: Path | None = Field(
        default=None, description="Private key (PEM) of DEBUG_SINK_UI_TLS_CERT."
    )
    ui_metrics_urls: tuple[str, ...] = Field(
        default=("http://127.0.0.1:9464/metrics",),
        description="The sinks' /metrics the web view's Live page reads (JSON list; a host "
        "name with several addresses, such as a compose service, is read at every address).",
    )

    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Log level."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="json, console, or auto (console on a TTY)."
    )

    @field_validator(
        "postgres_ssl_ca",
        "postgres_ssl_cert",
        "postgres_ssl_key",
        "kafka_ssl_ca",
        "kafka_ssl_cert",
        "kafka_ssl_key",
        "hook_dir",
        "ui_tls_cert",
        "ui_tls_key",
        mode="before",
    )
    @classmethod
    def _empty_path_is_unset(cls, value: Any) -> Any:
        """``VAR=`` (a compose file's ``${CA:-}``) means no file, not the current directory."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("dead_letter_topic")
    @classmethod
    def _topic_is_valid(cls, value: str) -> str:
        if not _TOPIC.fullmatch(value):
            raise ValueError(_TOPIC_RULE)
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_makes_valid_topics(cls, value: str) -> str:
        if not all(_TOPIC.fullmatch(value + suffix) for suffix in TOPIC_SUFFIXES.values()):
            raise ValueError(f"PREFIX + state_snapshots (...) must be topic names: {_TOPIC_RULE}")
        return value

    @field_validator("group_id")
    @classmethod
    def _group_is_named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name the consumer group")
        return value

    @field_validator("db_schema")
    @classmethod
    def _schema_is_identifier(cls, value: str) -> str:
        if not _IDENTIFIER.fullmatch(value):
            raise ValueError("must be a lower-case SQL identifier ([a-z_][a-z0-9_]*, <= 63 chars)")
        return value

    @field_validator("ui_root_path")
    @classmethod
    def _root_path_is_a_plain_path(cls, value: str) -> str:
        if not UI_ROOT_PATH.fullmatch(value):
            raise ValueError(
                "a path such as /debug-sink: starts with /, no trailing /, no empty, . or .. "
                "segment, only letters, digits and . _ ~ - (nothing a URL path escapes)"
            )
        return value

    @field_validator("ui_metrics_urls")
    @classmethod
    def _urls_are_http(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for number, url in enumerate(value, 1):
            if not re.match(r"https?://[^/\s]+", url):
                # Not quoted back: a URL may carry a password or a token.
                raise ValueError(f"URL number {number} is not an http:// or https:// URL")
        return value

    @field_validator("postgres_dsn")
    @classmethod
    def _dsn_is_usable(cls, value: SecretStr | None) -> SecretStr | None:
        """Both DSN forms are accepted (a libpq key=value DSN becomes a URL); one that can
        never work is refused here, once, instead of retried as an unreachable server."""
        if value is None:
            return None
        try:
            return SecretStr(normalise_dsn(value.get_secret_value()))
        except ValueError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _servers_are_addresses(cls, value: str) -> str:
        """Each entry ``host``, ``host:port`` or ``[v6]:port`` with a port of 1-65535: one
        that can never work is refused here, not retried as an unreachable broker."""
        entries = [entry.strip() for entry in value.split(",")]
        if not any(entries):
            raise ValueError("name at least one broker as host:port")
        for entry in entries:
            port: str | None = None
            if entry.startswith("["):
                host, close, rest = entry[1:].partition("]")
                if not close or (rest and not rest.startswith(":")):
                    raise ValueError(f"{entry!r} is not [address]:port")
                port = rest[1:] if rest else None
            elif ":" in entry:
                host, port = entry.rsplit(":", 1)
            else:
                host = entry
            if not host or any(c.isspace() for c in entry):
                raise ValueError(f"{entry!r} is not host:port")
            if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
                raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
        return ",".join(entries)

    @field_validator("topic_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regex: {exc}") from exc
        return value

    @field_validator("otlp_topics")
    @classmethod
    def _otlp_topics_are_their_own(
        cls, value: dict[str, Encoding] | None, info: ValidationInfo
    ) -> dict[str, Encoding] | None:
        invalid = [topic for topic in value or {} if not _TOPIC.fullmatch(topic)]
        if invalid:
            raise ValueError(f"{invalid[0]!r}: {_TOPIC_RULE}")
        prefix = info.data.get("topic_prefix", "")
        taken = {prefix + suffix for suffix in TOPIC_SUFFIXES.values()}
        taken.add(info.data.get("dead_letter_topic", ""))
        clash = sorted(set(value or {}) & taken)
        if clash:
            raise ValueError(f"{', '.join(clash)} is also an event topic or the dead-letter topic")
        return value

    @field_validator("redact_patterns", "redact_value_patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regex: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> Settings:
        """SASL (PLAIN or SCRAM) cannot authenticate without a user name and a password:
        refused here, not met as the Kafka client's ValueError when the sink connects."""
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username
            and self.kafka_sasl_password
            and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                f"{ENV_PREFIX}KAFKA_SASL_USERNAME and {ENV_PREFIX}KAFKA_SASL_PASSWORD"
            )
        return self

    @model_validator(mode="after")
    def _tls_settings_agree(self) -> Settings:
        """TLS files that the other settings would silently ignore or contradict are
        refused: the operator meant something these settings do not do."""
        e = ENV_PREFIX
        pg_files = [
            f"{e}POSTGRES_SSL_{n.upper()}"
            for n in ("ca", "cert", "key")
            if getattr(self, f"postgres_ssl_{n}") is not None
        ]
        if self.postgres_ssl_mode == "disable" and pg_files:
            raise ValueError(
                f"{e}POSTGRES_SSL_MODE=disable contradicts {', '.join(pg_files)}: unset "
                "them, or choose another mode"
            )
        for system in ("postgres", "kafka"):
            if (
                getattr(self, f"{system}_ssl_key") is not None
                and getattr(self, f"{system}_ssl_cert") is None
            ):
                name = f"{e}{system.upper()}_SSL"
                raise ValueError(
                    f"{name}_KEY is set without {name}_CERT, the certificate it is for"
                )
        kafka_files = [
            f"{e}KAFKA_SSL_{n.upper()}"
            for n in ("ca", "cert", "key")
            if getattr(self, f"kafka_ssl_{n}") is not None
        ]
        if kafka_files and self.kafka_security_protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(
                f"{', '.join(kafka_files)} would be ignored: {e}KAFKA_SECURITY_PROTOCOL is "
                f"{self.kafka_security_protocol} (TLS is SSL or SASL_SSL)"
            )
        return self

    # -- derived views handed to components ---------------------------------------------

    @property
    def topics(self) -> dict[str, EventKind]:
        return {self.topic_prefix + suffix: kind for kind, suffix in TOPIC_SUFFIXES.items()}

    @property
    def otlp_topic_encodings(self) -> dict[str, Encoding]:
        """OTLP traces topic -> how its messages are encoded."""
        if self.otlp_topics is None:
            return {self.topic_prefix + "otlp_spans": Encoding.AUTO}
        return dict(self.otlp_topics)

    @property
    def subscription_pattern(self) -> str:
        """What the consumer subscribes to: ``topic_pattern``, and the OTLP topics it does
        not match."""
        extra = [t for t in self.otlp_topic_encodings if not re.search(self.topic_pattern, t)]
        if not extra:
            return self.topic_pattern
        names = "|".join(re.escape(t) for t in sorted(extra))
        return f"(?:{self.topic_pattern})|^(?:{names})$"

    def require_dead_letters_unsubscribed(self) -> None:
        """Refuse a subscription that matches the dead-letter topic: its letters would be
        consumed again, and rejected again, into the topic they came from."""
        if re.search(self.subscription_pattern, self.dead_letter_topic):
            raise ConfigurationError(
                f"the dead-letter topic {self.dead_letter_topic!r} matches the subscription "
                f"pattern {self.subscription_pattern!r}: dead letters would be consumed again"
            )

    def topic_for(self, kind: EventKind) -> str:
        return self.topic_prefix + TOPIC_SUFFIXES[kind]

    def redactor(self) -> Redactor:
        """The :class:`~debug_sink.wire.redact.Redactor` of these settings' patterns."""
        return Redactor(self.redact_patterns, self.redact_value_patterns)

    def require_dsn(self) -> str:
        if self.postgres_dsn is None:
            raise ConfigurationError("no PostgreSQL DSN: set DEBUG_SINK_POSTGRES_DSN or pass --dsn")
        return self.postgres_dsn.get_secret_value()

    def postgres_ssl(self) -> ssl.SSLContext | str | None:
        """What asyncpg's ``ssl=`` argument should get (None: as the DSN says). A TLS file
        that cannot be used is a ConfigurationError naming its variable."""
        if self.postgres_ssl_ca or self.postgres_ssl_cert:
            context = _tls_context("POSTGRES", self.postgres_ssl_ca)
            if self.postgres_ssl_mode in ("require", "verify-ca"):
                context.check_hostname = False
            if self.postgres_ssl_mode == "require":
                context.verify_mode = ssl.CERT_NONE
            if self.postgres_ssl_cert:
                _load_cert_chain(context, "POSTGRES", self.postgres_ssl_cert, self.postgres_ssl_key)
            return context
        return self.postgres_ssl_mode

    def kafka_client_options(self) -> dict[str, Any]:
        """Keyword arguments common to aiokafka producers, consumers and admin clients."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            context = _tls_context("KAFKA", self.kafka_ssl_ca)
            if self.kafka_ssl_cert:
                password = (
                    self.kafka_ssl_key_password.get_secret_value()
                    if self.kafka_ssl_key_password
                    else None
                )
                _load_cert_chain(
                    context, "KAFKA", self.kafka_ssl_cert, self.kafka_ssl_key, password
                )
            options["ssl_context"] = context
        if self.kafka_security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return options

    def safe_summary(self) -> dict[str, Any]:
        """Every setting, secrets masked and the DSN reduced to host:port/database."""
        summary: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "postgres_dsn":
                value = redact_dsn(value.get_secret_value()) if value else None
            elif isinstance(value, SecretStr):
                value = "**********"
            elif isinstance(value, Path):
                value = str(value)
            summary[name] = value
        return summary


def _tls_problem(exc: OSError) -> str:
    """Why a TLS file could not be used, in a few words (never the file's content)."""
    if isinstance(exc, ssl.SSLError):
        return exc.reason or "not a PEM file it can use"
    return exc.strerror or type(exc).__name__


def _tls_context(service: str, ca: Path | None) -> ssl.SSLContext:
    """A default client context trusting ``ca`` (the system's CAs when None)."""
    try:
        return ssl.create_default_context(cafile=str(ca) if ca else None)
    except OSError as exc:  # ssl.SSLError is an OSError
        raise ConfigurationError(
            f"invalid settings: {ENV_PREFIX}{service}_SSL_CA: cannot use {ca}: {_tls_problem(exc)}"
        ) from None


def _load_cert_chain(
    context: ssl.SSLContext,
    service: str,
    cert: Path,
    key: Path | None,
    password: str | None = None,
) -> None:
    """The client certificate and key (mTLS) into ``context``."""
    try:
        context.load_cert_chain(str(cert), str(key) if key else None, password)
    except OSError as exc:
        names = f"{ENV_PREFIX}{service}_SSL_CERT" + (
            f"/{ENV_PREFIX}{service}_SSL_KEY" if key else ""
        )
        files = f"{cert}" + (f" and {key}" if key else "")
        raise ConfigurationError(
            f"invalid settings: {names}: cannot use {files}: {_tls_problem(exc)}"
        ) from None


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the given values (command-line flags) taking
    precedence; ``None`` means "not given". Invalid values raise one
    :class:`~debug_sink.errors.ConfigurationError` naming every problem by its variable."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else err["msg"].removeprefix("Value error, ")  # a check of several names them
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from None
    except SettingsError as exc:
        # A value the environment source cannot even parse (a list that is not JSON).
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"{ENV_PREFIX}{field.group(1).upper()}" if field else "a DEBUG_SINK_ variable"
        raise ConfigurationError(
            f"invalid settings: {name}: not valid JSON (a list is written as a JSON array, "
            'e.g. ["a", "b"])'
        ) from None
