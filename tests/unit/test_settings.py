"""Settings of the OTLP topics: defaults, the subscription they add, clashes refused."""

from __future__ import annotations

import re

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
