"""Checks of single values, shared by the flags and the prompts.

The ``parse_*`` / ``check_*`` functions raise ``ValueError`` saying why (a
prompt prints it and asks again); `from_flag` turns that into a
`ScaffoldError` naming the flag.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from providers.types import ProviderType
from serve_app.scaffold.catalog import SPECS
from serve_app.scaffold.model import ScaffoldError

_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Values a default may take: what both YAML and Python literals express the same way.
_PLAIN = (str, int, float, bool, type(None), list, dict)


def parse_type(text: str) -> ProviderType:
    """A section name (``embeddings``), an enum name (``EMBEDDING``) or a number from the type menu."""
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
    builtin = SPECS[ptype].builtins.get(key) if ptype else None
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
    suffix = SPECS[ptype].class_suffix
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


def from_flag(check: Callable[[str], Any], value: str, flag: str) -> Any:
    """``check(value)``, its ``ValueError`` turned into a `ScaffoldError` naming ``flag``."""
    try:
        return check(value)
    except ValueError as exc:
        raise ScaffoldError(str(exc), flag) from None


def config_keys_from_flags(items: list[str], ptype: ProviderType) -> dict[str, Any]:
    """The ``--config-key KEY=DEFAULT`` flags, each checked; a key given twice is an error."""
    keys: dict[str, Any] = {}
    for item in items:
        key, value = from_flag(lambda text: parse_config_key(text, ptype), item, "--config-key")
        if key in keys:
            raise ScaffoldError(f"{key!r} is given twice", "--config-key")
        keys[key] = value
    return keys
