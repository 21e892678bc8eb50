"""The package ladder: a floor never imports one above it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "perfops_cdk"
# Everything above app.py on the ladder props -> planners -> effects -> constructs ->
# app.py -> publishing/ and operations -> cli/.
ABOVE_APP = ("perfops_cdk.cli", "perfops_cdk.publishing", "perfops_cdk.operations")


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def test_app_imports_nothing_above_it_not_even_lazily() -> None:
    """app.py (and so --sync-amis) reaches the CLI only as a program, never by import."""
    imported = _imported_modules(PACKAGE / "app.py")
    assert sorted(m for m in imported if m.startswith(ABOVE_APP)) == []
