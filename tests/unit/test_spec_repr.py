"""A provider spec's repr (and str) never shows its config's secrets: tracebacks, pytest's
assertion rewriting and f-strings print specs, routes and whole configs."""

from __future__ import annotations

from providers.registry.config import ProviderSpec, parse_config
from providers.registry.table import Route, RouteTable
from providers.types import ProviderType

KEY = "sk-" + "repr-7c2e9a4b1d"
DSN = "postgresql://app:" + "pw-repr-51f0e3" + "@db:5432/memories"


def spec() -> ProviderSpec:
    return ProviderSpec.model_validate({"class": "a.B", "config": {"api_key": KEY, "connection_string": DSN,
                                                                   "batch_size": 16}})


def test_spec_repr_and_str_redact_the_config():
    for text in (repr(spec()), str(spec()), f"{spec()!r}"):
        assert KEY not in text and "pw-repr-51f0e3" not in text
        assert "batch_size" in text and "***" in text and "db:5432" in text  # the rest stays readable


def test_routes_tables_and_configs_redact_too():
    route = Route(type=ProviderType.EMBEDDING, name="x", spec=spec(), previous=spec())
    config = parse_config({"embeddings": {"providers": {"x": {"class": "a.B", "config": {"api_key": KEY}}}}}, env={})
    table = RouteTable(app_name="registry").with_route(route)
    for text in (repr(route), repr(config), str(config), repr(table)):
        assert KEY not in text


def test_the_values_themselves_are_untouched():
    assert spec().config["api_key"] == KEY and spec().model_dump()["config"]["connection_string"] == DSN
