"""The layering contract of ``pyproject.toml`` ([tool.importlinter]) holds, and would catch a
violation: an upward import, a logging import below the commands, an import cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(cwd: Path, src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestLayers:
    """`lint-imports` runs the contracts against the package as it is."""

    def test_contracts_are_kept(self) -> None:
        result = lint(ROOT, ROOT / "src")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 broken" in result.stdout

    def test_a_violation_is_caught(self, tmp_path: Path) -> None:
        """A copy of the package with three planted violations fails each contract."""
        src = tmp_path / "src"
        shutil.copytree(
            ROOT / "src" / "debug_sink",
            src / "debug_sink",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
        plant = {
            # The wire format reaching up to the command line.
            "wire/events.py": "import debug_sink.cli.app",
            # A library module configuring logging.
            "read/diff.py": "import debug_sink.logs",
            # A cycle inside one package: migrate already imports pg.
            "db/pg.py": "import debug_sink.db.migrate",
        }
        for path, line in plant.items():
            target = src / "debug_sink" / path
            target.write_text(target.read_text() + f"\n{line}  # planted\n")
        result = lint(tmp_path, src)
        out = result.stdout
        assert result.returncode != 0, out
        assert "debug_sink.wire is not allowed to import debug_sink.cli" in out
        assert "debug_sink.read is not allowed to import debug_sink.logs" in out
        assert "No cycles are allowed in debug_sink.db" in out
        assert "0 kept" in out


@pytest.mark.parametrize("module", ["wire", "db"])
def test_bottom_layers_import_only_foundations(module: str) -> None:
    """`wire` and `db` import nothing of debug_sink above the error tree (a direct check of
    the files, independent of import-linter's configuration)."""
    allowed = {"debug_sink.errors", f"debug_sink.{module}"}
    for path in (ROOT / "src" / "debug_sink" / module).rglob("*.py"):
        for line in path.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("from", "import"):
                name = words[1]
                if name.startswith("debug_sink"):
                    assert any(name == a or name.startswith(a + ".") for a in allowed), (
                        f"{path.relative_to(ROOT)}: {line.strip()}"
                    )
