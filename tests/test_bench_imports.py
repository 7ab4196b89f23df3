"""The benchmark scripts run both as `python bench/X.py` and `python -m bench.X`: a sibling
module is imported as `bench.<name>` (a bare `import <name>` works only in the first way)."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_sibling_modules_are_imported_through_the_package() -> None:
    siblings = {path.stem for path in BENCH.glob("*.py")}
    bare = []
    for script in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            bare += [f"{script.name}: {n}" for n in names if n.split(".")[0] in siblings]
    assert not bare, f"import these as bench.<name>: {bare}"
