"""The package layers: ``translator`` is the runtime and must not depend on the evaluator above it
(``eval`` imports ``translator``, never the reverse), so the translator installs and runs without it."""

from __future__ import annotations

import ast
from pathlib import Path

import translator

PACKAGE = Path(translator.__file__).parent


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module an ``import`` or ``from ... import`` in the file names, lazy ones inside functions too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_the_walk_sees_top_level_and_lazy_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import os, eval.data\nfrom . import x\ndef f():\n    from eval.metrics import base\n")
    assert imported_modules(probe) == [(1, "os"), (1, "eval.data"), (4, "eval.metrics")]


def test_the_translator_package_never_imports_eval() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20  # the walk found the package
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}" for path in files
                 for line, name in imported_modules(path) if name == "eval" or name.startswith("eval.")]
    assert offenders == []
