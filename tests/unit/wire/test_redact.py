"""Redaction by key and by value (debug_sink.wire.redact, debug_sink.wire.secrets)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from debug_sink.errors import ConfigurationError
from debug_sink.wire.redact import DEFAULT_REDACT_PATTERNS, REDACTED, Redactor, normalise_key

MUST_REDACT = [
    "password",
    "db_password",
    "passwd",
    "PASSWORD",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "refreshToken",
    "api_key",
    "apiKey",
    "x-api-key",
    "API-KEY",
    "authorization",
    "Authorization",
    "cookie",
    "set-cookie",
    "private_key",
    "privateKey",
]
MUST_NOT_REDACT = [
    "max_tokens",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "token_count",
    "tokens_used",
    "session_id",
    "correlation_id",
    "agent_name",
    "author",
    "keys",
]


class TestNormaliseKey:
    """normalise_key lower-cases and drops - _ . and spaces."""

    @pytest.mark.parametrize(
        ("key", "expected"),
        [
            ("X-API-Key", "xapikey"),
            ("api_key", "apikey"),
            ("private.key", "privatekey"),
            ("Set Cookie", "setcookie"),
        ],
    )
    def test_normalises(self, key: str, expected: str) -> None:
        """Separators and case do not matter to the patterns."""
        assert normalise_key(key) == expected


class TestRedactor:
    """Redactor replaces the values of secret-looking keys, at any depth, never mutating."""

    @pytest.mark.parametrize("key", MUST_REDACT)
    def test_default_patterns_redact(self, key: str) -> None:
        """Every credential-like key of the issue's list is redacted by default."""
        value, changed = Redactor().redact({key: "s3cr3t", "other": 1})
        assert value == {key: REDACTED, "other": 1}
        assert changed is True

    @pytest.mark.parametrize("key", MUST_NOT_REDACT)
    def test_default_patterns_keep_llm_metrics_and_ids(self, key: str) -> None:
        """LLM token counts and the ids the views read are not secrets."""
        original = {key: 812}
        value, changed = Redactor().redact(original)
        assert value == {key: 812}
        assert changed is False

    def test_nested_in_dicts_and_lists(self) -> None:
        """Secrets are found inside lists of objects and nested objects, at any depth."""
        state = {
            "requests": [
                {"headers": {"Authorization": "Bearer abc", "Accept": "json"}},
                [{"deep": {"api_key": {"nested": "whole value goes"}}}],
            ],
            "llm": {"max_tokens": 100},
        }
        value, changed = Redactor().redact(state)
        assert changed is True
        assert value == {
            "requests": [
                {"headers": {"Authorization": REDACTED, "Accept": "json"}},
                [{"deep": {"api_key": REDACTED}}],
            ],
            "llm": {"max_tokens": 100},
        }

    def test_does_not_mutate_and_shares_untouched_parts(self) -> None:
        """The input is left intact; branches without secrets are reused, not copied."""
        untouched = {"a": [1, 2]}
        state = {"keep": untouched, "box": {"password": "x"}}
        before = orjson.dumps(state)
        value, _ = Redactor().redact(state)
        assert orjson.dumps(state) == before
        assert value is not state
        assert value["keep"] is untouched

    def test_nothing_to_redact_returns_the_same_object(self) -> None:
        """Without secrets the very same object comes back and nothing is reported."""
        state = {"a": [{"b": 1}], "c": "d"}
        value, changed = Redactor().redact(state)
        assert value is state
        assert changed is False

    def test_idempotent(self) -> None:
        """Redacting a redacted value changes nothing and reports nothing (SDK then sink)."""
        redactor = Redactor()
        once, first = redactor.redact({"token": "abc", "x": [{"secret": 1}]})
        twice, second = redactor.redact(once)
        assert (first, second) == (True, False)
        assert twice == once

    def test_any_value_type_is_replaced(self) -> None:
        """Numbers, objects, lists and null under a secret key become the marker string."""
        state: dict[str, Any] = {"token": 1, "secret": {"a": 1}, "password": [1], "cookie": None}
        value, _ = Redactor().redact(state)
        assert value == {
            "token": REDACTED,
            "secret": REDACTED,
            "password": REDACTED,
            "cookie": REDACTED,
        }

    def test_tuples_are_walked_and_stay_tuples(self) -> None:
        """Python tuples (SDK side) are walked like lists and keep their type."""
        value, changed = Redactor().redact({"t": ({"password": "x"}, 1)})
        assert changed is True
        assert value == {"t": ({"password": REDACTED}, 1)}

    def test_scalars_pass_through(self) -> None:
        """A non-container value is returned unchanged."""
        assert Redactor().redact("password") == ("password", False)

    def test_custom_patterns_replace_the_defaults(self) -> None:
        """Configured patterns are searched case-insensitively in the normalised key."""
        redactor = Redactor([r"^ssn$", "creditcard"])
        value, _ = redactor.redact({"SSN": "1", "credit-card": "2", "password": "3"})
        assert value == {"SSN": REDACTED, "credit-card": REDACTED, "password": "3"}

    def test_no_patterns_disable_redaction(self) -> None:
        """An empty pattern list redacts nothing."""
        state = {"password": "x"}
        assert Redactor([]).redact(state) == (state, False)

    def test_invalid_pattern_is_a_configuration_error(self) -> None:
        """A pattern that is not a regex is refused when the Redactor is built."""
        with pytest.raises(ConfigurationError, match=r"\(unclosed"):
            Redactor(["(unclosed"])

    def test_defaults_are_exposed(self) -> None:
        """The default pattern list is a public tuple the settings reuse."""
        assert isinstance(DEFAULT_REDACT_PATTERNS, tuple)
        assert Redactor().patterns == DEFAULT_REDACT_PATTERNS

    def test_verdicts_survive_cache_eviction(self) -> None:
        """Many distinct keys (more than the cache holds) are all still classified right."""
        redactor = Redactor()
        keys = {f"field_{n}": n for n in range(25_000)}
        value, changed = redactor.redact(keys)
        assert changed is False
        assert value is keys
        assert redactor.matches("db_password") is True
