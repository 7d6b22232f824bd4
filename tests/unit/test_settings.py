"""Settings of the OTLP topics: defaults, the subscription they add, clashes refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from debug_sink.errors import ConfigurationError
from debug_sink.otlp.decode import Encoding
from debug_sink.settings import Settings, load_settings


class TestOtlpTopics:
    """The OTLP traces topics are read next to the event topics, by the same consumer."""

    def test_default_is_prefix_otlp_spans_detected_per_message(self) -> None:
        settings = Settings(topic_prefix="acme.", topic_pattern=r"^acme\.")
        assert settings.otlp_topic_encodings == {"acme.otlp_spans": Encoding.AUTO}
        assert settings.subscription_pattern == r"^acme\."

    def test_a_topic_outside_the_pattern_is_subscribed_as_well(self) -> None:
        settings = Settings(otlp_topics={"otlp_spans": "otlp_json"})
        pattern = settings.subscription_pattern
        for topic in ("debug.error_events", "otlp_spans"):
            assert re.search(pattern, topic), topic
        for topic in ("otlp_spans2", "xotlp_spans", "debug-sink.dead-letters"):
            assert not re.search(pattern, topic), topic
        assert settings.otlp_topic_encodings == {"otlp_spans": Encoding.JSON}

    def test_none_at_all(self) -> None:
        assert Settings(otlp_topics={}).otlp_topic_encodings == {}

    def test_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DEBUG_SINK_OTLP_TOPICS", '{"traces": "otlp_proto"}')
        monkeypatch.setenv("DEBUG_SINK_OTLP_STATE_ATTRIBUTES", '["my.state"]')
        settings = load_settings()
        assert settings.otlp_topic_encodings == {"traces": Encoding.PROTO}
        assert settings.otlp_state_attributes == ("my.state",)

    @pytest.mark.parametrize(
        "topics",
        [{"debug.error_events": "auto"}, {"debug-sink.dead-letters": "auto"}, {"t": "xml"}],
    )
    def test_clashes_and_unknown_encodings_are_refused(self, topics: dict[str, str]) -> None:
        with pytest.raises(ConfigurationError, match="OTLP_TOPICS"):
            load_settings(otlp_topics=topics)


class TestValuesThatCannotWork:
    """Refused when the settings load (one line naming the variable), not met later as an
    OverflowError in a batch or a loop that never waits."""

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("correlator_interval", "nan"),
            ("correlator_interval", "inf"),
            ("park_grace_seconds", "inf"),
            ("park_grace_seconds", 1e12),
            ("stall_timeout_seconds", "nan"),
            ("retention_days", 10**10),
        ],
    )
    def test_refused(self, field: str, value: object) -> None:
        with pytest.raises(ConfigurationError, match=field.upper()):
            load_settings(**{field: value})

    @pytest.mark.parametrize(
        ("servers", "kept"),
        [
            ("localhost:9092", "localhost:9092"),
            ("kafka", "kafka"),
            (" h1:9092, h2:9093 ", "h1:9092,h2:9093"),
            ("[::1]:9092", "[::1]:9092"),
        ],
    )
    def test_bootstrap_servers(self, servers: str, kept: str) -> None:
        assert Settings(kafka_bootstrap_servers=servers).kafka_bootstrap_servers == kept

    @pytest.mark.parametrize(
        "servers",
        ["", " , ", "h:99999", "h:0", "h:x", ":9092", "h:", "a b:1", "[::1", "h1:1,,h2:2"],
    )
    def test_bootstrap_servers_that_are_no_addresses(self, servers: str) -> None:
        with pytest.raises(ConfigurationError, match="KAFKA_BOOTSTRAP_SERVERS"):
            load_settings(kafka_bootstrap_servers=servers)


class TestTlsAndSaslThatCannotWork:
    """A TLS file that cannot be read, or SASL without its credentials, is one
    ConfigurationError naming the variable -- not a FileNotFoundError, ssl.SSLError or
    aiokafka's ValueError shown to the operator as a traceback."""

    @pytest.mark.parametrize("field", ["postgres_ssl_ca", "postgres_ssl_cert"])
    def test_a_postgres_tls_file_that_does_not_exist(self, field: str, tmp_path: Path) -> None:
        settings = Settings(**{field: tmp_path / "missing.pem"})
        with pytest.raises(ConfigurationError, match=field.upper()) as caught:
            settings.postgres_ssl()
        assert "missing.pem" in str(caught.value)

    def test_a_postgres_ca_that_is_no_certificate(self, tmp_path: Path) -> None:
        not_pem = tmp_path / "ca.pem"
        not_pem.write_text("not a certificate\n")
        with pytest.raises(ConfigurationError, match="POSTGRES_SSL_CA"):
            Settings(postgres_ssl_ca=not_pem).postgres_ssl()

    @pytest.mark.parametrize("field", ["kafka_ssl_ca", "kafka_ssl_cert"])
    def test_a_kafka_tls_file_that_does_not_exist(self, field: str, tmp_path: Path) -> None:
        settings = Settings(kafka_security_protocol="SSL", **{field: tmp_path / "missing.pem"})
        with pytest.raises(ConfigurationError, match=field.upper()):
            settings.kafka_client_options()

    @pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
    @pytest.mark.parametrize(
        "given",
        [{}, {"kafka_sasl_username": "sink"}, {"kafka_sasl_password": "pw-not-shown"}],
    )
    def test_sasl_without_its_credentials(self, protocol: str, given: dict[str, str]) -> None:
        with pytest.raises(ConfigurationError, match="KAFKA_SASL_") as caught:
            load_settings(kafka_security_protocol=protocol, **given)
        assert "pw-not-shown" not in str(caught.value)

    @pytest.mark.parametrize(
        ("given", "named"),
        [
            (
                {"postgres_ssl_mode": "disable", "postgres_ssl_ca": "/etc/ca.pem"},
                "POSTGRES_SSL_MODE=disable contradicts DEBUG_SINK_POSTGRES_SSL_CA",
            ),
            ({"postgres_ssl_key": "/etc/k.pem"}, "POSTGRES_SSL_KEY is set without"),
            (
                {"kafka_security_protocol": "SSL", "kafka_ssl_key": "/etc/k.pem"},
                "KAFKA_SSL_KEY is set without",
            ),
            ({"kafka_ssl_ca": "/etc/ca.pem"}, "KAFKA_SSL_CA would be ignored"),
            (
                {
                    "kafka_security_protocol": "SASL_PLAINTEXT",
                    "kafka_sasl_username": "u",
                    "kafka_sasl_password": "p",
                    "kafka_ssl_cert": "/etc/c.pem",
                },
                "KAFKA_SSL_CERT would be ignored",
            ),
        ],
    )
    def test_tls_settings_that_would_be_ignored_or_contradict(
        self, given: dict[str, str], named: str
    ) -> None:
        """TLS files the other settings would silently ignore (or use against the mode
        asked for: a CA with ``disable`` still meant TLS) are refused, naming them."""
        with pytest.raises(ConfigurationError, match=named):
            load_settings(**given)

    def test_tls_settings_that_agree(self) -> None:
        settings = load_settings(
            postgres_ssl_mode="verify-full",
            postgres_ssl_ca="/etc/ca.pem",
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
            kafka_ssl_ca="/etc/ca.pem",
        )
        assert settings.postgres_ssl_ca is not None
        assert settings.kafka_ssl_ca is not None

    def test_sasl_with_its_credentials(self) -> None:
        options = load_settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="sink",
            kafka_sasl_password="pw",
        ).kafka_client_options()
        assert options["sasl_plain_username"] == "sink"
        assert options["sasl_plain_password"] == "pw"


class TestDsnWithAnUnencodedPassword:
    """A password holding ``?``, ``#`` or ``/`` that was not percent-encoded splits the URL
    at the wrong place: what follows lands in the query, the fragment or the database name.
    Refused when the settings load, with a hint and no part of the DSN in the message --
    not asyncpg's ``ValueError: bad query field: 'REST-OF-PASSWORD@db/x'`` as a traceback,
    nor a connection to host ``sink``, port 12, named in every message."""

    @pytest.mark.parametrize(
        "dsn",
        [
            "postgresql://sink:12?Sekr3tX@db:5432/debug",
            "postgresql://sink:Sekr3tX?@db/debug",
            "postgresql://sink:12#Sekr3tX@db/debug",
            "postgresql://sink:1234/Sekr3tX@db/debug",
            "postgresql://sink@db/debug?Sekr3tX",
        ],
    )
    def test_refused_without_echoing_it(self, dsn: str) -> None:
        with pytest.raises(ConfigurationError, match="POSTGRES_DSN") as caught:
            load_settings(postgres_dsn=dsn)
        assert "Sekr3tX" not in str(caught.value)
        assert "percent-encoded" in str(caught.value) or "port" in str(caught.value)

    @pytest.mark.parametrize(
        "dsn",
        [
            "postgresql://sink:12%3FSekr3tX@db:5432/debug",
            "postgresql://sink:a%2Fb%23c%40d@db/debug?sslmode=disable&application_name=x",
            "postgresql://sink@/debug?host=/var/run/postgresql",
            "host=db user=sink password='12?Sekr3tX/#@' dbname=debug",
        ],
    )
    def test_encoded_and_key_value_forms_are_kept(self, dsn: str) -> None:
        assert load_settings(postgres_dsn=dsn).postgres_dsn is not None


def test_a_user_name_with_an_at_sign_in_the_query_is_kept() -> None:
    assert load_settings(postgres_dsn="postgresql://db/debug?user=sink@server").postgres_dsn


class TestNamesKafkaRefuses:
    """A topic name Kafka refuses, or an empty consumer group, was met only when the sink
    used it: the dead-letter topic at the first invalid event -- the batch then retried
    for ever ("' ' is not a valid topic name"), nothing after it stored."""

    @pytest.mark.parametrize("name", ["", " ", "☃", "a/b", "x" * 250])
    def test_dead_letter_topic(self, name: str) -> None:
        with pytest.raises(ConfigurationError, match="DEAD_LETTER_TOPIC"):
            load_settings(dead_letter_topic=name)

    @pytest.mark.parametrize("prefix", [" ", "debug ", "☃.", "a/"])
    def test_topic_prefix(self, prefix: str) -> None:
        with pytest.raises(ConfigurationError, match="TOPIC_PREFIX"):
            load_settings(topic_prefix=prefix)

    def test_otlp_topic(self) -> None:
        with pytest.raises(ConfigurationError, match="OTLP_TOPICS"):
            load_settings(otlp_topics={"otlp spans": "auto"})

    @pytest.mark.parametrize("group", ["", "  "])
    def test_group_id(self, group: str) -> None:
        with pytest.raises(ConfigurationError, match="GROUP_ID"):
            load_settings(group_id=group)

    @pytest.mark.parametrize("field", ["postgres_ssl_ca", "kafka_ssl_cert", "hook_dir"])
    def test_an_empty_path_is_unset(self, field: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """``DEBUG_SINK_POSTGRES_SSL_CA=`` (a compose file's ``${CA:-}``) is no file, not
        the current directory."""
        monkeypatch.setenv(f"DEBUG_SINK_{field.upper()}", "")
        assert getattr(load_settings(), field) is None

    def test_valid_names_are_kept(self) -> None:
        settings = load_settings(
            dead_letter_topic="debug-sink.dead_letters", topic_prefix="", group_id="g 1"
        )
        assert settings.topic_for(next(iter(settings.topics.values()))).isascii()


class TestUiRootPath:
    """DEBUG_SINK_UI_ROOT_PATH is written before every URL of the web view's pages: a plain
    path, nothing a URL or HTML would escape, no way to name another origin."""

    @pytest.mark.parametrize("path", ["", "/debug-sink", "/tools/debug_sink.v2", "/a/~b/c-d"])
    def test_plain_paths(self, path: str) -> None:
        assert Settings(ui_root_path=path).ui_root_path == path

    @pytest.mark.parametrize(
        "path",
        [
            "/",
            "debug-sink",
            "/debug-sink/",
            "//evil.example",
            "/a//b",
            "/a/../b",
            "/..",
            "/.",
            "/a b",
            "/a%2Fb",
            '/a"><script>',
            "/a?b",
            "/a#b",
            "/a\\b",
            "https://evil.example",
            "/caf\u00e9",
            "/a\n",
        ],
    )
    def test_refused(self, path: str) -> None:
        with pytest.raises(ConfigurationError, match="UI_ROOT_PATH"):
            load_settings(ui_root_path=path)
