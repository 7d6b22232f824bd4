"""Settings and arguments that can never work, given to the commands as an operator would:
one line saying what is wrong and a non-zero exit -- never a traceback, never an endless
retry of something that cannot clear, never a password echoed back."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from typing import Any

import pytest

from debug_sink.wire.events import EventKind
from tests import support as s


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one ``debug-sink: error:`` line of a refusal with exit ``code``."""
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("debug-sink: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def bounded(
    args: list[str], env: dict[str, str], seconds: float
) -> subprocess.CompletedProcess[str]:
    """``debug-sink ARGS``, failed if still running after ``seconds`` (retrying forever)."""
    proc = subprocess.Popen(
        [*s.CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(
            f"`debug-sink {' '.join(args)}` still running after {seconds:g} s:\n{err[-1500:]}"
        )
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def sink_env(db_dsn: str, kafka: Any, **extra: str) -> dict[str, str]:
    return {**s.sink_env(s.sink_settings(db_dsn, kafka)), **extra}


class TestTheSinkRefuses:
    def test_a_metrics_port_that_is_taken(self, db_dsn: str, kafka: Any) -> None:
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        try:
            env = sink_env(
                db_dsn,
                kafka,
                DEBUG_SINK_METRICS_HOST="127.0.0.1",
                DEBUG_SINK_METRICS_PORT=str(port),
            )
            line = one_line_error(bounded(["run", "--exit-when-idle"], env, 60))
        finally:
            busy.close()
        assert f"127.0.0.1:{port}" in line

    def test_a_metrics_host_that_does_not_resolve(self, db_dsn: str, kafka: Any) -> None:
        env = sink_env(
            db_dsn,
            kafka,
            DEBUG_SINK_METRICS_HOST="no-such-host.invalid",
            DEBUG_SINK_METRICS_PORT="19999",
        )
        one_line_error(bounded(["run", "--exit-when-idle"], env, 60))

    def test_a_dsn_the_driver_refuses(self, db_dsn: str, kafka: Any) -> None:
        """``sslmode=bogus`` never clears: refused, not waited for as an unreachable server
        (and for ``migrate``, exit 1, not 3 'try later')."""
        env = sink_env(
            db_dsn, kafka, DEBUG_SINK_POSTGRES_DSN=s.as_writer(db_dsn) + "?sslmode=bogus"
        )
        assert "sslmode" in one_line_error(bounded(["run", "--exit-when-idle"], env, 40))
        migrate = s.run_cli("migrate", "status", "--dsn", db_dsn + "?sslmode=bogus", timeout=60)
        assert "sslmode" in one_line_error(migrate)

    @pytest.mark.parametrize("servers", ["127.0.0.1:99999", "", "kafka:x", "[::1"])
    def test_bootstrap_servers_that_are_no_addresses(
        self, db_dsn: str, kafka: Any, servers: str
    ) -> None:
        env = sink_env(db_dsn, kafka, DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS=servers)
        line = one_line_error(bounded(["run", "--exit-when-idle"], env, 40))
        assert "DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS" in line


def test_a_mistyped_flag_does_not_echo_the_dsn_password() -> None:
    secret = "Hunter2-not-for-logs"
    result = s.run_cli("migrate", "up", "--dns", f"postgresql://sink:{secret}@db/x")
    assert result.returncode == 2
    assert "unrecognized arguments: --dns" in result.stderr
    assert secret not in result.stderr + result.stdout


async def test_replay_since_before_1970_plans_every_record(db_dsn: str, kafka: Any) -> None:
    """Every record is after 1969: the plan is the whole log (Kafka refuses a negative time)."""
    await s.create_topics(kafka, partitions=1, kinds=[EventKind.ERROR])
    await s.produce(kafka, [(s.topic(kafka, EventKind.ERROR), s.error(s.uid()))])
    env = s.sink_env(s.sink_settings(db_dsn, kafka))
    result = await asyncio.to_thread(
        s.run_cli,
        "replay",
        "--since",
        "1969-12-31T00:00:00Z",
        "--dry-run",
        "--json",
        env=env,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["events"] == 1


def test_a_server_that_never_answers_is_reported_within_the_connect_timeout() -> None:
    """A PostgreSQL address that accepts connections and never answers (a hung server, a
    firewall dropping the replies): the read commands give up after the 10 s connect
    timeout every other command has, not asyncpg's pool default of 60 s."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    try:
        dsn = f"postgresql://sink:pw-77c1@127.0.0.1:{hung.getsockname()[1]}/x"
        result = bounded(["workflows"], s.cli_env(dsn), 30)
    finally:
        hung.close()
    line = one_line_error(result, code=3)
    assert "cannot reach PostgreSQL" in line
    assert "pw-77c1" not in result.stderr + result.stdout


@pytest.mark.parametrize("command", [["workflows"], ["migrate", "status"], ["run"]])
def test_a_password_with_an_unencoded_question_mark(command: list[str]) -> None:
    """asyncpg read what follows the ``?`` as the query and raised ``ValueError: bad query
    field: 'REST-OF-PASSWORD@host/x'``: a traceback printing most of the password."""
    env = s.cli_env("postgresql://sink:12?Sekr3tX@127.0.0.1:9/x", DEBUG_SINK_METRICS_PORT="0")
    result = bounded(command, env, 30)
    line = one_line_error(result)
    assert "DEBUG_SINK_POSTGRES_DSN" in line
    assert "Sekr3tX" not in result.stderr + result.stdout


def test_a_refused_metrics_url_does_not_echo_its_credentials() -> None:
    env = s.cli_env(
        "postgresql://u@127.0.0.1:9/x",
        DEBUG_SINK_UI_METRICS_URLS='["ftp://admin:UrlSecret77@sink:9464/metrics"]',
    )
    result = bounded(["ui"], env, 30)
    line = one_line_error(result)
    assert "DEBUG_SINK_UI_METRICS_URLS" in line
    assert "UrlSecret77" not in result.stderr + result.stdout
