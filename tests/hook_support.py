"""Running ``debug-sink hook`` as Claude Code does, for the hook command's tests: one hook
input on stdin, with a broker that is not there (nothing to ship to), and stopping the
shipper it starts."""

from __future__ import annotations

import subprocess
import sys

from tests.support import cli_env


def hook(
    directory: str, stdin: bytes, *args: str, **env: str
) -> subprocess.CompletedProcess[bytes]:
    """``python -m debug_sink.hooks`` with a broker that is not there (nothing to ship to)."""
    variables = {
        "DEBUG_SINK_HOOK_DIR": directory,
        "DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "DEBUG_SINK_HOOK_IDLE_SECONDS": "1",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "debug_sink.hooks", *args],
        input=stdin,
        capture_output=True,
        env=cli_env(**variables),
        timeout=60,
        check=False,
    )


def stop_shipper(directory: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "debug_sink.hooks", "--stop", "--dir", directory],
        env=cli_env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
