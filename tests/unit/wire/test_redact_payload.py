"""Redactor.redact_payload: a whole message as a dead letter keeps it -- redacted JSON, or
text scanned for secrets, or nothing when a secret is named where the scan cannot redact it."""

from __future__ import annotations

import pytest

from debug_sink.wire.redact import Redactor

REDACTOR = Redactor()


@pytest.mark.parametrize(
    "value",
    [
        # OTLP/JSON cut short: attributes are name/value pairs
        b'{"resourceSpans":[{"attributes":[{"key":"authorization","value":{"stringValue":"Zeb',
        # a header list cut short
        b'{"headers":[{"name":"Authorization","value":"Indigo-Badger-Teapot-6603"}],"to',
        # a secret's name written with an escape
        b'{"pass\\u0077ord": "Tr0ubadour-Horse", "x": ',
        # a header list as HTTP clients write it
        b'[["X-Api-Key","Mauve-Otter"],',
        # a container under a secret name
        b'{"credentials": {"user": "a", "pin": "1234"}, ',
        # binary data: protobuf's KeyValue{key: "authorization", value: {string: ...}}
        b"\x0a\x0dauthorization\x12\x0b\x0a\x09Zebra-Quo",
        b"\x00\x01api_key\x02\x03Mauve-Otter",
    ],
)
def test_not_kept(value: bytes) -> None:
    assert REDACTOR.redact_payload(value) is None


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (b'{"password": "Tr0ubadour", "x": ', b'{"password": "[REDACTED]", "x": '),
        (b'{"max_tokens": 100, "input_tokens": 5, "x": ', None),  # counts, not secrets
        (b"plain text, no secret", None),
        (b'{"a": "b", ', None),
        (b"\x0a\x05hello\x12\x05\x0a\x03abc", None),  # binary without a secret's name
        (b'{"password": "x"}', b'{"password":"[REDACTED]"}'),  # JSON: walked
    ],
)
def test_kept(value: bytes, kept: bytes | None) -> None:
    assert REDACTOR.redact_payload(value) == (value if kept is None else kept)
