"""Import lines merged and laid out as isort does, for the generated files.

The lines come from several places (the shared template, the type's template,
the interface's signatures), so the same module is often imported more than
once; merging them keeps the generated code free of duplicate imports, which
pyflakes would report as redefinitions.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable

LINE_LIMIT = 110


def import_block(lines: Iterable[str], first_party: Iterable[str]) -> list[str]:
    """The imports in ``lines`` (any number of statements a line) merged into one line per
    module, in isort's groups (standard library, third party, this project) separated by a
    blank line; ``import x`` before ``from x import y`` in each group."""
    plain: set[tuple[str, str | None]] = set()
    froms: dict[str, set[tuple[str, str | None]]] = {}
    for node in ast.parse("\n".join(lines)).body:
        if isinstance(node, ast.Import):
            plain.update((alias.name, alias.asname) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            froms.setdefault(node.module, set()).update((a.name, a.asname) for a in node.names)
        else:
            raise ValueError(f"not an absolute import: {ast.unparse(node)!r}")
    groups: list[list[tuple[tuple[bool, str], str]]] = [[], [], []]
    first = set(first_party)
    for module, asname in plain:
        groups[_group(module, first)].append(((False, module.lower()), f"import {_alias(module, asname)}"))
    for module, names in froms.items():
        text = ", ".join(_alias(n, a) for n, a in sorted(names, key=lambda na: (na[0], na[1] or "")))
        groups[_group(module, first)].append(((True, module.lower()), _from_line(module, text)))
    blocks = [[line for _, line in sorted(group)] for group in groups if group]
    return [line for i, block in enumerate(blocks) for line in ([""] if i else []) + block]


def _group(module: str, first_party: set[str]) -> int:
    top = module.split(".")[0]
    return 0 if top in sys.stdlib_module_names else 2 if top in first_party else 1


def _alias(name: str, asname: str | None) -> str:
    return f"{name} as {asname}" if asname else name


def _from_line(module: str, names: str) -> str:
    line = f"from {module} import {names}"
    if len(line) <= LINE_LIMIT:
        return line
    return f"from {module} import (\n" + "".join(f"    {n},\n" for n in names.split(", ")) + ")"
