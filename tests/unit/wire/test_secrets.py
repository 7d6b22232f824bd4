"""Secrets by value and by disguised key are redacted; look-alikes are not
(debug_sink.wire.secrets, debug_sink.wire.redact)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from debug_sink.wire.redact import REDACTED, Redactor
from debug_sink.wire.secrets import SecretScrubber, is_secret_key, normalise_key, safe_name
from tests.secrets_corpus import NOT_SECRETS, SECRET_KEYS, SECRETS, carriers

REDACTOR = Redactor()


def leaked(value: Any) -> list[str]:
    """The names of the corpus secrets still present in ``value``'s JSON."""
    text = orjson.dumps(value).decode() if not isinstance(value, str) else value
    return [name for name, secret in SECRETS.items() if secret in text]


class TestValues:
    """Every secret format is found in free text, nested JSON, JSON inside strings, lists."""

    @pytest.mark.parametrize("name", sorted(carriers()))
    def test_free_text(self, name: str) -> None:
        text, changed = REDACTOR.redact_text(carriers()[name])
        assert changed
        assert leaked(text) == []
        assert REDACTED in text

    @pytest.mark.parametrize("name", sorted(carriers()))
    def test_inside_json_at_any_depth(self, name: str) -> None:
        value = {"tool": {"calls": [{"output": carriers()[name]}]}}
        redacted, changed = REDACTOR.redact(value)
        assert changed
        assert leaked(redacted) == []

    @pytest.mark.parametrize("name", sorted(carriers()))
    def test_json_inside_a_string(self, name: str) -> None:
        """Tool-call arguments arrive as JSON text: redacted as JSON, still JSON."""
        arguments = orjson.dumps({"query": "x", "note": carriers()[name]}).decode()
        redacted, _ = REDACTOR.redact({"arguments": arguments})
        assert leaked(redacted) == []
        assert orjson.loads(redacted["arguments"])["query"] == "x"

    def test_header_lines_and_name_value_pairs(self) -> None:
        value = {
            "headers": [f"Authorization: Bearer {SECRETS['bearer']}", "Accept: json"],
            "env": [{"name": "API_KEY", "value": "plain-looking-value-1"}],
            "params": [{"key": "password", "value": "hunter2"}],
        }
        redacted, _ = REDACTOR.redact(value)
        assert leaked(redacted) == []
        assert redacted["headers"][1] == "Accept: json"
        assert redacted["env"][0] == {"name": "API_KEY", "value": REDACTED}
        assert redacted["params"][0]["value"] == REDACTED

    def test_only_the_secret_is_replaced(self) -> None:
        text, _ = REDACTOR.redact_text(carriers()["url_password"])
        assert text == "connect to postgresql://agent:[REDACTED]@db:5432/app"

    def test_idempotent(self) -> None:
        once, _ = REDACTOR.redact_text(" ".join(carriers().values()))
        twice, changed = REDACTOR.redact_text(once)
        assert (twice, changed) == (once, False)

    def test_extra_value_patterns(self) -> None:
        redactor = Redactor(value_patterns=[r"ACME-[0-9]{6}", r"pin=(\d{4})"])
        text, _ = redactor.redact_text("badge ACME-123456 pin=1234")
        assert text == "badge [REDACTED] pin=[REDACTED]"

    def test_bytes_of_unknown_encoding(self) -> None:
        data = b"\xff\xfe garbage " + SECRETS["github"].encode() + b" \x00 more"
        redacted, changed = REDACTOR.redact_bytes(data)
        assert changed
        assert SECRETS["github"].encode() not in redacted
        assert redacted.startswith(b"\xff\xfe garbage ")


class TestKeys:
    """Keys are normalised before matching: case, separators, width, look-alikes, invisibles."""

    @pytest.mark.parametrize("key", SECRET_KEYS)
    def test_disguised_keys_are_secret(self, key: str) -> None:
        redacted, changed = REDACTOR.redact({key: "plain-value-123"})
        assert changed
        assert redacted == {key: REDACTED}

    @pytest.mark.parametrize(
        ("key", "normal"),
        [
            ("X-Api_Key", "xapikey"),
            ("\uff41\uff50\uff49\uff3f\uff4b\uff45\uff59", "apikey"),
            ("ap\u0456_key", "apikey"),
            ("pass\u200bword", "password"),
        ],
    )
    def test_normalise(self, key: str, normal: str) -> None:
        assert normalise_key(key) == normal

    def test_plural_token_counts_are_kept_but_token_lists_are_not(self) -> None:
        redacted, _ = REDACTOR.redact({"tokens": 1234, "auth_tokens": [SECRETS["github"]]})
        assert redacted == {"tokens": 1234, "auth_tokens": REDACTED}


class TestFalsePositives:
    """Look-alikes -- counts, vocabulary tokens, cursors, hashes, ids, images, prose -- stay."""

    @pytest.mark.parametrize("key", sorted(NOT_SECRETS))
    def test_not_redacted(self, key: str) -> None:
        value = {key: NOT_SECRETS[key]}
        redacted, changed = REDACTOR.redact(value, values=True)
        assert (redacted, changed) == (value, False)
        assert not is_secret_key(key)

    def test_text_with_words_that_sound_secret(self) -> None:
        text = str(NOT_SECRETS["note"])
        assert REDACTOR.redact_text(text) == (text, False)


class TestPrefilter:
    """The linear-time pass says "maybe" for every secret and "no" for ordinary messages."""

    def test_every_carrier_may_contain(self) -> None:
        scrubber = SecretScrubber()
        for name, text in carriers().items():
            assert scrubber.may_contain(orjson.dumps({"m": text})), name

    def test_ordinary_message_does_not(self) -> None:
        message = {k: v for k, v in NOT_SECRETS.items() if k != "note"}
        assert not SecretScrubber().may_contain(orjson.dumps(message))

    def test_escaped_ascii_is_scanned(self) -> None:
        """A producer escaping plain letters (\\u0073k-...) cannot slip past the pass."""
        raw = b'{"m": "\\u0073k-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"}'
        assert SecretScrubber().may_contain(raw)

    @pytest.mark.parametrize(
        "raw",
        [
            b'{"m": "connect postgres:\\/\\/agent:pw7f3a9c@db:5432\\/app"}',
            b'{"m": "retrying with Bearer\\tZm9vYmFyYmF6cXV4OTg3NjU0"}',
            b'{"m": "Bearer\\nZm9vYmFyYmF6cXV4MTExMjIy"}',
            b'{"m": "db_password\\t=\\tdbpw-83jd92k"}',
            b'{"m": "db_password\\u0009=\\u0009dbpw-83jd92k"}',
        ],
        ids=["escaped-slashes", "tab", "newline", "tab-around-equals", "unicode-escaped-tab"],
    )
    def test_json_escapes_are_read_through(self, raw: bytes) -> None:
        """The pass reads JSON as sent: a tab is \\t there, a slash may be \\/."""
        assert SecretScrubber().may_contain(raw)
        assert REDACTOR.redact(orjson.loads(raw))[1]

    @pytest.mark.parametrize(
        "text",
        ["passphrase=x1", "secrets=x1", "cookies=x1", "authorisation=x1", "password1=x1"],
    )
    def test_every_name_the_key_classifier_knows(self, text: str) -> None:
        raw = orjson.dumps({"m": text})
        assert SecretScrubber().may_contain(raw)
        assert REDACTOR.redact(orjson.loads(raw))[0] == {
            "m": text.partition("=")[0] + "=[REDACTED]"
        }

    @pytest.mark.parametrize(
        "inner",
        [
            {"headers": [{"name": "Authorization", "value": "Token nv-4d5f6g7h8j"}]},
            {"headers": [["X-Api-Key", "ti-9k8j7h6g5f"]]},
            {"pass\u200bword": "zw-3e4r5t6y7u"},
            {"\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44": "fw-8i9o0p1a2s"},
        ],
        ids=["name-value", "pair-list", "zero-width-key", "full-width-key"],
    )
    def test_json_text_whose_secret_only_a_name_gives_away(self, inner: Any) -> None:
        message = {"args": orjson.dumps(inner).decode()}
        assert SecretScrubber().may_contain(orjson.dumps(message))
        redacted, changed = REDACTOR.redact(message)
        assert changed
        assert REDACTED in redacted["args"]

    def test_stack_traces_and_counters_do_not_trigger_it(self) -> None:
        for text in ["KeyError: 'x'", "tests passed: 3", "TokenizerError: bad", "author: Ada"]:
            assert not SecretScrubber().may_contain(orjson.dumps({"m": text})), text


class TestPairs:
    """Secret-named pairs in text: every one is found, and its whole value replaced."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("login failed: password=s3cr3t!", "login failed: password=[REDACTED]"),
            ("env: DB_PASSWORD=abc==", "env: DB_PASSWORD=[REDACTED]"),
            ("a: b: token=t0k3n-x", "a: b: token=[REDACTED]"),
            ("user=bob&password=x1&y=1", "user=bob&password=[REDACTED]&y=1"),
            ('password="a\\"b c" rest', 'password="[REDACTED]" rest'),
            ('password="cut off', 'password="[REDACTED]'),
            ('{"password": ["arr-1", "arr-2"], "x": 1', '{"password": [REDACTED], "x": 1'),
            ('{"api_key": {"a": {}, "b": "obj-1"}, "x"', '{"api_key": [REDACTED], "x"'),
            ('{"secret": {"s": "}", "t": "v-1"}}', '{"secret": [REDACTED]}'),
            ('{"token": ["never closed", "v-2"', '{"token": [REDACTED]'),
        ],
    )
    def test_whole_value_replaced(self, text: str, expected: str) -> None:
        scrubbed = SecretScrubber().scrub(text)
        assert scrubbed == expected
        assert SecretScrubber().scrub(scrubbed) == scrubbed  # idempotent

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("mysql --password=Hunter2xyz -h db", "mysql --password=[REDACTED] -h db"),
            ("curl --token=abc123def -s", "curl --token=[REDACTED] -s"),
            ("tool --api-key=KEY123 go", "tool --api-key=[REDACTED] go"),
            ("tool --api-key KEY123 go", "tool --api-key [REDACTED] go"),
            ("gh auth login -token abc123xyz", "gh auth login -token [REDACTED]"),
            (
                "redis-cli -u redis://:pw12345@cache:6379/0",
                "redis-cli -u redis://:[REDACTED]@cache:6379/0",
            ),
        ],
    )
    def test_command_line_flags_and_urls(self, text: str, expected: str) -> None:
        """A command line names its secrets as flags (README: Bash commands are redacted), a
        URL may hold a password without a user name."""
        scrubber = SecretScrubber()
        assert scrubber.may_contain(text)
        assert scrubber.may_contain(orjson.dumps({"command": text}))
        assert scrubber.scrub(text) == expected

    @pytest.mark.parametrize(
        "flag",
        [
            "--dbpassword",
            "--apitoken",
            "--signing-key",
            "--master-key",
            "--encryption-key",
            "--account-key",
            "--database-url",
            "--db-url",
            "--dsn",
            "--connection-string",
        ],
    )
    def test_every_flag_name_the_key_classifier_knows(self, flag: str) -> None:
        """A flag whose value follows a space is redacted whatever secret name it has (the
        key classifier's), not only those whose secret word follows its dash: the
        linear-time pass lets the precise scan see it."""
        assert is_secret_key(flag.lstrip("-"))
        message = {"command": f"tool {flag} Hunter2xyz -v"}
        assert SecretScrubber().may_contain(orjson.dumps(message))
        assert REDACTOR.redact(message)[0] == {"command": f"tool {flag} [REDACTED] -v"}

    def test_flags_of_other_names_are_kept(self) -> None:
        text = "pytest --count 3 --maxfail=2 -k token_tests"
        assert SecretScrubber().scrub(text) is text

    def test_pairs_of_other_names_are_kept(self) -> None:
        text = "retry: attempt=3 of max_attempts=5, url=https://x.example/a?b=c"
        assert SecretScrubber().scrub(text) is text

    def test_broken_json_dead_letter(self) -> None:
        data = b'{"error_message": "x", "password": ["arr-6y5t4r3e2w"], "cut'
        redacted, changed = REDACTOR.redact_bytes(data)
        assert changed
        assert b"arr-6y5t4r3e2w" not in redacted


class TestCommandLines:
    """Passwords that the options of well-known tools carry on a command line, where no
    secret's name appears (debug_sink.wire.commands)."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("mysql -h db -u root -pS3cret9 app", "mysql -h db -u root -p[REDACTED] app"),
            ("mysqldump -uroot -p'Two Words' app", "mysqldump -uroot -p'[REDACTED]' app"),
            ("mariadb-dump -pS3cret9 app", "mariadb-dump -p[REDACTED] app"),
            ("curl -u admin:S3cret9 https://x", "curl -u admin:[REDACTED] https://x"),
            ("curl --user=admin:S3cret9 x", "curl --user=admin:[REDACTED] x"),
            ("curl -sSu 'admin:S3 cret' x", "curl -sSu 'admin:[REDACTED]' x"),
            ("curl -fsSLuadmin:S3cret9 x", "curl -fsSLuadmin:[REDACTED] x"),
            ("mysql -upostgres -pS3cret9", "mysql -upostgres -p[REDACTED]"),
            ("curl -U proxy:S3cret9 x", "curl -U proxy:[REDACTED] x"),
            ("curl -u 'admin:S3 cret' x", "curl -u 'admin:[REDACTED]' x"),
            ("sshpass -p S3cret9 ssh host", "sshpass -p [REDACTED] ssh host"),
            ("sshpass -pS3cret9 ssh host", "sshpass -p[REDACTED] ssh host"),
            ("redis-cli -h cache -a S3cret9 ping", "redis-cli -h cache -a [REDACTED] ping"),
            ("mongosh -u admin -p S3cret9", "mongosh -u admin -p [REDACTED]"),
            ("docker login -u me -p S3cret9 reg.io", "docker login -u me -p [REDACTED] reg.io"),
            (
                "docker -H tcp://d:2375 login -p S3cret9",
                "docker -H tcp://d:2375 login -p [REDACTED]",
            ),
            ("helm registry login -p S3cret9 r.io", "helm registry login -p [REDACTED] r.io"),
            ("htpasswd -b .htpasswd alice S3cret9", "htpasswd -b .htpasswd alice [REDACTED]"),
            ("htpasswd -nb alice S3cret9", "htpasswd -nb alice [REDACTED]"),
            ("htpasswd -C 10 -Bb f alice S3cret9", "htpasswd -C 10 -Bb f alice [REDACTED]"),
            ("smbclient -U corp/bob%S3cret9 //h/s", "smbclient -U corp/bob%[REDACTED] //h/s"),
            ("lftp -u bob,S3cret9 ftp://h", "lftp -u bob,[REDACTED] ftp://h"),
            ("zip -P S3cret9 a.zip f", "zip -P [REDACTED] a.zip f"),
            ("unzip -P S3cret9 a.zip", "unzip -P [REDACTED] a.zip"),
            ("7z a -pS3cret9 a.7z f", "7z a -p[REDACTED] a.7z f"),
            ("openssl enc -aes256 -k S3cret9 -in f", "openssl enc -aes256 -k [REDACTED] -in f"),
            ("sqlcmd -S h -U sa -P S3cret9 -Q x", "sqlcmd -S h -U sa -P [REDACTED] -Q x"),
            (
                "ldapsearch -x -D cn=a -w S3cret9 -b dc=x",
                "ldapsearch -x -D cn=a -w [REDACTED] -b dc=x",
            ),
            ("ssh-keygen -t ed25519 -N S3cret9 -f k", "ssh-keygen -t ed25519 -N [REDACTED] -f k"),
            (
                "nmcli dev wifi connect Home password S3cret9",
                "nmcli dev wifi connect Home password [REDACTED]",
            ),
            (
                "aws configure set aws_secret_access_key S3cret9",
                "aws configure set aws_secret_access_key [REDACTED]",
            ),
            ("aws configure set region eu-west-1", "aws configure set region eu-west-1"),
            ("npm config set _authToken S3cret9", "npm config set _authToken [REDACTED]"),
            ("gh secret set API --body S3cret9", "gh secret set API --body [REDACTED]"),
            (
                "kubectl create secret generic db --from-literal=pw=S3cret9",
                "kubectl create secret generic db --from-literal=pw=[REDACTED]",
            ),
            # The tool inside another command's words, after a path, across a continuation.
            ("sudo /usr/bin/mysql -pS3cret9", "sudo /usr/bin/mysql -p[REDACTED]"),
            ('bash -c "mysql -uroot -pS3cret9"', 'bash -c "mysql -uroot -p[REDACTED]"'),
            ("docker exec -it db mysql -pS3cret9", "docker exec -it db mysql -p[REDACTED]"),
            (
                "sshpass -p S3cret9 ssh h mysql -pS3cret8",
                "sshpass -p [REDACTED] ssh h mysql -p[REDACTED]",
            ),
            ("mysql \\\n  -pS3cret9 app", "mysql \\\n  -p[REDACTED] app"),
            ("mysql.exe -pS3cret9", "mysql.exe -p[REDACTED]"),
            ("cd /app && mysql -pS3cret9; ls -p x", "cd /app && mysql -p[REDACTED]; ls -p x"),
            # Found in review: an API key as curl's user name, clusters of zip's flags,
            # options before aws's secret name, a wrapped command's own options, more tools.
            ("curl -u sk9Key0abcdef: https://x", "curl -u [REDACTED]: https://x"),
            ("zip -rP S3cret9 a.zip d", "zip -rP [REDACTED] a.zip d"),
            ("unzip -oP S3cret9 a.zip", "unzip -oP [REDACTED] a.zip"),
            (
                "aws configure set --profile prod aws_secret_access_key S3cret9",
                "aws configure set --profile prod aws_secret_access_key [REDACTED]",
            ),
            ("sshpass -p S3cret9 ssh -p 2222 h", "sshpass -p [REDACTED] ssh -p 2222 h"),
            ("oc login -u dev -p S3cret9 https://api", "oc login -u dev -p [REDACTED] https://api"),
            ("az login -u me -p S3cret9", "az login -u me -p [REDACTED]"),
            (
                "ipmitool -H bmc -U admin -P S3cret9 power on",
                "ipmitool -H bmc -U admin -P [REDACTED] power on",
            ),
            ("sqlplus scott/S3cret9@orcl @run.sql", "sqlplus scott/[REDACTED]@orcl @run.sql"),
            ("sqlplus -s scott/S3cret9", "sqlplus -s scott/[REDACTED]"),
        ],
    )
    def test_the_password_option_of_a_tool(self, text: str, expected: str) -> None:
        scrubber = SecretScrubber()
        assert scrubber.may_contain(orjson.dumps({"command": text}))
        assert scrubber.scrub(text) == expected
        assert scrubber.scrub(expected) == expected  # idempotent

    @pytest.mark.parametrize(
        "text",
        [
            "ssh -p 2222 host",
            "docker run -p 8080:80 nginx",
            "mkdir -p /tmp/x && cp -a src dst",
            "mysql -p app",  # prompts: the next word is the database
            "curl -u admin https://x",  # prompts for the password
            "zip -r a.zip dir",
            "curl -sSo out.txt -H x:y https://x",  # -o's value, not a cluster with -u
            "curl -sX POST -d u:p https://x",
            "7z a -r a.7z dir",
            "I use mysql -- and curl -- every day",
            "docker login registry.example.com",
            "ls -p | mysql",
            "mysql; -pNotAnOption",
            "mongosh -p --authenticationDatabase admin",  # -p prompts: the next word is an option
            "unrar x -p- a.rar",  # "-": do not ask for a password
            "sqlplus /nolog",
            "sqlplus / as sysdba",
        ],
    )
    def test_other_options_and_prose_are_kept(self, text: str) -> None:
        assert SecretScrubber().scrub(text) is text

    @pytest.mark.parametrize(
        "raw",
        [
            b'{"e": "mysql\\\\\\n  -uroot -pS3cret9 app"}',  # a line continuation
            b'{"e": "mysql\\u0009-pS3cret9 app"}',  # a tab written as \u0009
            b'{"e": "mysql\\t-pS3cret9 app"}',
            b'{"e": "cd /app\\nmysql -pS3cret9 app"}',  # after a newline written \n
            b'{"e": "x\\tcurl -u a:S3cret9 h"}',
            b'{"args": ["/usr/bin/mysql", "-pS3cret9"]}',
        ],
    )
    def test_the_prefilter_passes_a_tool_followed_by_an_escape(self, raw: bytes) -> None:
        """The linear-time pass reads JSON as sent: a tool's name may be followed by a
        JSON escape, and the message must still get the precise scan."""
        assert SecretScrubber().may_contain(raw)
        redacted, _ = REDACTOR.redact_bytes(raw)
        assert b"S3cret9" not in redacted

    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            (["mysql", "-uroot", "-pS3cret9", "db"], ["mysql", "-uroot", "-p[REDACTED]", "db"]),
            (
                ["curl", "-u", "admin:S3cret9", "https://x"],
                ["curl", "-u", "admin:[REDACTED]", "https://x"],
            ),
            (
                ["/usr/bin/sshpass", "-p", "S3cret9", "ssh", "-p", "2222", "h"],
                ["/usr/bin/sshpass", "-p", "[REDACTED]", "ssh", "-p", "2222", "h"],
            ),
            (["redis-cli", "-a", "two words", "ping"], ["redis-cli", "-a", "[REDACTED]", "ping"]),
            (["ssh", "-p", "2222", "host"], ["ssh", "-p", "2222", "host"]),
            (["mysql", 3, "-pS3cret9"], ["mysql", 3, "-p[REDACTED]"]),
            # Each item is one word as it is: no shell reads &, ; or spaces in it.
            (
                ["curl", "https://x/i?page=1&limit=10", "-u", "admin:S3cret9"],
                ["curl", "https://x/i?page=1&limit=10", "-u", "admin:[REDACTED]"],
            ),
            (
                ["mysql", "-e", "DROP DATABASE x; CREATE DATABASE x", "-pS3cret9"],
                ["mysql", "-e", "DROP DATABASE x; CREATE DATABASE x", "-p[REDACTED]"],
            ),
            (
                ["htpasswd", "-b", "/Users/me/My Site/.htpasswd", "alice", "S3cret9"],
                ["htpasswd", "-b", "/Users/me/My Site/.htpasswd", "alice", "[REDACTED]"],
            ),
            (["mysql", "-e", "SELECT a -price FROM t"], ["mysql", "-e", "SELECT a -price FROM t"]),
            (
                ["sshpass", "-p", None, "ssh", "-p", "2222"],
                ["sshpass", "-p", None, "ssh", "-p", "2222"],
            ),
        ],
    )
    def test_a_command_given_as_a_list_of_words(self, argv: list[Any], expected: list[Any]) -> None:
        """subprocess arguments and MCP server configurations give a command one word per
        string: the word after an option is its value there too."""
        raw = orjson.dumps({"server": {"command": argv[0], "args": argv}})
        assert SecretScrubber().may_contain(raw) or argv == expected
        redacted, _ = REDACTOR.redact_bytes(raw)
        assert orjson.loads(redacted)["server"]["args"] == expected
        assert REDACTOR.redact({"args": argv})[0] == {"args": expected}

    @pytest.mark.parametrize("order", ["command first", "args first"])
    def test_a_command_and_its_args_given_apart(self, order: str) -> None:
        """MCP and process configurations name the program in "command" and give its words
        in "args"."""
        server = {"command": "mysql", "args": ["-uroot", "-pS3cret9", "db"], "env": {}}
        if order == "args first":
            server = {"args": server["args"], "command": "mysql"}
        raw = orjson.dumps({"mcpServers": {"db": server}})
        assert SecretScrubber().may_contain(raw)
        redacted, _ = REDACTOR.redact_bytes(raw)
        assert orjson.loads(redacted)["mcpServers"]["db"]["args"] == [
            "-uroot",
            "-p[REDACTED]",
            "db",
        ]

    @pytest.mark.parametrize(
        "text",
        [
            "redis-cli -a -S3cret9 ping",  # getopt gives a required value any next word
            "sshpass -p -S3cret9 ssh host",
            "docker login -u me -p -S3cret9",
        ],
    )
    def test_a_password_that_starts_with_a_dash(self, text: str) -> None:
        assert "S3cret9" not in SecretScrubber().scrub(text)

    def test_sqlplus_running_a_script_is_kept(self) -> None:
        for text in ("sqlplus @scripts/setup.sql", "sqlplus -s @dir/x.sql"):
            assert SecretScrubber().scrub(text) is text

    @pytest.mark.parametrize(
        "before", ["\\u00a0", "\\u3000", "\\uff1a", "\\u2028", "\\b", "\\f", "\\u000a"]
    )
    def test_the_prefilter_passes_a_tool_after_any_escaped_character(self, before: str) -> None:
        """Python's json.dumps writes every non-ASCII character as a \\u escape: a prompt in
        Chinese with full-width punctuation puts one right before the tool's name."""
        raw = ('{"cmd": "' + before + 'mysql -uroot -pS3cret9"}').encode()
        assert SecretScrubber().may_contain(raw)
        redacted, _ = REDACTOR.redact_bytes(raw)
        assert b"S3cret9" not in redacted

    def test_many_commands_in_one_text(self) -> None:
        """Every command of a long script is walked (each word read a bounded number of
        times), and none of its passwords is left."""
        text = "\n".join(
            f"mysql -u u{i} -pPw{i:05d}x db{i}; curl -u a:Cu{i:05d}y h" for i in range(5000)
        )
        out = SecretScrubber().scrub(text)
        assert "Pw0" not in out
        assert "Cu0" not in out
        assert out.count(REDACTED) == 10_000

    def test_a_word_list_longer_than_a_walk(self) -> None:
        """A walk reads at most MAX_WORDS words; the tool named again later starts another."""
        filler = " -v" * 100
        text = f"mysql{filler} -pLost1234 ; mysql{filler[:30]} -pFound123"
        out = SecretScrubber().scrub(text)
        assert "Found123" not in out


class TestSafeName:
    def test_a_name_with_a_secret_in_it(self) -> None:
        assert safe_name("debug.sk-proj-Zq7Wx3Rt9Yp2Lm5Nb8Vc4Kd6") == "debug.[REDACTED]"

    def test_ordinary_names_unchanged(self) -> None:
        for name in ["debug.error_events", "debug.workflow_steps", "otel.traces"]:
            assert safe_name(name) == name
