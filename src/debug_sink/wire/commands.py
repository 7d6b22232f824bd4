"""Credentials on command lines, where the options of well-known tools carry them.

``mysql -uroot -pS3cret``, ``curl -u admin:S3cret``, ``sshpass -p S3cret ssh host``,
``redis-cli -a S3cret``, ``docker login -p S3cret``, ``htpasswd -b file user S3cret``: agents
run such commands (a coding agent's shell tool, a hook's ``tool_input.command``), and no
secret's *name* appears in them, so neither the secret-named pairs nor the token formats of
:mod:`debug_sink.wire.secrets` find them. Here each such tool names the options whose value is
a secret, and :func:`secret_spans` walks the words after the tool's name to find them;
:func:`argv_secret_spans` does the same for a command given as a list of words
(``["mysql", "-pX"]``: subprocess arguments, MCP server configurations).

Only what a tool documents is taken: ``mysql -p`` followed by a space prompts (the next word is
the database), so only an attached value (``-pS3cret``) is a password; ``-p`` of ``docker run``,
``ssh`` or ``mkdir`` is not one (``docker`` counts only after ``login``). A tool's name found in
the words of another (``sshpass -p X mysql -pY``, ``sudo mysql ...``, ``docker exec c mysql
...``) switches the walk to its options. The walk ends at a command separator (``;``, ``|``,
``&``, a newline, a parenthesis, a backtick) or after :data:`MAX_WORDS` words, and the next
tool is searched from there: every character is read a bounded number of times.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "MAX_WORDS",
    "PREFILTER",
    "argv_has_tool",
    "argv_secret_spans",
    "has_tool",
    "secret_spans",
]

#: Words read after a tool's name before the walk gives up on that command.
MAX_WORDS: Final = 64

#: How an option carries its secret.
VALUE: Final = "value"
"""The option's value, attached (``-pX``, ``--opt=X``) or the next word (``-p X``)."""
OPTIONAL: Final = "optional"
"""A value that may be left out (``mongosh -p`` prompts): a next word that is an option is
not it. (Other options take the next word whatever it starts with, as getopt does.)"""
ATTACHED: Final = "attached"
"""Only an attached value: with a space after it, the option prompts (``mysql -p``)."""
# Any other string: the value is ``user<sep>password`` and what follows the first <sep> is
# the secret (``curl -u user:pass``, ``smbclient -U user%pass``, ``lftp -u user,pass``).
PAIR: Final = "="
"""The value is ``name=secret`` (``kubectl create secret --from-literal=name=secret``)."""


@dataclass(frozen=True)
class Tool:
    """The options of one tool (or subcommand) whose value is a secret."""

    options: Mapping[str, str] = field(default_factory=dict)
    subcommands: Mapping[str, Tool] = field(default_factory=dict)
    flags: str = ""
    """Short options without a value, which may come first in a cluster (``curl -sSu x``)."""
    takes_value: frozenset[str] = frozenset()
    """Other options followed by a value word (skipped when positional words are counted)."""
    secret_positional: Callable[[str, list[str], Callable[[str], bool]], bool] | None = None
    """Whether the next positional word is a secret, given the short flags seen, the
    positional words before it and the secret-name classifier."""
    login: bool = False
    """The first positional word may be ``user/password[@database]`` (``sqlplus``)."""
    wraps: bool = False
    """The first positional word is another command: this tool's options end there
    (``sshpass -p X ssh -p 2222 host``: ssh's ``-p`` is a port)."""


def _htpasswd(flags: str, before: list[str], _: Callable[[str], bool]) -> bool:
    # -b takes the password from the command line: htpasswd -b[c] file user password, or
    # htpasswd -nb user password (no file with -n).
    return "b" in flags and len(before) == (1 if "n" in flags else 2)


def _config_set(flags: str, before: list[str], secret_name: Callable[[str], bool]) -> bool:
    # aws configure set aws_secret_access_key VALUE; npm/yarn config set _authToken VALUE.
    return len(before) == 1 and secret_name(before[0])


_NO_OPTIONS: Final = Tool()
_MYSQL: Final = Tool({"-p": ATTACHED})
_LOGIN: Final = Tool({"-p": VALUE})
_CONTAINERS: Final = Tool(
    subcommands={"login": _LOGIN, "registry": Tool(subcommands={"login": _LOGIN})}
)
_PROFILE: Final = frozenset({"--profile", "--region", "--location"})
_CONFIG: Final = Tool(
    subcommands={"set": Tool(secret_positional=_config_set, takes_value=_PROFILE)},
    takes_value=_PROFILE,
)
_LDAP: Final = Tool({"-w": VALUE})

TOOLS: Final[Mapping[str, Tool]] = {
    "curl": Tool(
        {"-u": ":", "--user": ":", "-U": ":", "--proxy-user": ":"},
        flags="0123456#:afgGiIjJkLlnNOqRsSvZ",
    ),
    "lftp": Tool({"-u": ","}),
    "smbclient": Tool({"-U": "%", "--user": "%"}),
    "rpcclient": Tool({"-U": "%", "--user": "%"}),
    "smbcacls": Tool({"-U": "%", "--user": "%"}),
    "smbget": Tool({"-U": "%", "--user": "%"}),
    "sshpass": Tool({"-p": VALUE}, wraps=True),
    "ipmitool": Tool({"-P": VALUE}),
    "sqlplus": Tool(login=True),
    "oc": Tool(subcommands={"login": _LOGIN}),
    "az": Tool(subcommands={"login": _LOGIN}),
    "redis-cli": Tool({"-a": VALUE}),
    "valkey-cli": Tool({"-a": VALUE}),
    "keydb-cli": Tool({"-a": VALUE}),
    **dict.fromkeys(
        (
            "mysql",
            "mysqldump",
            "mysqladmin",
            "mysqlimport",
            "mysqlshow",
            "mysqlcheck",
            "mysqlpump",
            "mysqlbinlog",
            "mysqlslap",
            "mysqlsh",
            "mariadb",
            "mariadb-dump",
            "mariadb-admin",
            "mariadb-import",
            "mariadb-show",
            "mariadb-check",
            "mariadb-binlog",
            "mariadb-slap",
        ),
        _MYSQL,
    ),
    **dict.fromkeys(
        (
            "mongo",
            "mongosh",
            "mongodump",
            "mongorestore",
            "mongoexport",
            "mongoimport",
            "mongostat",
            "mongotop",
            "mongofiles",
        ),
        Tool({"-p": OPTIONAL}),
    ),
    **dict.fromkeys(
        ("docker", "podman", "nerdctl", "buildah", "skopeo", "helm", "oras", "crane"),
        _CONTAINERS,
    ),
    "htpasswd": Tool(takes_value=frozenset({"-C", "-r"}), secret_positional=_htpasswd),
    "zip": Tool({"-P": VALUE, "--password": VALUE}, flags="0123456789ADFJKLRSTXcdefgjklmoqruvwyz"),
    "unzip": Tool({"-P": VALUE}, flags="aAbBcCfFhjKlLMnoqsTuUvVWXz"),
    "zipcloak": Tool({"-P": VALUE}),
    **dict.fromkeys(("7z", "7za", "7zr", "rar", "unrar"), Tool({"-p": ATTACHED})),
    "openssl": Tool({"-k": VALUE}),
    **dict.fromkeys(("sqlcmd", "bcp", "osql"), Tool({"-P": VALUE})),
    **dict.fromkeys(
        (
            "ldapsearch",
            "ldapadd",
            "ldapmodify",
            "ldapdelete",
            "ldapwhoami",
            "ldapcompare",
            "ldapmodrdn",
            "ldapexop",
        ),
        _LDAP,
    ),
    "ldappasswd": Tool({"-w": VALUE, "-s": VALUE, "-a": VALUE}),
    **dict.fromkeys(
        ("mosquitto_pub", "mosquitto_sub", "mosquitto_rr"), Tool({"-P": VALUE, "--pw": VALUE})
    ),
    "ssh-keygen": Tool({"-N": VALUE, "-P": VALUE}),
    "nmcli": Tool(
        {"password": VALUE, "wifi-sec.psk": VALUE, "802-11-wireless-security.psk": VALUE}
    ),
    "aws": Tool(subcommands={"configure": _CONFIG}, takes_value=frozenset({"--profile"})),
    "npm": Tool(subcommands={"config": _CONFIG}),
    "yarn": Tool(subcommands={"config": _CONFIG}),
    "pnpm": Tool(subcommands={"config": _CONFIG}),
    "gh": Tool(
        subcommands={"secret": Tool(subcommands={"set": Tool({"-b": VALUE, "--body": VALUE})})}
    ),
    "kubectl": Tool(
        subcommands={
            "create": Tool(subcommands={"secret": Tool({"--from-literal": PAIR})}),
        }
    ),
}

_NAMES: Final = "|".join(re.escape(name) for name in sorted(TOOLS, key=len, reverse=True))
#: A tool's name as a command word: after a start, a space, a quote, a path's slash or a
#: separator; ``.exe`` allowed; a space after it (a tool run without options has nothing).
_TOOL: Final = re.compile(rf"(?<![\w.@-])({_NAMES})(?:\.exe)?(?=[ \t]|\\\r?\n)")
#: The blanks between two words (a line continuation included), then one word: unquoted
#: characters, backslash escapes and quoted strings, up to a blank or a separator.
_WORD: Final = re.compile(r"""(?:[ \t]|\\\r?\n)+((?:[^\s;|&()`"'\\]|\\.|"[^"\n]*"|'[^'\n]*')+)""")

#: For the RE2 prefilter of :mod:`debug_sink.wire.secrets` (which reads JSON as sent): a
#: tool's name, then a space, a tab or a backslash (a tab, a newline or a line continuation
#: as JSON writes them), or the end of an array's string (``["mysql", "-pX"]``); not
#: inside a longer word (``high``, ``my-gh``), as the precise scan has it -- but after a
#: character written as a JSON escape (``\\nmysql``, ``\\u3000mysql``), which ends in a
#: letter or a digit. The
#: tools whose secrets come only after ``login`` (docker, oc, az, ...) are found by it.
PREFILTER: Final = (
    r"(?:^|[^\w.@-]|\\[bfnrt]|\\u[0-9A-Fa-f]{4})(?:"
    + "|".join(
        re.escape(name)
        for name in sorted(TOOLS, key=len, reverse=True)
        if set(TOOLS[name].subcommands) - {"login", "registry"}
        or TOOLS[name].options
        or TOOLS[name].secret_positional
        or TOOLS[name].login
    )
    + r'|login)(?:\.exe)?(?:[ \t\\]|"\s*[,}\]])'
)


def argv_has_tool(items: Sequence[object]) -> bool:
    """Whether a list of strings is a command's words naming one of the tools
    (``["mysql", "-uroot", "-pX"]``, as subprocess and MCP configurations write them)."""
    return any(
        type(item) is str and item.rsplit("/", 1)[-1].removesuffix(".exe") in TOOLS
        for item in items
    )


def argv_secret_spans(
    items: Sequence[str], secret_name: Callable[[str], bool]
) -> Iterator[tuple[int, int, int]]:
    """The secrets in a command's words given one per item: ``(item, start, end)``. Each
    item is one word as it is, spaces, quotes and ``&`` included (no shell reads it)."""
    starts: list[int] = []
    at = 0
    for item in items:
        starts.append(at)
        at += len(item) + 1
    line = " ".join(items)  # only for positions: the words are the items
    words = ((item, start, start + len(item)) for item, start in zip(items, starts, strict=True))
    index = 0
    for start, end in _walk(line, words, None, secret_name):
        while index + 1 < len(starts) and starts[index + 1] <= start:
            index += 1
        yield index, start - starts[index], end - starts[index]


def has_tool(text: str) -> bool:
    """Whether ``text`` names one of the tools (then :func:`secret_spans` is worth a walk)."""
    return _TOOL.search(text) is not None


def _unquoted(start: int, end: int, text: str) -> tuple[int, int]:
    """The span inside a word's quotes, when the whole word is one quoted string."""
    if end - start >= 2 and text[start] in "\"'" and text[end - 1] == text[start]:
        return start + 1, end - 1
    return start, end


def _value_span(how: str, start: int, end: int, text: str) -> tuple[int, int] | None:
    """The secret part of an option's value ``text[start:end]``."""
    start, end = _unquoted(start, end, text)
    if how in (VALUE, ATTACHED, OPTIONAL):
        # "-" is no password: unrar -p- means "do not ask for one".
        return (start, end) if end > start and text[start:end] != "-" else None
    at = text.find(how, start, end)  # user<sep>password, name=secret
    if at < 0:
        return None
    if at == end - 1:
        # curl -u KEY: -- an API key as the user name, with an empty password.
        return (start, at) if how == ":" and at > start else None
    return at + 1, end


def _login_span(start: int, end: int, text: str) -> tuple[int, int] | None:
    """The password of ``user/password[@database]``."""
    start, end = _unquoted(start, end, text)
    slash = text.find("/", start, end)
    if slash <= start or text[start] == "@":  # sqlplus @dir/script.sql runs a script
        return None
    at = text.find("@", slash, end)
    stop = end if at < 0 else at
    return (slash + 1, stop) if stop > slash + 1 else None


def _in_cluster(tool: Tool, token: str) -> tuple[str, int] | None:
    """In a cluster of short options (``-pX``, ``-sSu``): the secret option's way and where
    its attached value starts (the token's length: none, the next word is the value)."""
    for at in range(1, len(token)):
        how = tool.options.get("-" + token[at])
        if how is not None:
            return how, at + 1
        if token[at] not in tool.flags:
            return None
    return None


def secret_spans(text: str, secret_name: Callable[[str], bool]) -> Iterator[tuple[int, int]]:
    """The spans of ``text`` that are secrets given by a tool's options, in order."""
    pos = 0
    while (found := _TOOL.search(text, pos)) is not None:
        words = _TextWords(text, found.end())
        yield from _walk(text, iter(words), TOOLS[found.group(1)], secret_name)
        pos = words.pos


class _TextWords:
    """The words of one command in text from ``pos``: to a separator, at most
    :data:`MAX_WORDS`; ``pos`` is where the last one read ends."""

    def __init__(self, text: str, pos: int) -> None:
        self.text, self.pos = text, pos

    def __iter__(self) -> Iterator[tuple[str, int, int]]:
        for _ in range(MAX_WORDS):
            word = _WORD.match(self.text, self.pos)
            if word is None:
                return
            self.pos = word.end()
            yield word.group(1), word.start(1), word.end(1)


def _walk(
    text: str,
    words: Iterator[tuple[str, int, int]],
    tool: Tool | None,
    secret_name: Callable[[str], bool],
) -> Iterator[tuple[int, int]]:
    """The secret spans among one command's ``words`` (each with its span in ``text``).
    ``tool`` None: the first word names it (a command given as a list of words)."""
    tool = tool or _NO_OPTIONS
    pending: str | None = None  # an option whose value is the next word
    skip = False  # the next word is another option's value
    flags = ""
    positionals: list[str] = []
    for token, start, end in words:
        if pending is not None:
            how, pending = pending, None
            if how != OPTIONAL or not (token.startswith("-") and len(token) > 1):
                span = _value_span(how, start, end, text)
                if span is not None:
                    yield span
                continue
        if skip:
            skip = False
            continue
        name = token.rsplit("/", 1)[-1].removesuffix(".exe")
        if name in TOOLS:
            tool, pending, flags, positionals = TOOLS[name], None, "", []
            continue
        if name in tool.subcommands:  # also after a global option's value: docker -H x login
            tool = tool.subcommands[name]
            continue
        if token in tool.options:
            if tool.options[token] != ATTACHED:
                pending = tool.options[token]
            continue
        if token.startswith("--") and "=" in token:
            option, _, _ = token.partition("=")
            if option in tool.options:
                span = _value_span(tool.options[option], start + len(option) + 1, end, text)
                if span is not None:
                    yield span
            continue
        if token.startswith("-") and len(token) > 2 and not token.startswith("--"):
            found = _in_cluster(tool, token)
            if found is not None:
                how, at = found
                if at < len(token):
                    span = _value_span(how, start + at, end, text)
                    if span is not None:
                        yield span
                elif how != ATTACHED:
                    pending = how
                continue
        if token.startswith("-"):
            if token in tool.takes_value:
                skip = True
            elif not token.startswith("--"):
                flags += token[1:]
            continue
        if tool.secret_positional is not None and tool.secret_positional(
            flags, positionals, secret_name
        ):
            yield _unquoted(start, end, text)
        elif tool.login and not positionals:
            span = _login_span(start, end, text)
            if span is not None:
                yield span
        if tool.wraps:
            tool, flags, positionals = _NO_OPTIONS, "", []
            continue
        positionals.append(token)
