"""The route table: which Serve application serves each ``(type, name)``.

Plain data, serialisable to JSON, so it can live outside any one process (the
router keeps it in Ray's GCS key-value store; see `deployments.table_store`)
and be rebuilt identically in every router replica. Each mutation returns a
new table with ``revision`` bumped: replicas compare revisions to know they
are stale.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from providers.errors import ConfigError, ProviderExistsError, ProviderNotFoundError
from providers.registry.config import NAME_PATTERN, ProviderSpec, RegistryConfig, fallback_chain, is_valid_name
from providers.types import ProviderType


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: ProviderType
    name: str
    spec: ProviderSpec
    version: int = Field(1, ge=1, description="Bumped by every redeploy (reload, swap).")
    source: str = Field("config", description="'config' (providers.yaml) or 'runtime'.")
    previous: ProviderSpec | None = Field(None, description="The spec this version replaced (rollback target).")

    @property
    def key(self) -> str:
        return route_key(self.type, self.name)


class RouteTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_name: str
    revision: int = 0
    seed_hash: str = Field("", description="Hash of the config this table was seeded from.")
    monitoring: bool = Field(False, description="Whether health monitoring is on.")
    routes: dict[str, Route] = Field(default_factory=dict)

    # -- reading -----------------------------------------------------------
    def get(self, ptype: ProviderType, name: str) -> Route:
        route = self.routes.get(route_key(ptype, name))
        if route is None:
            known = self.names(ptype)
            raise ProviderNotFoundError(
                f"no {ProviderType.parse(ptype).value} provider named {name!r}; "
                f"known: {known if known else 'none'}"
            )
        return route

    def names(self, ptype: ProviderType) -> list[str]:
        ptype = ProviderType.parse(ptype)
        return sorted(r.name for r in self.routes.values() if r.type == ptype)

    def chain(self, ptype: ProviderType, name: str) -> list[str]:
        """``name`` followed by its fallback chain."""
        self.get(ptype, name)
        return [name] + fallback_chain(name, self._fallback_map(ptype))

    def _fallback_map(self, ptype: ProviderType) -> dict[str, list[str]]:
        return {r.name: r.spec.fallback for r in self.routes.values() if r.type == ptype}

    # -- changing (each returns a new table) --------------------------------
    def with_route(self, route: Route, replace: bool = False) -> RouteTable:
        # Run-time registrations (Python API, admin HTTP) name providers too; the name
        # becomes part of a Serve application name, so it obeys providers.yaml's rule.
        if not is_valid_name(route.name):
            raise ConfigError(f"invalid provider name {route.name!r} (allowed: {NAME_PATTERN})",
                              f"{route.type.value}.providers")
        if route.key in self.routes and not replace:
            raise ProviderExistsError(
                f"a {route.type.value} provider named {route.name!r} already exists; "
                "reload it or delete it first"
            )
        routes = dict(self.routes)
        routes[route.key] = route
        table = self._next(routes=routes)
        for fb in route.spec.fallback:
            table.get(route.type, fb)  # unknown fallback names fail here
        if route.spec.embedder is not None:
            path = f"{route.type.value}.providers.{route.name}.embedder"
            if route.type is not ProviderType.VECTOR_STORE:
                raise ConfigError("only vector stores take an embedder", path)
            if route_key(ProviderType.EMBEDDING, route.spec.embedder) not in routes:
                raise ConfigError(f"unknown embeddings provider {route.spec.embedder!r}; "
                                  f"known: {table.names(ProviderType.EMBEDDING)}", path)
        table.chain(route.type, route.name)  # and cycles here
        return table

    def without(self, ptype: ProviderType, name: str) -> RouteTable:
        route = self.get(ptype, name)
        users = [r.name for r in self.routes.values() if r.type == route.type and name in r.spec.fallback]
        if users:
            raise ConfigError(f"{route.type.value} provider {name!r} is the fallback of {users}")
        dependents = [r.key for r in self.routes.values()
                      if route.key in r.spec.depends_on
                      or (route.type is ProviderType.EMBEDDING and r.spec.embedder == name)]
        if dependents:
            raise ConfigError(f"{route.key} is a dependency of {dependents}")
        routes = {k: v for k, v in self.routes.items() if k != route.key}
        return self._next(routes=routes)

    def with_fallback(self, ptype: ProviderType, primary: str, fallbacks: list[str]) -> RouteTable:
        route = self.get(ptype, primary)
        path = f"{route.type.value}.providers.{primary}.fallback"
        if primary in fallbacks:
            raise ConfigError("a provider cannot fall back to itself", path)
        if len(set(fallbacks)) != len(fallbacks):
            raise ConfigError("fallback lists a name twice", path)
        spec = route.spec.model_copy(update={"fallback": list(fallbacks)})
        return self.with_route(route.model_copy(update={"spec": spec}), replace=True)

    def with_monitoring(self, on: bool) -> RouteTable:
        return self._next(monitoring=on)

    def _next(self, **changes: Any) -> RouteTable:
        return self.model_copy(update={"revision": self.revision + 1, **changes})

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> RouteTable:
        return cls.model_validate_json(text)

    @classmethod
    def from_config(cls, config: RegistryConfig) -> RouteTable:
        routes = {
            route_key(t, n): Route(type=t, name=n, spec=s, source="config")
            for t, n, s in config.specs()
        }
        return cls(app_name=config.registry.app_name, routes=routes, seed_hash=config_hash(config))


def route_key(ptype: ProviderType | str, name: str) -> str:
    return f"{ProviderType.parse(ptype).value}/{name}"


def config_hash(config: RegistryConfig) -> str:
    blob = json.dumps(config.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def provider_app_name(registry_app: str, ptype: ProviderType, name: str, version: int) -> str:
    """Serve application name of one version of one provider."""
    return f"{registry_app}--{ProviderType.parse(ptype).value}--{name}--v{version}"
