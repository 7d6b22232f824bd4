"""Secrets by their *value*: credentials recognised by format in any text, and replaced.

Owns :class:`SecretScrubber` -- one compiled scan for well-known secret formats, used on every
string the sink stores (free-text columns, every string inside JSON, header values, dead
letters and their reasons) -- and the key classifier :func:`is_secret_key` shared with
:class:`~debug_sink.wire.canonical.Redactor` (secrets by *key*).

The formats:

- the token formats of `detect-secrets <https://github.com/Yelp/detect-secrets>`_ whose
  pattern spans the secret itself (AWS access key ids, GitHub, GitLab, Slack, Stripe, SendGrid,
  Square, Discord, Telegram, PyPI, Mailchimp, npm, Azure storage keys, JWTs, the password of
  ``scheme://user:password@host``), taken from its plugins at import time;
- what it lacks: provider API keys (``sk-…``, ``sk-ant-…``, ``github_pat_…``, Google
  ``AIza…``), the secret that follows an AWS access key id, ``Authorization``/``Bearer``/
  ``Basic`` values, whole PEM private-key blocks, and ``key=value`` / ``key: value`` pairs in
  text whose key is a secret's name (libpq DSNs ``password=…``, query strings, log lines);
- passwords given on command lines by the options of well-known tools (``mysql -pX``,
  ``curl -u user:X``, ``sshpass -p X``, ``docker login -p X``: :mod:`~debug_sink.wire.commands`);
- operator-configured extra patterns (``DEBUG_SINK_REDACT_VALUE_PATTERNS``).

Guarantees: only the secret is replaced (``Bearer [REDACTED]``, ``postgresql://u:[REDACTED]@h``),
so the text stays readable; text without a secret comes back as the same object; scrubbing
is idempotent. Not guaranteed: secrets in no known format and under no secret-looking name
(a bare random string is indistinguishable from an id or a hash, which must not be redacted).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from debug_sink.errors import ConfigurationError
from debug_sink.wire import commands

__all__ = [
    "REDACTED",
    "SecretScrubber",
    "default_scrubber",
    "is_secret_key",
    "normalise_key",
    "safe_name",
]

REDACTED: Final = "[REDACTED]"

# -- keys -----------------------------------------------------------------------------------

#: Zero-width and invisible characters that can hide inside a key ("pass\u200bword").
_INVISIBLE: Final = dict.fromkeys(
    map(ord, "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff")
)
#: Latin look-alikes from Cyrillic and Greek (after case folding) that NFKC leaves alone.
_CONFUSABLES: Final = str.maketrans(
    "авсеђһіјкмнорѕтхуԁԛԝαβεηικνορτυχϲ",
    "abceђhijkmhopstxydqwabenikvoptuxc",
)
_SEPARATORS: Final = re.compile(r"[\W_]+")


@functools.lru_cache(maxsize=16384)
def normalise_key(key: str) -> str:
    """The form of a key that secret names are matched against: NFKC (full-width and styled
    letters become plain), case-folded, look-alike letters mapped to Latin, invisible
    characters and every separator removed: ``X-Api_Key``, the full-width ``api_key`` and
    ``api_key`` with a Cyrillic ``i`` are all ``apikey``."""
    text = unicodedata.normalize("NFKC", key).casefold().translate(_INVISIBLE)
    return _SEPARATORS.sub("", text.translate(_CONFUSABLES))


#: Secret names, matched (``re.search``) against :func:`normalise_key`.
SECRET_KEY_PATTERNS: Final[tuple[str, ...]] = (
    r"passw(?:or)?d|passphrase|^pwd$|pwd$|^pass$",
    r"secret",
    # token, access_token, auth_tokens -- not LLM counters, vocabulary items, paging cursors.
    r"^(?!(?:max|min|prompt|completion|total|input|output|num|n|cached|reasoning|cache|eos|"
    r"bos|pad|stop|unk|sep|cls|mask|special|start|end|next|nextpage|page|prevpage|"
    r"previouspage|continuation|sync|used|remaining|context|generated|estimated|count|limit|"
    r"budget)tokens?$).*tokens?$",
    r"(?:api|access|secret|private|signing|encryption|master|client|auth|account)keys?(?:id)?$",
    r"^(?:x)?apikey",
    r"authori[sz]ation",
    r"(?<!o)auth(?!or|ority|ent|ors)",  # auth, x-auth, authheader; not author(ity), authenticated
    r"cookie",
    r"privatekey",
    r"credential",
    r"jwt",
    r"connectionstring|connstring|^dsn$|databaseurl|dburl",
)
_SECRET_KEY: Final = re.compile("|".join(f"(?:{p})" for p in SECRET_KEY_PATTERNS))


@functools.lru_cache(maxsize=16384)
def is_secret_key(key: str) -> bool:
    """True when a value stored under ``key`` is a credential by its name."""
    normal = normalise_key(key)
    return bool(normal) and _SECRET_KEY.search(normal) is not None


# -- values ---------------------------------------------------------------------------------

#: detect-secrets plugins whose patterns match the secret itself (group 1 when they have one).
#: Left out: keyword and high-entropy detectors (hashes, ids and base64 images are not
#: secrets), public IPs, the private-key *header* detector (whole blocks are matched below),
#: Artifactory and Twilio (short prefixes that match ordinary words and base64 data).
_DETECT_SECRETS_PLUGINS: Final = (
    ("aws", "AWSKeyDetector"),
    ("azure_storage_key", "AzureStorageKeyDetector"),
    ("basic_auth", "BasicAuthDetector"),
    ("discord", "DiscordBotTokenDetector"),
    ("github_token", "GitHubTokenDetector"),
    ("gitlab_token", "GitLabTokenDetector"),
    ("jwt", "JwtTokenDetector"),
    ("mailchimp", "MailchimpDetector"),
    ("npm", "NpmDetector"),
    ("openai", "OpenAIDetector"),
    ("pypi_token", "PypiTokenDetector"),
    ("sendgrid", "SendGridDetector"),
    ("slack", "SlackDetector"),
    ("square_oauth", "SquareOAuthDetector"),
    ("stripe", "StripeDetector"),
    ("telegram_token", "TelegramBotTokenDetector"),
)

#: Formats detect-secrets does not have (or matches too narrowly to replace).
_OWN_PATTERNS: Final[tuple[str, ...]] = (
    # Provider keys: OpenAI (sk-, sk-proj-, sk-live-...), Anthropic (sk-ant-...), Stripe-like.
    r"(?<![A-Za-z0-9])sk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_]{16,}",
    r"(?<![A-Za-z0-9])(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}",
    r"(?<![A-Za-z0-9])github_pat_[A-Za-z0-9_]{22,}",
    r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{20,}",
    r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}",
    r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35,}",
    r"(?<![A-Za-z0-9])(?:hf|npm|dop_v1|shpat|shpss)_[A-Za-z0-9_-]{20,}",
    # The 40-character secret that follows an AWS access key id in the same text.
    r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}[^A-Za-z0-9/+]{1,30}"
    r"(?:[A-Za-z_ ]{0,40}[=:]\s*['\"]?)?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
    # The password of a URL whose user name is empty (redis://:password@host); with a user
    # name, detect-secrets' BasicAuthDetector has it.
    r"://:([^\s:/?#@\"'\\]+)@",
    # HTTP credentials: the value after the scheme word (with a digit or a symbol in it, so
    # that "Basic information" is prose, "Bearer 4f9a..." a credential).
    r"(?i:\b(?:bearer|basic|digest)\s+((?=[A-Za-z._~+/=-]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}))",
    # Header lines and header-like pairs: everything after the name, to the end of the line.
    r"(?i:\b(?:proxy-)?authorization\s*[:=]\s*([^\r\n\"']+))",
    r"(?i:\b(?:set-)?cookie\s*:\s*([^\r\n\"']+))",
    r"(?i:\bx-(?:api|auth)-(?:key|token)\s*:\s*([^\r\n\"'\s]+))",
    # PEM private keys, whole blocks (or to the end of a cut text).
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
    r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)",
    r"PuTTY-User-Key-File-\d:[\s\S]*?(?:Private-MAC: *[0-9a-f]+|$)",
)

#: The ``name=`` / ``name: `` / ``"name": `` of a pair in text, up to its value; the name is
#: checked with :func:`is_secret_key`, so only secret names cost a replacement. The value is
#: not part of the match, so that the search goes on inside it: in ``login failed:
#: password=x`` the pair after the label is found too.
_PAIR_NAME: Final = re.compile(
    r"""(?<![\w-])(?:(-{1,2})(?=[A-Za-z_]))?(\\["']|["']?)([A-Za-z_][\w.-]{0,60}?)\2"""
    r"""(?:\s*(?:=|:(?!//))\s*|(?<=[\w.-])(?(1)[ \t]+(?=[^\s-])|(?!)))"""
)
#: Group 1: a command-line flag's dashes (``--password=x``, ``--token x``: a flag's value
#: may follow a space); group 2: the name's quote, also escaped (``\\"password\\":`` in
#: JSON held in a JSON string, read as text when the message is broken); group 3: the name;
#: ``=`` or ``:`` (not a URL's ``://``) after it.
#: A value that is not quoted or bracketed: up to the next separator.
_BARE_VALUE: Final = re.compile(r"""[^\s"',;&}\]]+""")


#: A superset of every pattern above, for RE2 (linear time, no lookarounds): when it finds
#: nothing in a message's raw bytes, no string of the message needs the precise (and much
#: slower) scan. It runs on JSON as sent, so it also accepts escaped quotes (``\\"``) before
#: the ``=``/``:`` of a secret-named pair inside a string, and not the unescaped ``"key":`` of
#: the JSON structure itself (keys are the key redaction's business). A search only answers
#: whether something matches, so no alternative starts with an optional prefix (a pair's
#: name is matched by its end: ``db_password=`` by ``password=``).
#: Whitespace in text, or written as a JSON escape (``\\t``, ``\\n``, ``\\u0009``): the
#: prefilter reads JSON as sent, where a tab is two characters.
_WS: Final = r"(?:\s|\\[tnrfb]|\\u00[01][0-9A-Fa-f])"
#: A slash, or JSON's escaped slash (``\\/``, which some encoders write for every ``/``).
_SLASH: Final = r"(?:/|\\/)"

PREFILTER: Final = (
    r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}"
    r"|(?i:aws).{0,20}?(?i:key|pwd|pw|pass|token)"
    r"|AccountKey="
    rf"|:{_SLASH}{_SLASH}[^\s:/@\"\\]*:[^\s@/\"]+@"
    r"|[MNO][\w-]{23,25}\.[\w-]{6}\.[\w-]{27}"
    r"|gh[pousr]_[A-Za-z0-9_]{20,}|github_pat_"
    r"|gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-|GR1348941"
    r"|eyJ[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+"
    r"|[0-9a-z]{32}-us[0-9]"
    r"|_authToken="
    r"|sk-[A-Za-z0-9_-]{16,}|[sr]k_(?:live|test)_"
    r"|pypi-Ag"
    r"|SG\.[\w-]{22}\."
    r"|xox[abposr]-|hooks\.slack\.com"
    r"|sq0csp-"
    r"|\d{8,10}:[0-9A-Za-z_-]{35}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|(?:hf|npm|dop_v1|shpat|shpss)_[A-Za-z0-9_-]{20,}"
    rf"|(?i:(?:bearer|basic|digest){_WS}+[A-Za-z0-9._~+/=-]{{8,}})"
    r"|PRIVATE KEY|PuTTY-User-Key-File"
    # A tool whose options carry passwords on a command line (mysql -pX, curl -u u:X).
    rf"|{commands.PREFILTER}"
    # Secret-named pairs: a name with a secret word where is_secret_key looks for it
    # (db_password1, client_secrets, Set-Cookie, X-Api-Key, api_key_id), then "=" or ":"
    # -- or, after the escaped quote of a JSON text inside a string, "," too: ["X-Api-Key",
    # "..."] and {"name": "Authorization", "value": "..."} name their secret that way.
    # (auth: not author, authenticated -- as is_secret_key has it).
    rf"|(?i:(?:(?:passw|passphrase|secret|cookie|credential|jwt|authori[sz]ation)[\w.-]{{0,16}}|"
    rf"auth(?:[^oe\W][\w.-]{{0,15}}|[oe](?:[^rn\W][\w.-]{{0,14}})?)?|pwd|tokens?|"
    rf"keys?(?:[_.-]?id)?|dsn|string)(?:\\\"{_WS}*[=:,]|'?{_WS}*[=:]))"
    rf"|(?i:\bpass(?:\\\"|')?{_WS}*[=:])"
    # A command-line flag with a secret's name and its value after a space (--token abc):
    # a secret word anywhere in the flag's name, as is_secret_key searches it (--dbpassword,
    # --signing-key, --database-url).
    rf"|(?i:-[\w.-]{{0,60}}?(?:pass|secret|cookie|credential|jwt|auth|pwd|tokens?|keys?|dsn|"
    rf"(?:database|db)[_.-]?url|string)[\w.-]{{0,16}}{_WS})"
    # ASCII letters written as \u escapes: rare in honest JSON, a way around this pass.
    r"|\\u00[2-7][0-9A-Fa-f]"
    # Invisible characters and full-width Latin letters, raw or escaped: how a key hides
    # from this pass ("pass\u200bword"); the key classifier sees through them.
    "|[\u00ad\u200b-\u200f\u2060-\u2064\ufeff\uff21-\uff3a\uff41-\uff5a]"
    r"|(?i:\\u(?:00ad|200[b-f]|206[0-4]|feff|ff[2-5][0-9a-f]))"
)


#: detect-secrets plugins whose capture group 1 is the secret (in the others a group is a
#: prefix such as ``ghp``, and the whole match is the secret).
_GROUP_IS_SECRET: Final = frozenset({"BasicAuthDetector", "NpmDetector"})


def _detect_secrets_patterns() -> list[tuple[re.Pattern[str], bool]]:
    import importlib

    patterns: list[tuple[re.Pattern[str], bool]] = []
    for module, name in _DETECT_SECRETS_PLUGINS:
        plugin = getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)
        for pattern in plugin.denylist:
            # AWS's second pattern: the 40-character secret near "aws ... key" is group 1.
            group = name in _GROUP_IS_SECRET or (name == "AWSKeyDetector" and pattern.groups)
            patterns.append((pattern, bool(group)))
    return patterns


@functools.lru_cache(maxsize=4096)
def safe_name(name: str) -> str:
    """A name from outside (a topic: producers may create topics by producing to them) as it
    may be shown: as is, or with the secret in it replaced, for metric labels and dead
    letters. Built-in formats only; cached, names are few."""
    scrubber = default_scrubber()
    return scrubber.scrub(name) if scrubber.may_contain(name) else name


@functools.cache
def default_scrubber() -> SecretScrubber:
    """The scrubber of the built-in formats, built once per process (logs, names)."""
    return SecretScrubber()


def _replace_all(match: re.Match[str]) -> str:
    return REDACTED


def _replace(match: re.Match[str]) -> str:
    """The match with its secret groups (or, without groups, all of it) replaced."""
    groups = [i for i in range(1, (match.re.groups or 0) + 1) if match.group(i)]
    if not groups:
        return REDACTED
    text, start = match.group(0), match.start(0)
    out, last = [], 0
    for index in groups:
        s, e = match.start(index) - start, match.end(index) - start
        if s < last:
            continue  # nested in a group already replaced
        out.append(text[last:s])
        out.append(REDACTED)
        last = e
    out.append(text[last:])
    return "".join(out)


class SecretScrubber:
    """Replaces secrets recognised by format in text. Build once, share (thread-safe)."""

    __slots__ = ("_patterns", "_prefilter", "extra_patterns")

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        self.extra_patterns: tuple[str, ...] = tuple(extra_patterns)
        compiled: list[re.Pattern[str]] = []
        for pattern in self.extra_patterns:
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise ConfigurationError(
                    f"value redaction pattern {pattern!r} is not a valid regex: {exc}"
                ) from exc
        self._patterns: tuple[tuple[re.Pattern[str], bool], ...] = (
            *_builtin_patterns(),
            *((p, True) for p in compiled),
        )
        self._prefilter = _prefilter(self.extra_patterns)

    def may_contain(self, data: bytes | str) -> bool:
        """False when no string in ``data`` (a message as sent, or any text) can hold a
        secret :meth:`scrub` would replace: one linear-time pass. True is a maybe."""
        return self._prefilter is None or self._prefilter.search(data) is not None

    def scrub(self, text: str) -> str:
        """``text`` with every recognised secret replaced; the same object if none."""
        if len(text) < 8:
            return text
        result = text
        for pattern, by_group in self._patterns:
            if pattern.search(result) is not None:
                result = pattern.sub(_replace if by_group else _replace_all, result)
        if commands.has_tool(result):
            result = _replaced(result, _command_spans(result))
        if ("=" in result or ":" in result or "-" in result) and _PAIR_NAME.search(
            result
        ) is not None:
            result = _replaced(result, _pair_spans(result))
        return text if result == text else result

    def scrub_argv(self, items: Sequence[Any]) -> list[Any] | None:
        """A command given as a list of words (``["mysql", "-uroot", "-pX"]``) with the
        passwords its tools' options carry replaced (an item that is no string is an empty
        word, kept as it is); None if there is none."""
        words = [item if type(item) is str else "" for item in items]
        spans: dict[int, list[tuple[int, int, str]]] = {}
        for index, start, end in commands.argv_secret_spans(words, is_secret_key):
            if words[index][start:end] != REDACTED:
                spans.setdefault(index, []).append((start, end, REDACTED))
        if not spans:
            return None
        out = list(items)
        for index, item_spans in spans.items():
            out[index] = _replaced(words[index], item_spans)
        return out

    def scrub_bytes(self, data: bytes) -> bytes:
        """Bytes of unknown encoding: every format is ASCII, so scanning the latin-1 reading
        (one character per byte) finds them in UTF-8 text and in binary data alike."""
        text = data.decode("latin-1")
        scrubbed = self.scrub(text)
        return data if scrubbed is text else scrubbed.encode("latin-1", "replace")


def _replaced(text: str, spans: Iterable[tuple[int, int, str]]) -> str:
    """``text`` with each span ``(start, end, replacement)`` (in order; one starting inside
    the previous is skipped) replaced; the same object when there is none."""
    out: list[str] = []
    last = 0
    for start, end, replacement in spans:
        if start < last:
            continue
        out.append(text[last:start])
        out.append(replacement)
        last = end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _command_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """The passwords that tools' options carry on a command line, not replaced yet."""
    for start, end in commands.secret_spans(text, is_secret_key):
        if text[start:end] != REDACTED:
            yield start, end, REDACTED


def _pair_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """The value of every secret-named pair, and what replaces it."""
    last = 0
    for match in _PAIR_NAME.finditer(text):
        if match.start() < last or not is_secret_key(match.group(3)):
            continue  # inside a value replaced already, or not a secret's name
        start = match.end()
        end, replacement = _pair_value(text, start)
        if end == start or "REDACTED" in text[start:end]:
            continue
        yield start, end, replacement
        last = end


def _pair_value(text: str, start: int) -> tuple[int, str]:
    """Where the value starting at ``start`` ends, and what replaces it: a quoted string to
    its closing quote (escaped quotes skipped; an unclosed one to the end of the line), an
    array or object to its closing bracket (of a cut text: to the end), else a bare token."""
    first = text[start : start + 1]
    if first == "\\" and text[start + 1 : start + 2] in ('"', "'"):
        return _escaped_string_value(text, start)
    if first in ('"', "'"):
        at = start + 1
        while at < len(text):
            char = text[at]
            if char == "\\":
                at += 2
                continue
            if char == first:
                return at + 1, first + REDACTED + first
            if char in "\r\n":
                break
            at += 1
        return min(at, len(text)), first + REDACTED
    if first in ("[", "{"):
        return _closing(text, start), REDACTED
    bare = _BARE_VALUE.match(text, start)
    return (start, "") if bare is None else (bare.end(), REDACTED)


def _escaped_string_value(text: str, start: int) -> tuple[int, str]:
    """A string written with escaped quotes (``\\"1234\\"``: JSON held in a JSON string)
    from ``start`` to its escaped closing quote (an unclosed one to the end of the line)."""
    quote = text[start : start + 2]
    at = start + 2
    while at < len(text):
        if text.startswith("\\\\", at):
            # An escaped backslash; with an escaped quote after it, a quote inside the
            # string (\\\\\\" is the inner string's \\").
            at += 4 if text.startswith(quote, at + 2) else 2
            continue
        if text.startswith(quote, at):
            return at + 2, quote + REDACTED + quote
        if text[at] in "\r\n":
            break
        at += 1
    return min(at, len(text)), quote + REDACTED


def _closing(text: str, start: int) -> int:
    """The end of the array or object at ``start`` (brackets inside strings skipped), or
    of ``text`` when it is cut before that."""
    depth = 0
    quote = ""
    at = start
    while at < len(text):
        char = text[at]
        if quote:
            if char == "\\":
                at += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return at + 1
        at += 1
    return len(text)


def _prefilter(extra: tuple[str, ...]) -> Any:
    """The RE2 prefilter, with the operator's patterns when RE2 can run them; None (scan
    everything precisely) when one of them needs a feature RE2 lacks (lookarounds)."""
    import re2

    try:
        return re2.compile("|".join([PREFILTER, *(f"(?:{p})" for p in extra)]))
    except re2.error:
        return None


@functools.cache
def _builtin_patterns() -> tuple[tuple[re.Pattern[str], bool], ...]:
    # Ours first: the AWS pair pattern must see the key id before it is replaced alone.
    return (*((re.compile(p), True) for p in _OWN_PATTERNS), *_detect_secrets_patterns())
