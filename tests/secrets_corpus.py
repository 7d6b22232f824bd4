"""Secrets and look-alikes for the redaction tests (unit and end to end).

``SECRETS``: each a credential in a well-known format; a test plants them in every kind of
field and asserts that none survives anywhere. ``NOT_SECRETS``: values that look busy but
are not credentials (ids, hashes, counts, images); nothing of them may be redacted.
"""

from __future__ import annotations

import base64
import hashlib
import uuid

#: name -> the secret itself (what must never be stored).
SECRETS: dict[str, str] = {
    "openai": "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
    "openai_live": "sk-live-9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "anthropic": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "github": "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "github_pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFG",
    "slack": "xoxb-2048123456-4096123456-AbCdEfGhIjKlMnOpQrStUvWx",
    "aws_key_id": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "google": "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "jwt": (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    ),
    "bearer": "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5",
    "url_password": "hunter2-URL-pass",
    "dsn_password": "s3cr3t-DSN-pass",
    "pem": "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw",
    "mysql_password": "Myq-pw_7Hq2xLr9",
    "curl_password": "cUrl-pw_4Kd8mZt1",
}


#: The texts that carry them, in the forms agents write.
def carriers() -> dict[str, str]:
    s = SECRETS
    return {
        "openai": f"OpenAI call failed with key {s['openai']}",
        "openai_live": f"using {s['openai_live']} for billing",
        "anthropic": f"ANTHROPIC_API_KEY {s['anthropic']}",
        "github": f"cloning with token {s['github']}",
        "github_pat": f"GH={s['github_pat']}",
        "slack": f"posting to slack as {s['slack']}",
        "aws_key_id": f"aws creds {s['aws_key_id']} {s['aws_secret']}",
        "aws_secret": f"aws_secret_access_key = '{s['aws_secret']}'",
        "google": f"maps key {s['google']}",
        "jwt": f"session cookie was {s['jwt']}",
        "bearer": f"curl -H 'Authorization: Bearer {s['bearer']}' https://api",
        "url_password": f"connect to postgresql://agent:{s['url_password']}@db:5432/app",
        "dsn_password": f"host=db user=agent password={s['dsn_password']} dbname=app",
        "pem": f"-----BEGIN RSA PRIVATE KEY-----\n{s['pem']}\n-----END RSA PRIVATE KEY-----",
        "mysql_password": f"mysql -h db -u agent -p{s['mysql_password']} app < dump.sql",
        "curl_password": f"curl -sS -u agent:{s['curl_password']} https://api.example.com/v1",
    }


#: Keys whose value is a credential, written the ways agents (and attackers) write them.
SECRET_KEYS: list[str] = [
    "password",
    "pwd",
    "auth",
    "jwt",
    "access_key",
    "connection_string",
    "tokens",
    "Authorization",
    "x-api-key",
    "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44",  # full-width "password"
    "pass\u200bword",  # zero-width space inside
    "\u0440assword",  # a Cyrillic er for the "p"
    "API\u2060KEY",  # word joiner inside
]

#: Values and keys that are not secrets and must come through unchanged.
NOT_SECRETS: dict[str, object] = {
    "max_tokens": 4096,
    "prompt_tokens": 812,
    "completion_tokens": 91,
    "eos_token": "</s>",
    "pad_token": "<pad>",
    "stop_token": "<|end|>",
    "next_page_token": "CAESBgoEX2lkCg",
    "state_sha256": hashlib.sha256(b"state").hexdigest(),
    "md5": hashlib.md5(b"x").hexdigest(),
    "request_id": str(uuid.uuid4()),
    "image": "data:image/png;base64," + base64.b64encode(bytes(range(256)) * 8).decode(),
    "note": "token validation failed; Basic information about the key press",
    "trace": 'Traceback (most recent call last):\n  File "agent.py", line 3\nKeyError: "x"',
    "author": "Ada Lovelace",
    "url": "https://example.com/docs?page=2",
}
