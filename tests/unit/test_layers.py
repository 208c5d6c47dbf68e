"""The layers a drawing shows, kept by a test (STYLE 12): serve_app -> deployments -> providers.

Every import statement in every module (top level or inside a function, since
a function-level import is still a dependency) is read with ``ast``:

- ``providers`` imports none of ``deployments``, ``serve_app``, ``ray``
  (plain Python, unit-testable without Ray, usable in any process);
- ``deployments`` imports nothing from ``serve_app`` (the face sits on top).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "providers": ("deployments", "serve_app", "ray"),
    "deployments": ("serve_app",),
}


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(package: str) -> list[str]:
    banned = FORBIDDEN[package]
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported_modules(path.read_text()):
            top = module.split(".")[0]
            if top in banned:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_up_the_layers(package):
    assert violations(package) == []


def test_the_reader_sees_function_level_and_from_imports():
    """The rule's reader itself: an upward import hidden in a function is found."""
    source = "import os\ndef f():\n    from serve_app.builders import x\n    import ray.serve\n"
    assert imported_modules(source) == [(1, "os"), (3, "serve_app.builders"), (4, "ray.serve")]


def test_a_planted_violation_is_reported(tmp_path, monkeypatch):
    pkg = tmp_path / "providers"
    pkg.mkdir()
    (pkg / "bad.py").write_text("def f():\n    from deployments.router import RegistryRouter\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert violations("providers") == ["providers/bad.py:2 imports deployments.router"]
