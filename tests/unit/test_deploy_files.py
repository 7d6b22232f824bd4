"""The Dockerfile, docker-compose.yml and the monitoring files agree with the package, without
a Docker engine.

What these tests cannot show: that the images build and the stack comes up (the opt-in
tests/docker does that where an engine exists). They show that everything the files name
exists: settings, commands, the console script, the health endpoint and its port, the service
dependencies and their health checks, the volumes that keep data, the listener for agents
outside compose, .env.example, Prometheus's targets and Grafana's provisioning; and they run
the image's HEALTHCHECK command against the sink's real HTTP server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from debug_sink.cli.app import make_parser
from debug_sink.dev.embedded import PG_MAJOR
from debug_sink.metrics import HttpServer, Metrics
from debug_sink.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = Settings.model_fields
DEFAULT_METRICS_PORT = SETTINGS["metrics_port"].default


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines, current = [], ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        current += raw.rstrip("\\").strip() + " " if raw.endswith("\\") else raw.strip()
        if not raw.endswith("\\"):
            if current.strip():
                lines.append(current.strip())
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def cli_accepts(argv: list[str]) -> None:
    """Parse ``argv`` with the real CLI parser (the command exists, the flags are valid)."""
    make_parser().parse_args(argv)


class TestCompose:
    """docker-compose.yml parses and everything it names exists."""

    def test_services_and_images(self) -> None:
        services = compose()["services"]
        assert {"kafka", "postgres", "migrate", "sink", "demo"} <= set(services)
        # the major of the dev mode and the tests (embedded PostgreSQL)
        assert services["postgres"]["image"] == f"postgres:{PG_MAJOR}"
        assert services["kafka"]["image"].startswith("apache/kafka:")
        assert not any("zookeeper" in name for name in services), "KRaft, no ZooKeeper"
        kafka_env = environment(services["kafka"])
        assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        assert services["demo"]["profiles"] == ["demo"], "the demo is optional"
        for name in ("prometheus", "grafana"):
            assert services[name]["profiles"] == ["monitoring"], "the default stack stays small"

    def test_every_debug_sink_variable_is_a_real_setting(self) -> None:
        used = {
            (name, key)
            for name, service in compose()["services"].items()
            for key in environment(service)
            if key.startswith(ENV_PREFIX)
        }
        assert used
        unknown = {
            (name, key) for name, key in used if key[len(ENV_PREFIX) :].lower() not in SETTINGS
        }
        assert unknown == set()

    def test_values_are_valid_settings(self) -> None:
        """The environment of every debug-sink service builds a Settings (password aside)."""
        for name in ("migrate", "sink", "demo"):
            env = environment(compose()["services"][name])
            values = {
                k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)
            }
            Settings(**values)  # raises on an invalid value

    def test_connection_targets_are_the_compose_services(self) -> None:
        services = compose()["services"]
        kafka_env = environment(services["kafka"])
        advertised = listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])["PLAINTEXT"]
        for name in ("migrate", "sink", "demo"):
            env = environment(services[name])
            assert env["DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS"] == advertised, name
        pg_env = environment(services["postgres"])
        roles = (ROOT / "deploy" / "postgres-init" / "10-roles.sh").read_text()
        for name, user in (
            ("migrate", pg_env["POSTGRES_USER"]),
            ("grants", pg_env["POSTGRES_USER"]),
            ("sink", "debug_sink_writer"),
        ):
            dsn = environment(services[name])["DEBUG_SINK_POSTGRES_DSN"]
            assert re.fullmatch(
                rf"postgresql://{user}@postgres:5432/{pg_env['POSTGRES_DB']}", dsn
            ), dsn
        # The sink's login role is created by the init script and granted by `grants`.
        assert "CREATE ROLE debug_sink_writer LOGIN" in roles
        grants = services["grants"]["command"]
        assert grants[:2] == ["migrate", "grant"]
        assert grants[grants.index("--writer") + 1] == "debug_sink_writer"

    def test_no_password_is_committed(self) -> None:
        """Passwords come from a required variable (spec defect 17: never a default)."""
        text = (ROOT / "docker-compose.yml").read_text()
        for name, service in compose()["services"].items():
            for key, value in environment(service).items():
                if "PASSWORD" in key:
                    assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), (name, key, value)
        assert not re.search(r"postgresql://[^@\s]*:[^@\s]*@", text), "no password in a DSN"

    def test_start_order_is_enforced_by_health(self) -> None:
        services = compose()["services"]
        sink = services["sink"]
        assert sink["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert sink["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert sink["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
        for name, service in services.items():
            for target, rule in (service.get("depends_on") or {}).items():
                assert target in services, (name, target)
                if rule["condition"] == "service_healthy":
                    assert "healthcheck" in services[target], f"{name} waits on {target}"
                if rule["condition"] == "service_completed_successfully":
                    assert services[target].get("restart") == "no", f"{target} is one-shot"

    def test_two_sink_replicas_share_one_group(self) -> None:
        sink = compose()["services"]["sink"]
        assert sink["deploy"]["replicas"] == 2
        assert "container_name" not in sink, "replicas need generated names"
        assert environment(sink)["DEBUG_SINK_GROUP_ID"]
        stop = sink["stop_grace_period"]
        assert int(stop.rstrip("s")) > float(environment(sink)["DEBUG_SINK_SHUTDOWN_TIMEOUT"])

    def test_commands_exist(self) -> None:
        services = compose()["services"]
        cli_accepts(services["migrate"]["command"])
        cli_accepts(services["grants"]["command"])
        cli_accepts(services["sink"]["command"])
        assert services["demo"]["entrypoint"] == ["debug-sink", "demo"]
        from debug_sink.cli import main

        with pytest.raises(SystemExit) as exit_info:
            main(["demo", *services["demo"]["command"], "--help"])
        assert exit_info.value.code == 0

    def test_metrics_port_and_health_path_agree(self) -> None:
        sink = compose()["services"]["sink"]
        port = int(environment(sink)["DEBUG_SINK_METRICS_PORT"])
        assert port == DEFAULT_METRICS_PORT
        assert "ports" not in sink, "no random host ports: Prometheus scrapes inside"
        assert sink["expose"] == [str(port)]
        assert f"127.0.0.1:{port}/healthz" in " ".join(sink["healthcheck"]["test"])

    def test_kafka_keeps_its_log_in_the_volume(self) -> None:
        """apache/kafka writes to /tmp/kraft-combined-logs unless KAFKA_LOG_DIRS is set: the
        log dir must be the mounted volume, and the cluster id fixed so it is reused."""
        kafka = compose()["services"]["kafka"]
        log_dirs = environment(kafka)["KAFKA_LOG_DIRS"]
        assert kafka["volumes"] == [f"kafka-data:{log_dirs}"]
        assert "kafka-data" in compose()["volumes"]
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", environment(kafka)["CLUSTER_ID"])
        postgres = compose()["services"]["postgres"]
        assert "postgres-data:/var/lib/postgresql" in postgres["volumes"], "18's PGDATA layout"

    def test_agents_outside_compose_have_a_listener(self) -> None:
        kafka = environment(compose()["services"]["kafka"])
        ours = listeners(kafka["KAFKA_LISTENERS"])
        advertised = listeners(kafka["KAFKA_ADVERTISED_LISTENERS"])
        assert set(ours) == {"PLAINTEXT", "CONTROLLER", "HOST"}
        assert set(advertised) == {"PLAINTEXT", "HOST"}
        protocols = dict(
            p.split(":") for p in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
        )
        assert set(protocols) == set(ours)
        host_port = ours["HOST"].rsplit(":", 1)[1]
        published = compose()["services"]["kafka"]["ports"]
        assert any(p.endswith(f":{host_port}") for p in published), published
        assert advertised["HOST"] == "${KAFKA_ADVERTISED_HOST:-localhost}:${KAFKA_HOST_PORT:-9094}"

    def test_env_example_names_every_variable(self) -> None:
        """Every ${VAR} the compose file reads is in .env.example; passwords are empty."""
        text = (ROOT / "docker-compose.yml").read_text()
        used = set(re.findall(r"\$\{([A-Z_]+)(?::[-?][^}]*)?\}", text))
        example = dict(
            line.split("=", 1)
            for line in (ROOT / ".env.example").read_text().splitlines()
            if line and not line.startswith("#")
        )
        assert used == set(example), used ^ set(example)
        for name, value in example.items():
            if name.endswith("PASSWORD"):
                assert value == "", name
        assert ".env" in (ROOT / ".gitignore").read_text().split()

    def test_prometheus_scrapes_every_replica(self) -> None:
        config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
        (job,) = config["scrape_configs"]
        (sd,) = job["dns_sd_configs"]
        assert sd["names"] == ["sink"]
        assert sd["port"] == DEFAULT_METRICS_PORT
        assert job["metrics_path"] == "/metrics"
        services = compose()["services"]
        mounted = " ".join(services["prometheus"]["volumes"])
        assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml" in mounted

    def test_grafana_is_provisioned_from_the_repository(self) -> None:
        grafana = compose()["services"]["grafana"]
        # {repository path: container path} of the bind mounts
        mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("./"))
        assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
        providers = yaml.safe_load(
            (ROOT / "deploy/grafana/provisioning/dashboards/debug-sink.yml").read_text()
        )
        (provider,) = providers["providers"]
        assert provider["options"]["path"] == mounts["./deploy/grafana/dashboards"]
        dashboards = list((ROOT / "deploy/grafana/dashboards").glob("*.json"))
        assert [d.name for d in dashboards] == ["debug-sink.json"]
        sources = yaml.safe_load(
            (ROOT / "deploy/grafana/provisioning/datasources/debug-sink.yml").read_text()
        )
        uids = {d["uid"]: d for d in sources["datasources"]}
        assert uids["debug-sink-postgres"]["user"] == "debug_sink_reader", "the read-only role"
        used = {
            target["datasource"]["uid"]
            for panel in json.loads(dashboards[0].read_text())["panels"]
            for target in panel.get("targets", [])
        }
        assert used <= set(uids)
        assert environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].startswith(
            provider["options"]["path"] + "/"
        )

    def test_web_view_is_optional_read_only_and_behind_a_password(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The ui profile: `debug-sink ui` as the reader role, listening beyond loopback only
        with a required password, published on the host's loopback, reading every sink's
        /metrics, its health check authenticated like a browser."""
        services = compose()["services"]
        ui = services["ui"]
        assert ui["profiles"] == ["ui"]
        cli_accepts(ui["command"])
        env = environment(ui)
        assert env["DEBUG_SINK_POSTGRES_DSN"].startswith("postgresql://debug_sink_reader@postgres:")
        assert env["DEBUG_SINK_UI_PASSWORD"].startswith("${UI_PASSWORD:?")
        for key, value in env.items():  # as the container's environment gives them
            if key.startswith(ENV_PREFIX) and "PASSWORD" not in key:
                monkeypatch.setenv(key, value)
        settings = Settings(ui_password="x")
        from debug_sink.ui.security import Access, check_bind

        check_bind(settings.ui_host, Access.from_settings(settings))
        assert settings.ui_metrics_urls == (f"http://sink:{DEFAULT_METRICS_PORT}/metrics",)
        assert ui["ports"] == [
            f"127.0.0.1:${{UI_HOST_PORT:-{settings.ui_port}}}:{settings.ui_port}"
        ]
        check = " ".join(ui["healthcheck"]["test"])
        assert f"127.0.0.1:{settings.ui_port}/healthz" in check
        assert "DEBUG_SINK_UI_PASSWORD" in check
        assert ui["depends_on"]["grants"]["condition"] == "service_completed_successfully"

    def test_topics_created_are_the_settings_topics(self) -> None:
        script = " ".join(compose()["services"]["kafka-topics"]["command"])
        defaults = Settings()
        for topic in [*defaults.topics, defaults.dead_letter_topic]:
            assert topic in script
        assert not re.search(defaults.topic_pattern, defaults.dead_letter_topic)


class TestDockerfile:
    """The image is multi-stage, pinned, non-root, and its entry point and health check exist."""

    def test_stages_and_pinned_base(self) -> None:
        text = (ROOT / "Dockerfile").read_text()
        base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
        assert base is not None
        assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", base.group(1)), base.group(1)
        assert len(stages()) >= 2, "multi-stage"
        final = stages()[-1]
        assert final[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")

    def test_final_stage_has_no_build_tools_and_runs_unprivileged(self) -> None:
        final = stages()[-1]
        body = " ".join(args for _, args in final)
        assert not re.search(r"\b(gcc|g\+\+|build-essential|make|apt-get install)\b", body)
        users = [args for instruction, args in final if instruction == "USER"]
        assert users, "USER is set"
        assert users[-1].split(":")[0] not in ("0", "root")
        assert any(
            instruction == "COPY" and args.startswith("--from=build") for instruction, args in final
        )

    def test_the_wheel_gets_the_migrations(self) -> None:
        build = stages()[0]
        copied = [args for instruction, args in build if instruction == "COPY"]
        assert any(args.startswith("migrations ") for args in copied)
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
        force = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
        assert force["migrations"] == "debug_sink/_migrations"
        ignored = (ROOT / ".dockerignore").read_text().split()
        assert "migrations" not in ignored
        assert ".venv" in ignored

    def test_entrypoint_is_the_console_script_and_cmd_is_run(self) -> None:
        instructions = dict(dockerfile_instructions()[::-1])  # last wins, like Docker
        assert json.loads(instructions["ENTRYPOINT"]) == ["debug-sink"]
        cmd = json.loads(instructions["CMD"])
        assert cmd == ["run"]
        cli_accepts(cmd)
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        module, function = scripts["debug-sink"].split(":")
        assert callable(getattr(__import__(module, fromlist=[function]), function))

    def test_environment_names_real_settings(self) -> None:
        text = (ROOT / "Dockerfile").read_text()
        names = set(re.findall(rf"\b{ENV_PREFIX}([A-Z_]+)=", text))
        assert names
        assert {n.lower() for n in names} <= set(SETTINGS)

    def test_healthcheck_targets_the_default_metrics_port(self) -> None:
        text = (ROOT / "Dockerfile").read_text()
        assert f"DEBUG_SINK_METRICS_PORT={DEFAULT_METRICS_PORT}" in text
        assert f"EXPOSE {DEFAULT_METRICS_PORT}" in text
        assert "/healthz" in healthcheck_argv()[-1]

    @pytest.mark.parametrize(("ready", "healthy"), [(True, True), (False, False)])
    async def test_healthcheck_command_against_the_real_server(
        self, ready: bool, healthy: bool
    ) -> None:
        """The image's HEALTHCHECK, run as written, passes on 200 and fails on 503."""
        server = HttpServer(Metrics(), lambda: {"ready": ready}, "127.0.0.1", 0)
        await server.start()
        try:
            argv = healthcheck_argv()
            assert argv[0] == "python"
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *argv[1:],
                env={**os.environ, "DEBUG_SINK_METRICS_PORT": str(server.port)},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            assert (await asyncio.wait_for(proc.wait(), 30) == 0) is healthy
        finally:
            await server.stop()


def listeners(text: str) -> dict[str, str]:
    """``NAME://host:port,...`` as {NAME: host:port}."""
    return dict(item.split("://", 1) for item in text.split(","))


def healthcheck_argv() -> list[str]:
    args = dict(dockerfile_instructions())["HEALTHCHECK"]
    cmd = args.split(" CMD ", 1)[1]
    argv: list[str] = json.loads(cmd) if cmd.lstrip().startswith("[") else shlex.split(cmd)
    return argv
