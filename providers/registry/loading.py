"""Load a provider class by dotted path, only from allowlisted modules, and check it.

The allowlist is checked on the *string* before anything is imported: importing
is already running code, so ``os:system`` must be refused without touching
``os``. Prefixes match whole module components (``providers.`` allows
``providers.embeddings.x`` but not ``providers_evil``).
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterable

from providers.errors import InterfaceError, ModuleNotAllowedError, ProviderLoadError
from providers.interfaces import interface_for, shape_of
from providers.types import ProviderType

# Used with fullmatch: re's "$" also matches before a final "\n", which let
# "providers.x\n:Y" through to the allowlist and importlib.
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def split_class_path(class_path: str) -> tuple[str, str]:
    """``pkg.mod.Class`` or ``pkg.mod:Class`` -> ``("pkg.mod", "Class")``."""
    text = str(class_path).strip()
    if ":" in text:
        module, _, attr = text.partition(":")
    else:
        module, _, attr = text.rpartition(".")
    if not module or not attr or not _DOTTED.fullmatch(module) or not _DOTTED.fullmatch(attr) or "." in attr:
        raise ProviderLoadError(
            f"invalid class path {class_path!r}: expected 'package.module.Class' or 'package.module:Class'"
        )
    return module, attr


def check_allowed(module: str, prefixes: Iterable[str]) -> None:
    allowed = [p for p in prefixes if p]
    for prefix in allowed:
        stem = prefix.rstrip(".")
        if module == stem or module.startswith(stem + "."):
            return
    raise ModuleNotAllowedError(
        f"module {module!r} is not in the allowed module prefixes {allowed}; "
        "add its prefix under registry.allowed_module_prefixes to allow it"
    )


def load_provider_class(class_path: str, ptype: ProviderType, prefixes: Iterable[str]) -> type:
    """Import ``class_path`` (if allowed) and check it implements ``ptype``'s interface."""
    module_name, attr = split_class_path(class_path)
    allowed = [p for p in prefixes if p]  # a generator would be spent by the first check
    check_allowed(module_name, allowed)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProviderLoadError(f"cannot import module {module_name!r} for {class_path!r}: {exc}") from exc
    except Exception as exc:  # a provider module that fails at import time
        raise ProviderLoadError(
            f"importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    cls = getattr(module, attr, None)
    if cls is None:
        raise ProviderLoadError(f"module {module_name!r} has no attribute {attr!r}")
    if not inspect.isclass(cls):
        raise ProviderLoadError(f"{class_path!r} is not a class")
    # The code that runs is the class's, wherever it was imported into: an allowed
    # module that merely imports a class from elsewhere must not vouch for it.
    try:
        check_allowed(cls.__module__, allowed)
    except ModuleNotAllowedError:
        raise ModuleNotAllowedError(
            f"{class_path!r} is {cls.__module__}.{cls.__qualname__}, defined outside the allowed module "
            f"prefixes {allowed}; name the class where it is defined, under an allowed prefix"
        ) from None
    validate_provider_class(cls, ProviderType.parse(ptype))
    return cls


def validate_provider_class(cls: type, ptype: ProviderType) -> None:
    """Raise `InterfaceError` naming every method of the interface that ``cls`` lacks.

    A class need not inherit from the ABC (duck typing is fine), but it must
    have every method, with the same async-ness, and must not be abstract.
    """
    iface = interface_for(ptype)
    shape = shape_of(ptype)
    missing, wrong_kind = [], []
    for name in sorted(shape.async_methods | shape.sync_methods):
        member = getattr(cls, name, None)
        if member is None or not callable(member):
            missing.append(name)
        elif (name in shape.async_methods) != inspect.iscoroutinefunction(member):
            wrong_kind.append(f"{name} ({'async' if name in shape.async_methods else 'sync'} expected)")
    if getattr(cls, "__abstractmethods__", None):
        missing.extend(sorted(set(cls.__abstractmethods__) - set(missing)))
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing))
    if wrong_kind:
        problems.append("wrong kind " + ", ".join(wrong_kind))
    if problems:
        raise InterfaceError(
            f"{cls.__module__}.{cls.__qualname__} does not implement {iface.__name__} "
            f"({ptype.value}): " + "; ".join(problems)
        )
