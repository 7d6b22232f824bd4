"""Redaction of what hostile or careless producers send, found by the end-to-end tests.

- Depth: JSON the Redactor parses itself (a dead letter's bytes, JSON inside a string)
  deeper than ``MAX_WALK_DEPTH`` is scrubbed as text, and ``decode`` never raises on such a
  message. orjson parses JSON up to 1024 levels deep; the walk takes two Python frames a
  level. Before, any such JSON between ~330 and 1024 levels deep raised RecursionError -- out
  of ``decode`` (a string field holding it) or out of the dead-letter write.
- A secret written as a key (``{"sk-...": "alice"}``) was kept: only values were scanned.
- Secret-named pairs in a string (``"password": "x"`` in a log line, a JSON text in a field)
  were skipped by the per-string pass over values, which expects quotes escaped as in raw
  JSON.
"""

from __future__ import annotations

import orjson

from debug_sink.wire.redact import MAX_WALK_DEPTH, REDACTED, Redactor
from debug_sink.wire.validation import Accepted, ValidationConfig, decode
from tests.secrets_corpus import SECRETS

SECRET = SECRETS["github"]
#: A key only the key rules recognise (a zero-width space inside "password"): text scanning
#: cannot, so it shows whether a JSON was walked as JSON.
DISGUISED = "pass\u200bword"


def _arrays(depth: int, inner: str) -> str:
    return "[" * depth + inner + "]" * depth


class TestDeepJson:
    def test_dead_letter_bytes_deeper_than_the_walk_are_scrubbed_as_text(self) -> None:
        """JSON 1000 levels deep (orjson parses it): the secret format and the secret-named
        pair in it are replaced, every other byte is kept."""
        data = _arrays(1000, f'"{SECRET}", {{"password": "plain-pw"}}').encode()
        redacted, changed = Redactor().redact_bytes(data)
        assert changed
        assert redacted == _arrays(1000, f'"{REDACTED}", {{"password": "{REDACTED}"}}').encode()

    def test_json_in_a_string_deeper_than_the_walk_is_scrubbed_as_text(self) -> None:
        text = _arrays(900, f'"{SECRET}"')
        assert Redactor().redact_text(text) == (_arrays(900, f'"{REDACTED}"'), True)

    def test_json_in_a_string_within_the_walk_is_still_walked_as_json(self) -> None:
        """Up to MAX_WALK_DEPTH a JSON string is redacted as JSON: by key too."""
        text = _arrays(MAX_WALK_DEPTH - 1, orjson.dumps({DISGUISED: "plain-pw"}).decode())
        assert Redactor().redact_text(text) == (text.replace("plain-pw", REDACTED), True)

    def test_json_in_strings_in_json_in_strings_share_one_depth_budget(self) -> None:
        """Twelve levels of JSON inside a string inside JSON ..., each 60 arrays deep (720
        levels in all, none of them too deep on its own): no RecursionError, the secret at
        the bottom is replaced."""
        text = f'"{SECRET}"'
        for _ in range(12):
            text = orjson.dumps(_arrays(60, text)).decode()
        value = orjson.loads(text)
        redacted, changed = Redactor().redact({"note": value})
        assert changed
        assert SECRET not in orjson.dumps(redacted).decode()

    def test_decode_accepts_a_field_holding_deep_json_and_redacts_it(self) -> None:
        """``decode`` never raises: an error whose message is a JSON text 900 deep with a
        secret in it is accepted, the secret replaced."""
        event = {
            "id": "c7e2b9a4-1d3f-4a6e-8b5c-9f0d2e7a1b36",
            "correlation_id": "5f0c2a8e-3b1d-4c7a-9e2f-6d8b1a4c3e21",
            "error_type": "ToolError",
            "error_category": "external",
            "error_severity": "high",
            "error_message": _arrays(900, f'"{SECRET}"'),
            "agent_name": "agent",
            "metadata": {"note": _arrays(900, f'"{SECRET}"')},
        }
        config = ValidationConfig(topics={"errors": "error"})
        result = decode("errors", orjson.dumps(event), timestamp_ms=0, config=config)
        assert isinstance(result, Accepted)
        dumped = result.event.model_dump(mode="json")
        assert dumped["error_message"] == _arrays(900, f'"{REDACTED}"')
        assert dumped["metadata"] == {"note": _arrays(900, f'"{REDACTED}"')}


class TestSecretsAsKeys:
    """A secret used as a key is replaced in the key; no entry is lost."""

    def test_secret_keys_are_replaced_and_kept_apart(self) -> None:
        other = SECRETS["openai"]
        value = {"owners": {SECRET: "alice", other: "bob", "plain": 1}}
        redacted, changed = Redactor().redact(value)
        assert changed
        assert redacted == {"owners": {REDACTED: "alice", f"{REDACTED} #2": "bob", "plain": 1}}

    def test_in_a_dead_letter(self) -> None:
        data = orjson.dumps({"cache": {SECRET: 1}, "note": "x"})
        assert Redactor().redact_bytes(data) == (
            orjson.dumps({"cache": {REDACTED: 1}, "note": "x"}),
            True,
        )

    def test_keys_without_secrets_leave_the_object_as_it_was(self) -> None:
        value = {"a": {"b": 1}, "note": "Bearer-less text"}
        assert Redactor().redact(value, values=True) == (value, False)


class TestSecretNamedPairsInText:
    """``"name": "value"`` pairs in text are found whatever the quotes."""

    def test_json_text_in_a_field_is_redacted_by_key(self) -> None:
        text = orjson.dumps({"password": "plain-1", DISGUISED: "plain-2", "user": "ada"}).decode()
        expected = {"password": REDACTED, DISGUISED: REDACTED, "user": "ada"}
        redacted, changed = Redactor().redact_text(text)
        assert changed
        assert orjson.loads(redacted) == expected

    def test_a_cut_json_text_is_redacted_as_pairs(self) -> None:
        text = 'request failed: {"password": "plain-1", "user": "ada"'
        expected = f'request failed: {{"password": "{REDACTED}", "user": "ada"'
        assert Redactor().redact_text(text) == (expected, True)


class TestNameValueLists:
    """``[name, value]`` lists (headers as HTTP clients list them) are redacted by the name."""

    def test_the_value_of_a_secret_name_is_replaced(self) -> None:
        value = {
            "headers": [
                ["X-Api-Key", "plain-1"],
                ("Authorization", "Token plain-2"),
                ["Accept", "json"],
            ]
        }
        expected = {
            "headers": [["X-Api-Key", REDACTED], ("Authorization", REDACTED), ["Accept", "json"]]
        }
        assert Redactor().redact(value) == (expected, True)

    def test_lines_and_counts_are_not_pairs(self) -> None:
        """A header line is text, not a name; a token count stays a number."""
        value = {
            "lines": [f"Authorization: {REDACTED}", "Accept: json"],
            "usage": [["max_tokens", 4096], ["tokens", 12]],
        }
        assert Redactor().redact(value) == (value, False)
