"""The image and the compose file, checked for real where a Docker engine exists (opt-in).

``DEBUG_SINK_TEST_DOCKER=1 ./scripts/test -m docker`` (skipped, with the reason, otherwise):

- the image builds (``docker build --network host``, base image from
  ``DEBUG_SINK_TEST_PYTHON_IMAGE``: where no registry is reachable, a locally built one --
  see README "Docker and compose");
- from the image, against the suite's PostgreSQL and broker (host network): ``migrate up`` on
  an empty database, ``migrate grant``, then ``run`` as the writer role; the container's own
  HEALTHCHECK reports healthy; events sent to the topics become rows; ``docker stop`` sends
  SIGTERM and the container exits 0 after committing;
- ``docker compose config`` accepts docker-compose.yml with every profile, and refuses it
  without the passwords.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from debug_sink.dev.embedded import free_port
from debug_sink.wire.events import EventKind
from tests import support as s

ROOT = Path(__file__).resolve().parents[2]
ENV_DOCKER = "DEBUG_SINK_TEST_DOCKER"
ENV_BASE = "DEBUG_SINK_TEST_PYTHON_IMAGE"
ENV_COMPOSE = "DEBUG_SINK_TEST_COMPOSE"

pytestmark = [
    pytest.mark.docker,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        os.environ.get(ENV_DOCKER) != "1",
        reason=f"opt-in: {ENV_DOCKER}=1 runs the image and compose checks (needs a Docker engine)",
    ),
]


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.returncode}\n{result.stderr}")
    return result.stdout.strip()


@pytest.fixture(scope="module")
def engine() -> None:
    if shutil.which("docker") is None:
        pytest.fail(f"{ENV_DOCKER}=1 but there is no docker command")
    result = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{ENV_DOCKER}=1 but the Docker engine is not reachable: {result.stderr}")


@pytest.fixture(scope="module")
def image(engine: None) -> str:
    """The project's image, built from the working tree."""
    tag = f"debug-sink:test-{uuid.uuid4().hex[:8]}"
    base = os.environ.get(ENV_BASE, "python:3.11.13-slim-bookworm")
    docker(
        "build",
        "--network",
        "host",
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        "--tag",
        tag,
        str(ROOT),
        timeout=900,
    )
    yield tag
    docker("image", "rm", "--force", tag, check=False)


def run_once(image: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    flags = [f"--env={k}={v}" for k, v in env.items()]
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "host", *flags, image, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_migrate_run_healthy_and_sigterm(
    image: str, template_db: str, empty_db_dsn: str, kafka: Any
) -> None:
    """``template_db``: the suite's writer and reader login roles exist (cluster-wide)."""
    owner = {"DEBUG_SINK_POSTGRES_DSN": empty_db_dsn}
    migrated = run_once(image, "migrate", "up", env=owner)
    assert migrated.returncode == 0, migrated.stderr
    granted = run_once(
        image, "migrate", "grant", "--writer", s.WRITER_ROLE, "--reader", s.READER_ROLE, env=owner
    )
    assert granted.returncode == 0, granted.stderr

    await s.create_topics(kafka)
    port = free_port()
    settings = s.sink_settings(empty_db_dsn, kafka, metrics_port=port)
    env = {k: v for k, v in s.sink_env(settings).items() if k.startswith("DEBUG_SINK_")}
    env["DEBUG_SINK_METRICS_HOST"] = "127.0.0.1"
    name = f"debug-sink-test-{uuid.uuid4().hex[:8]}"
    docker("run", "--detach", "--name", name, "--network", "host",
           *(f"--env={k}={v}" for k, v in env.items()), image)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        health = ""
        while time.monotonic() < deadline:
            health = docker("inspect", "--format", "{{.State.Health.Status}}", name)
            if health == "healthy":
                break
            assert docker("inspect", "--format", "{{.State.Running}}", name) == "true", docker(
                "logs", name, check=False
            )
            time.sleep(1)
        assert health == "healthy", docker("logs", name, check=False)

        corr = s.uid()
        await s.produce(
            kafka,
            [
                (s.topic(kafka, EventKind.ERROR), s.error(corr)),
                (s.topic(kafka, EventKind.SUCCESS), s.success(corr)),
                (s.topic(kafka, EventKind.HOOK), s.hook(corr)),
            ],
        )

        async def landed() -> bool:
            conn = await asyncpg.connect(s.as_reader(empty_db_dsn))
            try:
                return bool(
                    await conn.fetchval(
                        "SELECT count(*) FROM debug_error_events WHERE correlation_id = $1",
                        uuid.UUID(corr),
                    )
                    and await conn.fetchval(
                        "SELECT count(*) FROM hook_events WHERE correlation_id = $1",
                        uuid.UUID(corr),
                    )
                )
            finally:
                await conn.close()

        await s.eventually(landed, timeout=60, interval=0.5, what="rows written by the image")

        docker("stop", "--time", "60", name, timeout=120)  # SIGTERM (the image's STOPSIGNAL)
        assert docker("inspect", "--format", "{{.State.ExitCode}}", name) == "0"
        logs = subprocess.run(
            ["docker", "logs", name], capture_output=True, text=True, timeout=60, check=False
        )
        assert '"event": "sink_stopped"' in logs.stdout + logs.stderr
    finally:
        docker("rm", "--force", name, check=False)


def compose_command() -> list[str] | None:
    """Compose v2: ``$DEBUG_SINK_TEST_COMPOSE``, the docker CLI plugin, or docker-compose v2."""
    if os.environ.get(ENV_COMPOSE):
        return os.environ[ENV_COMPOSE].split()
    for command in (["docker", "compose"], ["docker-compose"]):
        try:
            version = subprocess.run(
                [*command, "version"], capture_output=True, text=True, timeout=30, check=False
            )
        except FileNotFoundError:
            continue
        if version.returncode == 0 and "v2." in version.stdout:
            return command
    return None


def test_compose_config(engine: None, tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip(f"no Compose v2 here (docker compose plugin, or {ENV_COMPOSE})")
    example = (ROOT / ".env.example").read_text()
    env_file = tmp_path / ".env"
    env_file.write_text(
        "\n".join(
            line + "not-a-real-password" if line.endswith("_PASSWORD=") else line
            for line in example.splitlines()
        )
    )
    base = [*command, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml")]
    for profiles in ([], ["--profile", "demo", "--profile", "monitoring", "--profile", "ui"]):
        result = subprocess.run(
            [*base, "--env-file", str(env_file), *profiles, "config", "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    empty = tmp_path / "empty.env"
    empty.write_text(example)
    refused = subprocess.run(
        [*base, "--env-file", str(empty), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert re.search(r"required variable \w+_PASSWORD is missing a value", refused.stderr)
