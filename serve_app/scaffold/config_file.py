"""providers.yaml: reading it, planning the entry's edit, writing it back checked.

Everything here either reads the file leniently (to help a prompt or a note;
`plan_config_edit` reports a broken file properly) or strictly, with the
registry's own loader as the final judge of an edit.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from providers.types import ProviderType
from serve_app.scaffold.model import EXIT_FAILED, Request, ScaffoldError
from serve_app.scaffold.yaml_text import append_entry, entry_lines, entry_spec, indented


def plan_config_edit(request: Request, class_path: str, config: dict[str, Any],
                     module_rel: str) -> tuple[tuple[str, str] | None, list[str]]:
    """(original, new) text of providers.yaml, checked by reading both back; and notes."""
    path = request.config_path
    text = _read_config_text(path)
    before = _yaml_tree(text, path)
    section = request.ptype.value
    existing = ((before.get(section) or {}).get("providers") or {}).get(request.name)
    if existing is not None:
        return None, _existing_entry(existing, request, class_path)
    entry = entry_lines(request.name, class_path, config, module_rel)
    after_text = append_entry(text, section, entry)
    expected = copy.deepcopy(before)
    group = expected.setdefault(section, {}) or {}
    expected[section] = group
    group["providers"] = {**(group.get("providers") or {}), request.name: entry_spec(class_path, config)}
    if _yaml_tree(after_text, path) != expected:
        snippet = "\n".join(indented(entry, 4, 2))
        raise ScaffoldError(f"could not add the entry by appending text ({section} has an unusual layout); "
                            f"add it under {section}.providers by hand:\n{snippet}", "--config", EXIT_FAILED)
    return (text, after_text), []


def _read_config_text(path: Path) -> str:
    try:
        return read_exact(path)
    except FileNotFoundError:
        raise ScaffoldError(f"{path} does not exist; name an existing providers.yaml, or pass --no-config",
                            "--config") from None
    except OSError as exc:
        raise ScaffoldError(f"cannot read {path}: {exc.strerror}", "--config") from None


def read_exact(path: Path) -> str:
    """The file's text with its line endings as they are (CRLF files stay CRLF)."""
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def write_exact(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def _yaml_tree(text: str, path: Path) -> dict[str, Any]:
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ScaffoldError(f"{path} is not valid YAML{where}; fix it first", "--config", EXIT_FAILED) from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ScaffoldError(f"{path} is not a mapping at the top level", "--config", EXIT_FAILED)
    return tree


def _existing_entry(existing: Any, request: Request, class_path: str) -> list[str]:
    """A name already taken: fine on a --force rerun for the same class, an error otherwise."""
    same = isinstance(existing, dict) and existing.get("class") == class_path
    where = f"{request.ptype.value}.providers.{request.name} in {request.config_path}"
    if same and request.force:
        return [f"{where} exists already with this class; left it as it is"]
    hint = "pass --force to keep it and regenerate the files" if same else "pick another --name"
    raise ScaffoldError(f"{where} exists already; {hint}", "--name")


def write_config(path: Path, original: str, new: str) -> str | None:
    """Write ``new`` and check it with the registry's loader; restore ``original`` if it fails.

    A file that did not load before either (a ``${SECRET}`` unset in this shell) is
    accepted when it fails the same way: the edit did not make it worse, and the
    YAML-level check in `plan_config_edit` already proved the entry landed right.
    Returns a note for that case.
    """
    from providers.errors import RegistryError
    from providers.registry.config import load_config

    def problem() -> str | None:
        try:
            load_config(path)
        except RegistryError as exc:
            return str(exc)
        return None

    before = problem()
    write_exact(path, new)
    after = problem()
    if after is None:
        return None
    if after == before:
        return (f"{path} did not load before this change either ({before}); "
                "the entry is added but could not be checked by the loader")
    write_exact(path, original)
    raise ScaffoldError(f"{path} no longer loaded with the entry ({after}); restored it as it was", "--config",
                        EXIT_FAILED)


def configured_prefixes(path: Path | None) -> list[str]:
    """registry.allowed_module_prefixes in the file (none when it cannot be read)."""
    if path is None or not path.exists():
        return []
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return list(((tree.get("registry") or {}).get("allowed_module_prefixes")) or [])
    except (yaml.YAMLError, OSError, AttributeError):
        return []


def taken_names(path: Path | None, ptype: ProviderType) -> set[str]:
    """Names already in the section, so the prompt can refuse them at once."""
    if path is None or not path.exists():
        return set()
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return set(((tree.get(ptype.value) or {}).get("providers")) or {})
    except (yaml.YAMLError, OSError, AttributeError):
        return set()  # plan() reports a broken file properly
