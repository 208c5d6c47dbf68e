"""``provider-registry add-provider``: scaffold a new provider, its tests and its config entry.

The seed's ``scripts/add_provider.py``, as a subcommand. It writes

* ``<package-dir>/<snake_name>.py``: a class implementing the type's interface
  (`providers.interfaces`), every method with a working placeholder and a
  ``# TODO:`` saying what a real implementation must do;
* ``<tests-dir>/test_<snake_name>.py``: tests calling every interface method,
  which pass as generated and fail once any placeholder is missing;
* an entry in the right section of providers.yaml, appended as text so the
  file's comments and layout survive, then checked with the registry's own
  loader (the original is restored if it no longer loads).

Everything is validated before anything is written. Errors an operator can
fix by changing a flag exit with 2 and name the flag. No Ray import here:
this runs on a laptop with no cluster.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import json
import keyword
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from providers.types import ProviderType
from serve_app.scaffold_templates import (HEALTH_TODO, MODULE, MODULE_IMPORTS, NAME_TOKEN, TEMPLATES, TEST,
                                          TEST_IMPORTS, TypeTemplate)

EXIT_USAGE = 2  # a flag (or an answer) is wrong: the message names it
EXIT_FAILED = 1  # the work could not be done (a broken providers.yaml, a failed write)

_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Values a default may take: what both YAML and Python literals express the same way.
_PLAIN = (str, int, float, bool, type(None), list, dict)


class ScaffoldError(Exception):
    """A problem the operator can fix; ``flag`` names the option at fault."""

    def __init__(self, message: str, flag: str | None = None, code: int = EXIT_USAGE) -> None:
        super().__init__(f"{flag}: {message}" if flag else message)
        self.flag = flag
        self.code = code


@dataclass
class Request:
    """What to generate; every field already validated by the `check_*` functions."""

    ptype: ProviderType
    name: str
    class_name: str
    config_keys: dict[str, Any] = field(default_factory=dict)
    package_dir: Path = Path("providers/custom")
    tests_dir: Path = Path("tests/custom")
    config_path: Path | None = Path("config/providers.yaml")
    force: bool = False
    root: Path = field(default_factory=Path.cwd)  # the import root: module names are relative to it


@dataclass
class Plan:
    """Everything `write` does, computed (and checked) before any file changes."""

    request: Request
    module_name: str
    module_path: Path
    test_path: Path
    files: dict[Path, str]  # path -> text, in the order they are written
    config: dict[str, Any]  # the provider's config: built-in keys, then the operator's
    config_edit: tuple[str, str] | None  # (original, new) text of providers.yaml; None: no change
    notes: list[str] = field(default_factory=list)

    @property
    def class_path(self) -> str:
        return f"{self.module_name}.{self.request.class_name}"


# -- checks of single values: shared by the flags and the prompts (ValueError says why) ------------

def parse_type(text: str) -> ProviderType:
    """A section name (``embeddings``), an enum name (``EMBEDDING``) or a number from `type_menu`."""
    text = text.strip()
    members = list(ProviderType)
    if text.isdigit() and 1 <= int(text) <= len(members):
        return members[int(text) - 1]
    for member in members:
        if text in (member.value, member.name, member.name.lower()):
            return member
    raise ValueError(f"{text!r} is not a provider type; one of: {', '.join(m.value for m in members)}")


def check_name(text: str) -> str:
    # Imported here, like the rest of the registry config: `provider-registry` builds
    # this subcommand's parser on every run, and pydantic costs 0.2 s to import.
    from providers.registry.config import NAME_PATTERN

    text = text.strip()
    if not re.match(NAME_PATTERN, text):
        raise ValueError(f"{text!r} is not a valid provider name: letters, digits, '_', '.' and '-', "
                         "starting with a letter or digit, at most 63 characters")
    return text


def check_class_name(text: str) -> str:
    text = text.strip()
    if not text.isidentifier() or keyword.iskeyword(text) or not text.isascii():
        raise ValueError(f"{text!r} is not a Python class name: letters, digits and '_', not starting with a digit")
    return text


def parse_config_key(text: str, ptype: ProviderType | None = None) -> tuple[str, Any]:
    """``KEY=DEFAULT``; the default is read as YAML (``8`` an int, ``true`` a bool, empty: null)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep:
        raise ValueError(f"{text!r} is not KEY=DEFAULT")
    if not _KEY_RE.match(key) or keyword.iskeyword(key):
        raise ValueError(f"{key!r} is not a config key: a letter, then letters, digits and '_'")
    if key in _reserved_keys() or key.startswith("model_"):
        raise ValueError(f"{key!r} is reserved (an attribute of the pydantic settings model); pick another name")
    value = _parse_default(raw.strip(), key)
    builtin = TEMPLATES[ptype].builtins.get(key) if ptype else None
    if builtin and (not isinstance(value, builtin.types) or isinstance(value, bool) != (bool in builtin.types)):
        wanted = " or ".join("null" if t is type(None) else t.__name__ for t in builtin.types)
        raise ValueError(f"{key!r} is read by the placeholder ({builtin.comment}): its default must be {wanted}")
    if key == "dimension" and builtin and value < 1:
        raise ValueError("'dimension' must be at least 1")
    return key, value


def _reserved_keys() -> set[str]:
    """Attributes of pydantic models: a config key named like one would shadow it."""
    from providers.registry.config import ProviderConfig

    return set(dir(ProviderConfig))


def _parse_default(raw: str, key: str) -> Any:
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError:
        raise ValueError(f"the default of {key!r} is not a YAML value: {raw!r} (quote it)") from None
    if not isinstance(value, _PLAIN) or not _is_plain(value):
        return raw  # a date or other YAML-only type: keep the text, as a string
    return value


def _is_plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return isinstance(value, _PLAIN)


def suggest_class_name(name: str, ptype: ProviderType) -> str | None:
    """``keyword-overlap`` + rerankers -> ``KeywordOverlapReranker`` (None if that is no identifier)."""
    suffix = TEMPLATES[ptype].class_suffix
    base = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)
    candidate = base if base.lower().endswith(suffix.lower()) else base + suffix
    try:
        return check_class_name(candidate)
    except ValueError:
        return None


def snake_case(class_name: str) -> str:
    """``MyHTTPEmbedder`` -> ``my_http_embedder``: the module and test file names."""
    words = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", class_name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", words).lower()


def module_name_for(package_dir: Path, root: Path) -> str:
    """The dotted package of ``package_dir``, as imported from ``root`` (the registry's import root)."""
    try:
        rel = (root / package_dir).resolve().relative_to(root.resolve())
    except ValueError:
        raise ScaffoldError(f"{package_dir} is outside {root}, the import root the registry loads "
                            "classes from; run add-provider from the project's root", "--package-dir") from None
    parts = rel.parts
    if not parts or any(not p.isidentifier() or keyword.iskeyword(p) for p in parts):
        raise ScaffoldError(f"{package_dir} must be a package path below {root} whose every part is a "
                            "Python identifier (e.g. providers/custom)", "--package-dir")
    _check_not_shadowed(parts[0], root)
    return ".".join(parts)


def _check_not_shadowed(top: str, root: Path) -> None:
    """Refuse a package whose top level already resolves elsewhere (``providers`` under another root
    would write files no import could reach)."""
    spec = importlib.util.find_spec(top)
    if spec is None:
        return
    here = (root / top).resolve()
    places = [Path(p).resolve() for p in (spec.submodule_search_locations or [])]
    if here not in places:
        where = ", ".join(map(str, places)) or spec.origin
        raise ScaffoldError(f"the package {top!r} is already imported from {where}, so files under {here} "
                            f"could not be imported as {top}.*; pick another --package-dir", "--package-dir")


# -- what the generated code contains ---------------------------------------------------------------

def merged_config(request: Request) -> dict[str, Any]:
    """The placeholder's built-in keys (with their defaults), then the operator's keys (which win)."""
    config = {}
    for key, builtin in TEMPLATES[request.ptype].builtins.items():
        config[key] = request.name if builtin.default == NAME_TOKEN else builtin.default
    config.update(request.config_keys)
    return config


def render_module(request: Request, test_rel: str, config: dict[str, Any]) -> str:
    template = TEMPLATES[request.ptype]
    return _fill(MODULE, request, template, {
        "__IMPORTS__": import_block(MODULE_IMPORTS + template.imports, "providers"),
        "__FIELDS__": _render_fields(template, config),
        "__STATE__": template.state,
        "__METHODS__": template.methods + template.helpers,
        "__TEST_PATH__": test_rel,
    })


def render_test(request: Request, module_name: str, config: dict[str, Any]) -> str:
    template = TEMPLATES[request.ptype]
    return _fill(TEST, request, template, {
        "__IMPORTS__": import_block((TEST_IMPORTS + template.test_imports).replace("__MODULE__", module_name),
                                    "providers", module_name.split(".")[0]),
        "__CONFIG__": py_literal(config, indent=0),
        "__TESTS__": template.tests,
        "__MODULE__": module_name,
    })


def import_block(lines: str, *first_party: str) -> str:
    """Import lines grouped and ordered as isort does: standard library, third party,
    this project; ``import x`` before ``from x import y`` in each group."""
    groups: dict[int, set[str]] = {0: set(), 1: set(), 2: set()}
    for line in filter(None, (line.strip() for line in lines.splitlines())):
        top = line.split()[1].split(".")[0]
        group = 0 if top in sys.stdlib_module_names else 2 if top in first_party else 1
        groups[group].add(line)
    blocks = ["\n".join(sorted(g, key=lambda ln: (ln.startswith("from"), ln.split()[1].lower())))
              for g in groups.values() if g]
    return "\n\n".join(blocks) + "\n"


def py_literal(value: Any, indent: int = 4) -> str:
    """A Python literal in the project's style (double quotes); dicts one key a line when long."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid Python string literal
    if isinstance(value, (bool, type(None), int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    items = [f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()]
    flat = "{" + ", ".join(items) + "}"
    if len(flat) + indent <= 100:
        return flat
    pad = " " * (indent + 4)
    return "{\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + "}"


def _fill(text: str, request: Request, template: TypeTemplate, parts: dict[str, str]) -> str:
    """Insert the type's parts first, then the names: the parts hold name tokens themselves."""
    for token, part in parts.items():
        text = text.replace(token, part)
    names = {"__HEALTH_TODO__": HEALTH_TODO, "__CLASS__": request.class_name, "__IFACE__": template.iface,
             "__PTYPE_VALUE__": request.ptype.value, "__PTYPE__": request.ptype.name}
    for token, value in names.items():  # __PTYPE_VALUE__ before __PTYPE__, its prefix
        text = text.replace(token, value)
    return text


def _render_fields(template: TypeTemplate, config: dict[str, Any]) -> str:
    lines = []
    for key, value in config.items():
        builtin = template.builtins.get(key)
        note = builtin.comment if builtin else "TODO: say what this setting does, and use it"
        lines.append(f"    {key}: {_annotation(key, value, template)} = {py_literal(value)}  # {note}\n")
    return "\n" + "".join(lines) if lines else ""


def _annotation(key: str, value: Any, template: TypeTemplate) -> str:
    builtin = template.builtins.get(key)
    if builtin and type(None) in builtin.types:
        return "float | None"  # the only optional built-in today: cache default_ttl_s
    for kind, text in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"),
                       (list, "list[Any]"), (dict, "dict[str, Any]")):
        if isinstance(value, kind):
            return text
    return "Any"


# -- the providers.yaml entry, appended as text --------------------------------------------------------

def entry_spec(class_path: str, config: dict[str, Any]) -> dict[str, Any]:
    """The entry as the YAML parser must read it back (the check of the text edit)."""
    return {"class": class_path, "config": dict(config), "deployment": {"num_cpus": 0.1}}


def entry_lines(name: str, class_path: str, config: dict[str, Any], module_rel: str) -> list[tuple[int, str]]:
    """(depth, text) lines of the entry; depth 0 is the provider name's level."""
    lines = [(0, f"# {name}: generated by `provider-registry add-provider`; placeholder behaviour"),
             (0, f"# until the TODOs in {module_rel} are done."),
             (0, f"{_yaml_scalar(name)}:"),
             (1, f"class: {class_path}"),
             (1, "config:" if config else "config: {}")]
    lines += [(2, f"{key}: {_yaml_scalar(value)}") for key, value in config.items()]
    lines += [(1, "deployment:"),
              (2, "num_cpus: 0.1  # enough for the placeholder; a real model needs more")]
    return lines


def _yaml_scalar(value: Any) -> str:
    """One-line YAML for ``value`` that reads back as ``value``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=2**31, allow_unicode=True)
    text = text[:-4] if text.endswith("\n...\n") else text
    text = text.strip()
    if "\n" in text or yaml.safe_load(text) != value:
        text = json.dumps(value, ensure_ascii=False)  # JSON is YAML, and always one line
    return text


def append_entry(text: str, section: str, entry: list[tuple[int, str]]) -> str:
    """``text`` with ``entry`` added at the end of ``section``'s providers (the section is
    created at the end of the file when absent). Everything else is left as it was."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines()
    step = _indent_step(lines)
    head = _find_top_key(lines, section)
    if head is None:
        block = [f"{section}:", " " * step + "providers:"] + _indented(entry, 2 * step, step)
        lines += ([""] if lines and lines[-1].strip() else []) + block
        return newline.join(lines) + newline
    _make_block(lines, head, section, 0)
    end = _section_end(lines, head)
    providers = _find_child(lines, head + 1, end, "providers")
    if providers is None:
        block = [" " * step + "providers:"] + _indented(entry, 2 * step, step)
    else:
        outer = _indent_of(lines[providers])
        _make_block(lines, providers, "providers", outer)
        inner = _first_child_indent(lines, providers + 1, end, outer) or outer + step
        block = _indented(entry, inner, inner - outer)
    lines[end:end] = block
    return newline.join(lines) + newline


def _indented(entry: list[tuple[int, str]], base: int, step: int) -> list[str]:
    return [" " * (base + depth * step) + text for depth, text in entry]


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _indent_step(lines: list[str]) -> int:
    """The file's indentation unit: its smallest indentation of a content line (2 if none)."""
    indents = [_indent_of(line) for line in lines if _is_content(line) and _indent_of(line) > 0]
    return min(indents) if indents else 2


def _find_top_key(lines: list[str], key: str) -> int | None:
    pattern = re.compile(rf"^{re.escape(key)}\s*:(\s|$)")
    return next((i for i, line in enumerate(lines) if pattern.match(line)), None)


def _find_child(lines: list[str], start: int, end: int, key: str) -> int | None:
    pattern = re.compile(rf"^\s+{re.escape(key)}\s*:(\s|$)")
    return next((i for i in range(start, end) if pattern.match(lines[i])), None)


def _section_end(lines: list[str], head: int) -> int:
    """Index after the section's last indented line: trailing blank lines and column-0
    comments stay where they are, in front of the next section."""
    last = head
    for i in range(head + 1, len(lines)):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            continue
        if line[0] not in " \t":
            break
        last = i
    return last + 1


def _first_child_indent(lines: list[str], start: int, end: int, outer: int) -> int | None:
    for i in range(start, end):
        if _is_content(lines[i]):
            indent = _indent_of(lines[i])
            return indent if indent > outer else None
    return None


def _make_block(lines: list[str], index: int, key: str, indent: int) -> None:
    """``key: {}`` (or null) becomes ``key:`` so entries can go below it; any other inline
    value cannot be appended to as text."""
    value, hash_, comment = lines[index].split(":", 1)[1].partition(" #")
    value = value.strip()
    if value in ("{}", "null", "~"):
        lines[index] = " " * indent + f"{key}:" + (f"  #{comment}" if hash_ else "")
    elif value:
        raise ScaffoldError(f"'{key}' is written in flow style ({value[:40]}...); add the entry by hand",
                            "--config", EXIT_FAILED)


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
        snippet = "\n".join(_indented(entry, 4, 2))
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


# -- planning and writing -------------------------------------------------------------------------------

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
    files[module_path] = render_module(request, _display(test_path, request.root), config)
    files[test_path] = render_test(request, f"{module_name}.{snake}", config)
    result = Plan(request, f"{module_name}.{snake}", module_path, test_path, files, config, None)
    if request.config_path is not None:
        result.config_edit, notes = plan_config_edit(request, result.class_path, config,
                                                     _display(module_path, request.root))
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

    prefixes = list(DEFAULT_ALLOWED_PREFIXES) + _configured_prefixes(result.request.config_path)
    module = result.module_name
    if any(module == p.rstrip(".") or module.startswith(p.rstrip(".") + ".") for p in prefixes if p):
        return []
    top = module.split(".")[0] + "."
    where = result.request.config_path or "providers.yaml"
    return [f"the registry loads classes only from {prefixes}: add {top!r} to registry.allowed_module_prefixes "
            f"in {where} (and make sure {result.request.root} is on the registry's PYTHONPATH) before "
            "`provider-registry check` or `serve`"]


def _configured_prefixes(path: Path | None) -> list[str]:
    if path is None or not path.exists():
        return []
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return list(((tree.get("registry") or {}).get("allowed_module_prefixes")) or [])
    except (yaml.YAMLError, OSError, AttributeError):
        return []


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


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


# -- the command line ---------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--type", dest="ptype", metavar="TYPE",
                   help="provider type: " + ", ".join(m.value for m in ProviderType))
    p.add_argument("--name", help="the provider's name in providers.yaml")
    p.add_argument("--class-name", help="the Python class (default: from --name and the type, e.g. MyEmbedder)")
    p.add_argument("--config-key", action="append", default=[], metavar="KEY=DEFAULT",
                   help="a config key the provider reads, with its default (repeatable; the default is YAML)")
    p.add_argument("--package-dir", default="providers/custom", help="where the module goes (default: %(default)s)")
    p.add_argument("--tests-dir", default="tests/custom", help="where its tests go (default: %(default)s)")
    p.add_argument("--config", default="config/providers.yaml", help="providers.yaml to add the entry to")
    p.add_argument("--no-config", action="store_true", help="do not touch providers.yaml")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--interactive", action="store_true",
                   help="prompt for what the flags leave out (the default when stdin is a terminal)")


def run(args: argparse.Namespace, ask: Callable[[str], str] = input) -> int:
    """``provider-registry add-provider``; 0 done, 1 failed, 2 a flag or an answer is wrong."""
    try:
        request = _request_from(args, ask)
        if request is None:
            print("nothing written", file=sys.stderr)
            return EXIT_FAILED
        result, notes = generate(request)
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    _report(result, notes)
    return 0


def _request_from(args: argparse.Namespace, ask: Callable[[str], str]) -> Request | None:
    config_path = None if args.no_config else Path(args.config)
    base = Request(ptype=ProviderType.EMBEDDING, name="", class_name="", package_dir=Path(args.package_dir),
                   tests_dir=Path(args.tests_dir), config_path=config_path, force=args.force)
    interactive = args.interactive or (sys.stdin.isatty() and not (args.ptype and args.name))
    if not interactive:
        return _from_flags(args, base)
    return Prompter(ask).fill(args, base)


def _from_flags(args: argparse.Namespace, request: Request) -> Request:
    for flag, value in (("--type", args.ptype), ("--name", args.name)):
        if not value:
            raise ScaffoldError("is required (or run add-provider in a terminal to be asked)", flag)
    request.ptype = _flag(parse_type, args.ptype, "--type")
    request.name = _flag(check_name, args.name, "--name")
    request.class_name = _flag(check_class_name, args.class_name or _default_class(request), "--class-name")
    request.config_keys = _config_keys(args.config_key, request.ptype)
    return request


def _default_class(request: Request) -> str:
    suggestion = suggest_class_name(request.name, request.ptype)
    if suggestion is None:
        raise ScaffoldError(f"no class name can be made from {request.name!r}; give one", "--class-name")
    return suggestion


def _flag(check: Callable[[str], Any], value: str, flag: str) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        raise ScaffoldError(str(exc), flag) from None


def _config_keys(items: list[str], ptype: ProviderType) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for item in items:
        key, value = _flag(lambda text: parse_config_key(text, ptype), item, "--config-key")
        if key in keys:
            raise ScaffoldError(f"{key!r} is given twice", "--config-key")
        keys[key] = value
    return keys


class Prompter:
    """Asks for what the flags left out; a wrong answer is explained and asked again."""

    def __init__(self, ask: Callable[[str], str]) -> None:
        self._ask = ask

    def fill(self, args: argparse.Namespace, request: Request) -> Request | None:
        request.ptype = _flag(parse_type, args.ptype, "--type") if args.ptype else self._type()
        taken = _taken_names(request.config_path, request.ptype)
        if args.name:
            request.name = _flag(check_name, args.name, "--name")
        else:
            request.name = self.ask("Provider name (its key in providers.yaml)", lambda t: _free_name(t, taken))
        if args.class_name:
            request.class_name = _flag(check_class_name, args.class_name, "--class-name")
        else:
            request.class_name = self.ask("Class name", check_class_name,
                                          suggest_class_name(request.name, request.ptype))
        request.config_keys = (_config_keys(args.config_key, request.ptype) if args.config_key
                               else self._config_keys(request.ptype))
        return request if self._confirm(request) else None

    def ask(self, question: str, check: Callable[[str], Any], default: str | None = None) -> Any:
        prompt = f"{question} [{default}]: " if default else f"{question}: "
        while True:
            answer = self._line(prompt).strip() or (default or "")
            try:
                return check(answer)
            except ValueError as exc:
                print(f"  {exc}; try again", flush=True)

    def _line(self, prompt: str) -> str:
        try:
            return self._ask(prompt)
        except EOFError:
            raise ScaffoldError("the input ended before every question was answered") from None

    def _type(self) -> ProviderType:
        print("Provider types:")
        for i, member in enumerate(ProviderType, start=1):
            print(f"  {i}) {member.value:<15} {TEMPLATES[member].iface}")
        return self.ask(f"Type (1-{len(ProviderType)} or a name)", parse_type)

    def _config_keys(self, ptype: ProviderType) -> dict[str, Any]:
        builtins = TEMPLATES[ptype].builtins
        if builtins:
            print("The placeholder reads: " + ", ".join(f"{k} ({b.comment})" for k, b in builtins.items()))
        print("Config keys, one KEY=DEFAULT per line (the default is YAML: 8, true, text); empty line to finish:")
        keys: dict[str, Any] = {}
        while True:
            line = self._line("  key> ").strip()
            if not line:
                return keys
            try:
                key, value = parse_config_key(line, ptype)
            except ValueError as exc:
                print(f"  {exc}; try again", flush=True)
                continue
            keys[key] = value

    def _confirm(self, request: Request) -> bool:
        print("Same without prompts: " + _command_line(request))
        answer = self._line("Write the provider, its tests and its config entry? [Y/n]: ").strip().lower()
        return answer in ("", "y", "yes")


def _taken_names(path: Path | None, ptype: ProviderType) -> set[str]:
    """Names already in the section, so the prompt can refuse them at once."""
    if path is None or not path.exists():
        return set()
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return set(((tree.get(ptype.value) or {}).get("providers")) or {})
    except (yaml.YAMLError, OSError, AttributeError):
        return set()  # plan() reports a broken file properly


def _free_name(text: str, taken: set[str]) -> str:
    name = check_name(text)
    if name in taken:
        raise ValueError(f"{name!r} is already in providers.yaml")
    return name


def _command_line(request: Request) -> str:
    parts = ["provider-registry", "add-provider", "--type", request.ptype.value, "--name", request.name,
             "--class-name", request.class_name]
    for key, value in request.config_keys.items():
        parts += ["--config-key", f"{key}={_yaml_scalar(value)}"]
    parts += ["--package-dir", str(request.package_dir), "--tests-dir", str(request.tests_dir)]
    parts += ["--config", str(request.config_path)] if request.config_path else ["--no-config"]
    return " ".join(shlex.quote(p) for p in parts)


def _report(result: Plan, notes: list[str]) -> None:
    root = result.request.root
    for path in result.files:
        print(f"wrote {_display(path, root)}")
    if result.config_edit is not None:
        print(f"added {result.request.ptype.value}/{result.request.name} to {result.request.config_path}")
    for note in notes:
        print(f"note: {note}")
    print("next:\n"
          f"  python -m pytest {_display(result.test_path, root)} -q   # passes as generated\n"
          f"  grep -n 'TODO:' {_display(result.module_path, root)}   # what a real implementation replaces")
    if result.request.config_path is not None:
        print(f"  provider-registry check --config {result.request.config_path}")
