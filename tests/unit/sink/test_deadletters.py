"""Dead letters are redacted whatever shape the message has (debug_sink.sink.deadletters):
the pure part, Letters.make. The channels (topic and table) are tested with a real broker and
PostgreSQL in tests/integration."""

from __future__ import annotations

import hashlib

import orjson

from debug_sink.sink.batch import Origin
from debug_sink.sink.deadletters import TRUNCATED_HEADER, DeadLetter, Letters, _headers_json

ORIGIN = Origin("debug.error_events", 0, 7)
TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"


def letter(
    value: bytes, headers: tuple[tuple[str, bytes], ...] = (), max_bytes: int = 900_000
) -> DeadLetter:
    return Letters(max_bytes=max_bytes).make(
        ORIGIN,
        key=None,
        value=value,
        headers=headers,
        timestamp_ms=None,
        error_class="schema",
        reason="error_severity: ...",
    )


def test_a_secret_in_a_key_given_twice_is_not_kept() -> None:
    """JSON parsing keeps a repeated key's last value; the bytes hold the first too."""
    value = (
        b'{"metadata":{"password":"hunter2-plain-text"},"error_message":"'
        + TOKEN.encode()
        + b'","metadata":{},"error_message":"ok","error_severity":"urgent"}'
    )
    made = letter(value)
    assert made.value is not None
    assert b"hunter2" not in made.value
    assert TOKEN.encode() not in made.value
    assert orjson.loads(made.value) == orjson.loads(value)  # the message as parsed


def test_a_letter_cut_to_size_is_redacted_by_key_before() -> None:
    """A cut message is no JSON: its secrets by key (a header list, a full-width name)
    are redacted before it is cut."""
    state = {
        "headers": [{"name": "Authorization", "value": "Token nv-4d5f6g7h8j"}],
        "\uff41\uff50\uff49_\uff4b\uff45\uff59": "fw-8i9o0p1a2s",
        "blob": "x" * 200_000,
    }
    made = letter(orjson.dumps({"agent_state": state}), max_bytes=100_000)
    assert made.truncated is not None
    assert made.value is not None
    assert len(made.value) < 100_000
    assert b"nv-4d5f6g7h8j" not in made.value
    assert b"fw-8i9o0p1a2s" not in made.value


def test_a_token_sent_as_a_header_name() -> None:
    made = letter(b"{}", headers=((TOKEN, b"v"), ("note", b"ok")))
    names = [name for name, _ in made.headers]
    assert TOKEN not in " ".join(names)
    assert "note" in names


def test_a_withheld_message_says_so_whatever_its_reason_holds() -> None:
    """The note that the message is not kept survives a reason made longer by its NULs
    (each written as four characters) and cut to size."""
    made = Letters(max_bytes=900_000).make(
        ORIGIN,
        key=None,
        value=b'{"password": 123456, "x": ',  # broken JSON naming a secret: not kept
        headers=(),
        timestamp_ms=None,
        error_class="not_json",
        reason="bad\x00" * 2000,
    )
    assert made.value == b""
    assert made.reason.endswith("its size is in debug-sink.truncated]")
    assert made.truncated == (26, None)
    assert "\x00" not in made.reason
    assert len(made.reason) <= 4000


def test_a_cut_letter_hashes_its_message_only_when_nothing_was_redacted() -> None:
    """The SHA-256 in debug-sink.truncated identifies the message as sent. Of a message
    that held a secret it would let anyone who can guess the rest confirm a guess of the
    secret (a short password in a known template), so such a letter gives only the size."""
    clean = orjson.dumps({"error_message": "x" * 50_000})
    made = letter(clean, max_bytes=10_000)
    assert made.truncated == (len(clean), hashlib.sha256(clean).hexdigest())
    assert _headers_json(made) == {
        TRUNCATED_HEADER: f"original_bytes={len(clean)} sha256={hashlib.sha256(clean).hexdigest()}"
    }

    secret = orjson.dumps({"password": "1234", "error_message": "x" * 50_000})
    made = letter(secret, max_bytes=10_000)
    assert made.value is not None
    assert b"1234" not in made.value
    assert made.truncated == (len(secret), None)
    assert _headers_json(made) == {TRUNCATED_HEADER: f"original_bytes={len(secret)}"}
    assert hashlib.sha256(secret).hexdigest() not in str(made)


def test_the_producers_state_hash_goes_when_its_state_was_redacted() -> None:
    """A state_hash computed over the state as sent would let anyone who knows the rest of
    the state confirm a guess of the redacted password (a 4-digit PIN: 10,000 tries)."""
    state = {"db": {"host": "db", "password": "1234"}}
    sent_hash = hashlib.sha256(orjson.dumps(state)).hexdigest()
    message = {"agent_state": state, "state_hash": sent_hash, "snapshot_type": 7}
    made = letter(orjson.dumps(message))
    assert made.value is not None
    kept = orjson.loads(made.value)
    assert kept["agent_state"]["db"] == {"host": "db", "password": "[REDACTED]"}
    assert kept["state_hash"] == "[REDACTED]"
    assert sent_hash.encode() not in made.value
    # Cut after the hash, cut inside it, or JSON held in a string: the same.
    whole = orjson.dumps(message)
    for value in (
        whole[:-5],
        whole[: whole.index(sent_hash.encode()) + 60],
        orjson.dumps({"error_message": whole.decode()})[:-3],
    ):
        cut = letter(value)
        assert cut.value is not None
        assert b"1234" not in cut.value
        assert sent_hash[:12].encode() not in cut.value, value[-80:]
    # Nothing redacted: the hash stays (it reveals nothing).
    clean = {"agent_state": {"db": {"host": "db"}}, "state_hash": sent_hash}
    assert sent_hash.encode() in (letter(orjson.dumps(clean)).value or b"")


def test_a_framed_message_is_redacted_as_the_json_it_frames() -> None:
    """A Schema Registry header (or a BOM) before the JSON made the scan read the message as
    binary: any secret-sounding key ("total_tokens") then withheld the whole value. The JSON
    after the frame is redacted as JSON, and the frame kept."""
    frame = b"\x00\x00\x00\x00\x07"
    body = orjson.dumps(
        {"usage": {"total_tokens": 12}, "error_message": TOKEN, "error_severity": "urgent"}
    )
    made = letter(frame + body)
    assert made.value is not None
    assert made.value.startswith(frame)
    assert TOKEN.encode() not in made.value
    assert orjson.loads(made.value[len(frame) :])["usage"] == {"total_tokens": 12}
    assert made.truncated is None


def test_an_empty_or_tiny_value_is_kept_as_it_is() -> None:
    for value in (b"", b"\x00", b"\xef\xbb", b"\x00\x00\x00\x00\x07"):
        assert letter(value).value == value
