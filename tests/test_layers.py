"""The layers, as imports: server and bench use engine; engine uses wasm_sandbox and models; the two leaves import
nothing of engine, and of each other only wasm_sandbox -> models (the cache root), so the graph stays acyclic."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "wasm_sandbox", "models", "server", "bench")
# what each package may import of the others
ALLOWED = {
    "models": set(),
    "wasm_sandbox": {"models"},
    "engine": {"wasm_sandbox", "models"},
    "server": {"engine", "wasm_sandbox", "models"},
    "bench": {"engine", "wasm_sandbox", "models"},
}


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(n.split(".")[0] for n in names if n.split(".")[0] in PACKAGES)
    return found


def test_imports_point_down_only() -> None:
    wrong = []
    for pkg, allowed in ALLOWED.items():
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "guest" in path.parts:  # runs inside the sandbox, imports nothing of the host
                continue
            for used in _imported_packages(path) - allowed - {pkg}:
                wrong.append(f"{path.relative_to(ROOT)} imports {used}")
    assert not wrong, "layer violations: " + "; ".join(wrong)
