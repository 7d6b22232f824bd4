"""Flag values no command can use are usage errors (exit 2, one line naming the flag), caught
before anything connects -- not a PostgreSQL error about a query argument's range, and not
a command that does nothing and exits 0."""

from __future__ import annotations

import pytest

from tests import support as s


@pytest.mark.parametrize(
    "args",
    [
        ["workflows", "--limit", "99999999999"],
        ["known-fixes", "X", "--limit", "99999999999"],
        ["dead-letters", "list", "--limit", "99999999999999999999"],
        ["errors", "--limit", str(2**31)],
        ["demo", "--workflows", "1", "--concurrency", "-1"],
        ["demo", "--workflows", "1", "--concurrency", "0"],
        ["demo", "--workflows", "-1"],
    ],
)
def test_a_number_no_command_can_use_is_a_usage_error(args: list[str]) -> None:
    # A DSN nothing listens on: the refusal must come before any connection is tried.
    result = s.run_cli(*args, env=s.cli_env("postgresql://u:pw@127.0.0.1:9/x"), timeout=30)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    flag = next(a for a in reversed(args) if a.startswith("--"))
    assert f"argument {flag}:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_largest_limit_is_accepted() -> None:
    result = s.run_cli(
        "workflows", "--limit", str(2**31 - 1), env=s.cli_env("postgresql://u:pw@127.0.0.1:9/x")
    )
    assert result.returncode == 3, result.stderr  # parsed; then the server is unreachable
