"""The bench borrows the sink's internals through one module only."""

from __future__ import annotations

import ast
from pathlib import Path

import debug_sink.bench
from debug_sink.bench import internals

#: The packages whose names the bench may import only through ``bench/internals.py``.
BORROWED = ("debug_sink.sink", "debug_sink.db", "debug_sink.jobs", "debug_sink.wire")


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


class TestInternals:
    """bench.internals: the one place a rename inside the sink is fixed."""

    def test_every_borrowed_name_resolves(self) -> None:
        """Each name internals exports exists where internals imports it from (a rename in
        the sink fails here, not in the middle of a run)."""
        for name in internals.__all__:
            assert getattr(internals, name) is not None, name

    def test_no_other_bench_module_imports_the_sinks_packages(self) -> None:
        """Apart from internals.py, no module of the bench imports from debug_sink.sink,
        .db, .jobs or .wire."""
        root = Path(debug_sink.bench.__file__).parent
        offenders = {
            str(path.relative_to(root)): sorted(
                m for m in _imported_modules(path) if m.startswith(BORROWED)
            )
            for path in root.rglob("*.py")
            if path.name != "internals.py" or path.parent != root
        }
        assert {path: found for path, found in offenders.items() if found} == {}
