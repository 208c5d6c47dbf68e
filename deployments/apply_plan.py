"""What ``provider-registry apply providers.yaml`` would change: the plan, without Ray.

`plan_apply` compares the live route table with a validated `RegistryConfig`
and returns the steps that make the registry follow the file, in the order
they must run:

1. ``register`` what is new, dependencies first;
2. ``swap`` what changed (a new version through the zero-downtime swap), or
   ``fallback`` where only the fallback list changed (no redeploy), in the
   same order;
3. ``delete`` what the file no longer names (only with ``prune``; else a
   ``keep`` row says what ``--prune`` would delete), dependents first.

A dependency is a ``depends_on`` reference, a store's ``embedder`` and a
fallback: each must exist before the route that names it, and may go only
after it. Changes to the ``registry:`` section cannot be applied to running
routers: they are ``restart`` rows, and nothing runs for them.

Specs compare as parsed models, so a provider registered at run time with
the spec the file gives is unchanged, and a second apply of one file plans
nothing to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel

from providers.errors import ConfigError
from providers.registry.config import (
    ProviderSpec,
    RegistryConfig,
    RegistrySettings,
    load_config,
    parse_config,
    parse_ref,
)
from providers.registry.redaction import REDACTED, is_secret_key, redact
from providers.registry.table import RouteTable, route_key
from providers.types import ProviderType

# The actions that change something; ``keep`` and ``restart`` rows only inform.
CHANGES = ("register", "swap", "fallback", "delete")
MAX_DETAILS = 4  # changed keys named in one row; the rest are counted


@dataclass(frozen=True)
class Step:
    """One row of the plan. ``spec`` is the file's (register, swap); ``fallback`` the new list."""

    action: str
    key: str
    detail: str = ""
    spec: ProviderSpec | None = None
    fallback: list[str] | None = None

    @property
    def changes(self) -> bool:
        return self.action in CHANGES

    def target(self) -> tuple[ProviderType, str]:
        ptype, _, name = self.key.partition("/")
        return ProviderType.parse(ptype), name

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "provider": self.key, "detail": self.detail}


@dataclass(frozen=True)
class Plan:
    steps: list[Step] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.changes]

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps], "unchanged": list(self.unchanged)}


def plan_apply(table: RouteTable, config: RegistryConfig, running: RegistrySettings, prune: bool = False) -> Plan:
    """The steps that make ``table`` (served under ``running`` settings) follow ``config``."""
    wanted = {route_key(t, n): s for t, n, s in config.specs()}
    current = {k: r.spec for k, r in table.routes.items()}
    registers, updates, unchanged = [], [], []
    for key in dependency_order(wanted):
        old, new = current.get(key), wanted[key]
        if old is None:
            registers.append(Step("register", key, f"class {new.class_path}", spec=new))
        elif old == new:
            unchanged.append(key)
        elif old.model_copy(update={"fallback": new.fallback}) == new:
            updates.append(Step("fallback", key, f"fallback: {_show('fallback', old.fallback)} -> {_show('fallback', new.fallback)}",
                                fallback=list(new.fallback)))
        else:
            updates.append(Step("swap", key, describe_changes(old, new), spec=new))
    removals = [_removal(key, prune, running) for key in reversed(dependency_order(current))
                if key not in wanted]
    return Plan(registers + updates + removals + restart_steps(running, config.registry), unchanged)


def _removal(key: str, prune: bool, running: RegistrySettings) -> Step:
    ptype, _, name = key.partition("/")
    if ProviderType.parse(ptype) is ProviderType.CACHE and name == running.embedding_cache.cache:
        # The running routers cache embeddings in it; the settings that name it change only with a restart.
        return Step("keep", key, "the running registry's embedding cache: restart without it first")
    if prune:
        return Step("delete", key, "not in the file")
    return Step("keep", key, "not in the file (--prune deletes it)")


def restart_steps(running: RegistrySettings, wanted: RegistrySettings) -> list[Step]:
    """One ``restart`` row per changed key of the ``registry:`` section."""
    return [Step("restart", path, f"{_show(path, old)} -> {_show(path, new)} (needs a restart; not applied)")
            for path, old, new in diff_values(running.model_dump(mode="json"), wanted.model_dump(mode="json"),
                                              "registry")]


def dependencies(key: str, spec: ProviderSpec) -> list[str]:
    """The routes ``spec`` names: depends_on, its embedder, its fallbacks."""
    ptype = ProviderType.parse(key.partition("/")[0])
    deps = [route_key(*parse_ref(ref)) for ref in spec.depends_on]
    if spec.embedder is not None:
        deps.append(route_key(ProviderType.EMBEDDING, spec.embedder))
    deps += [route_key(ptype, fb) for fb in spec.fallback]
    return deps


def dependency_order(specs: Mapping[str, ProviderSpec]) -> list[str]:
    """Keys with every dependency before its dependents; ties by key, so a plan is stable.

    ``depends_on`` may form a cycle (the loader does not forbid one): its
    members follow the rest in key order rather than failing the plan.
    """
    deps = {k: {d for d in dependencies(k, s) if d in specs and d != k} for k, s in specs.items()}
    order: list[str] = []
    ready = sorted(k for k, d in deps.items() if not d)
    while ready:
        key = ready.pop(0)
        order.append(key)
        for other in sorted(deps):
            if key in deps[other]:
                deps[other].discard(key)
                if not deps[other] and other not in order and other not in ready:
                    ready.append(other)
        ready.sort()
    return order + sorted(k for k in specs if k not in order)


def describe_changes(old: BaseModel, new: BaseModel) -> str:
    """``key: old -> new`` for the first changed keys (secret values masked)."""
    diffs = diff_values(old.model_dump(mode="json", by_alias=True), new.model_dump(mode="json", by_alias=True))
    shown = [f"{path}: {_show(path, a)} -> {_show(path, b)}" for path, a, b in diffs[:MAX_DETAILS]]
    more = len(diffs) - MAX_DETAILS
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def diff_values(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(key path, old, new) of every leaf that differs; a missing key reads as None."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += diff_values(old.get(k), new.get(k), f"{path}.{k}" if path else str(k))
        return out
    return [] if old == new else [(path, old, new)]


def _show(path: str, value: Any) -> str:
    # Rows are printed and returned over HTTP: a value under a secret-looking key never is.
    if any(is_secret_key(part) for part in path.split(".")) and value not in (None, ""):
        return REDACTED
    return yaml.safe_dump(redact(value), default_flow_style=True, width=10_000).strip().removesuffix("\n...")


def format_plan(steps: Iterable[Mapping[str, Any]], unchanged: Iterable[str] = ()) -> str:
    """The plan (or what was done) as the table the CLI prints."""
    rows = [("ACTION", "PROVIDER", "CHANGE")] + [(s["action"], s["provider"], s["detail"]) for s in steps]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{a.ljust(widths[0])}  {p.ljust(widths[1])}  {d}".rstrip() for a, p, d in rows]
    kept = list(unchanged)
    if len(rows) == 1:
        lines = ["nothing to do"]
    if kept:
        lines.append(f"{len(kept)} unchanged: " + ", ".join(kept))
    return "\n".join(lines)


def file_document(path: Any) -> dict[str, Any]:
    """A providers.yaml file as the mapping to send: read, ``${VAR}`` interpolated from this
    process's environment, validated (errors name the key path), every key explicit."""
    return load_config(path).model_dump(mode="json", by_alias=True)


def parse_apply_body(doc: Any, source: str = "config") -> RegistryConfig:
    """A providers.yaml mapping as sent to the router: already interpolated, taken as is."""
    return parse_config(doc, source=source, interpolate=False)


def parse_yaml_text(text: str, source: str = "body") -> RegistryConfig:
    """providers.yaml text sent to the router. ``${VAR:-default}`` takes its default and
    ``${VAR}`` is an error: the router never reads its own environment into a provider's
    config (an admin caller could otherwise copy any of the router's variables out)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # str(exc) quotes the offending line, which may hold a secret: position only.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source} is not valid YAML{where}: "
                          f"{getattr(exc, 'problem', None) or type(exc).__name__}") from None
    return parse_config(raw, env={}, source=source)
