"""Planning and writing: every file and the providers.yaml edit computed and checked
first, then written; then the new class imported as the registry would import it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from providers.interfaces import interface_for
from serve_app.scaffold.checks import module_name_for, snake_case
from serve_app.scaffold.config_file import configured_prefixes, plan_config_edit, write_config, write_exact
from serve_app.scaffold.model import EXIT_FAILED, Plan, Request, ScaffoldError
from serve_app.scaffold.render import merged_config, render_module, render_test


def plan(request: Request) -> Plan:
    """Compute every file and the config edit; raise `ScaffoldError` before anything is written."""
    module_name = module_name_for(request.package_dir, request.root)
    snake = snake_case(request.class_name)
    module_path = _under_root(request.package_dir, request.root) / f"{snake}.py"
    test_path = _under_root(request.tests_dir, request.root) / f"test_{snake}.py"
    _check_free(module_path, request.force, "--class-name")
    _check_free(test_path, request.force, "--class-name")
    config = merged_config(request)
    files = {p: "" for p in _missing_inits(module_path.parent, test_path.parent)}
    iface = interface_for(request.ptype)
    files[module_path] = render_module(request, iface, display_path(test_path, request.root), config)
    files[test_path] = render_test(request, iface, f"{module_name}.{snake}", config)
    result = Plan(request, f"{module_name}.{snake}", module_path, test_path, files, config, None)
    if request.config_path is not None:
        result.config_edit, notes = plan_config_edit(request, result.class_path, config,
                                                     display_path(module_path, request.root))
        result.notes += notes
    result.notes += _allowlist_notes(result)
    return result


def _under_root(path: Path, root: Path) -> Path:
    return path if path.is_absolute() else root / path


def _check_free(path: Path, force: bool, flag: str) -> None:
    if path.exists() and not force:
        raise ScaffoldError(f"{path} exists; pass --force to overwrite it, or choose another {flag}", "--force")


def _missing_inits(*dirs: Path) -> list[Path]:
    """``__init__.py`` for the package and the tests folder: the registry imports the provider by
    its dotted name, and pytest needs packages to tell same-named test files apart."""
    return [d / "__init__.py" for d in dict.fromkeys(dirs) if not (d / "__init__.py").exists()]


def _allowlist_notes(result: Plan) -> list[str]:
    """The registry loads classes only from allowlisted module prefixes (`providers.registry.loading`):
    say what to add rather than widen a security boundary on the operator's behalf."""
    from providers.registry.config import DEFAULT_ALLOWED_PREFIXES

    prefixes = list(DEFAULT_ALLOWED_PREFIXES) + configured_prefixes(result.request.config_path)
    module = result.module_name
    if any(module == p.rstrip(".") or module.startswith(p.rstrip(".") + ".") for p in prefixes if p):
        return []
    top = module.split(".")[0] + "."
    where = result.request.config_path or "providers.yaml"
    return [f"the registry loads classes only from {prefixes}: add {top!r} to registry.allowed_module_prefixes "
            f"in {where} (and make sure {result.request.root} is on the registry's PYTHONPATH) before "
            "`provider-registry check` or `serve`"]


def write(result: Plan) -> list[str]:
    """Write the plan: providers.yaml first (checked, restorable), then the files; notes for the operator."""
    notes = list(result.notes)
    request = result.request
    if result.config_edit is not None:
        note = write_config(request.config_path, *result.config_edit)
        notes += [note] if note else []
    try:
        for path, text in result.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        if result.config_edit is not None:
            write_exact(request.config_path, result.config_edit[0])
        raise ScaffoldError(f"cannot write {exc.filename}: {exc.strerror} (providers.yaml left as it was)",
                            code=EXIT_FAILED) from None
    return notes


def verify_loadable(result: Plan) -> None:
    """Import the new class as the registry would and check its interface (a template bug shows here,
    not at `serve` time)."""
    from providers.errors import RegistryError
    from providers.registry.loading import load_provider_class

    root = str(result.request.root.resolve())
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    importlib.invalidate_caches()
    try:
        load_provider_class(result.class_path, result.request.ptype, [result.module_name])
    except RegistryError as exc:
        raise ScaffoldError(f"the files were written but {result.class_path} does not load: {exc}",
                            code=EXIT_FAILED) from None
    finally:
        if added:
            sys.path.remove(root)


def generate(request: Request, verify: bool = True) -> tuple[Plan, list[str]]:
    """Plan, write and (optionally) import-check: the whole command without its I/O with the operator."""
    result = plan(request)
    notes = write(result)
    if verify:
        verify_loadable(result)
    return result, notes


def display_path(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
