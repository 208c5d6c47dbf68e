"""Provider names are validated wherever they enter: providers.yaml (keys, fallback,
depends_on) and run-time registration (Python API, admin HTTP, both through
`RouteTable.with_route`). A name becomes part of a Serve application name
(``<app>--<type>--<name>--v<N>``) and of log lines, so it is plain text only.
"""

from __future__ import annotations

import pytest

from providers.errors import ConfigError
from providers.registry.config import ProviderSpec, is_valid_name, parse_config
from providers.registry.table import Route, RouteTable
from providers.types import ProviderType

BAD_NAMES = ["hash\n", "a b", "", "-x", "x/y", "x--v2\n", "tаble", "ｘ", "x\x00", "x;rm", "a" * 64, "../x"]
GOOD_NAMES = ["hash", "memory.search", "e5-large", "A1_b.c-d", "a" * 63]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names(name):
    assert not is_valid_name(name)


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(name):
    assert is_valid_name(name)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_config_refuses_bad_provider_names(name):
    with pytest.raises(ConfigError, match="embeddings.providers"):
        parse_config({"embeddings": {"providers": {name: {"class": "a.B"}}}}, env={})


@pytest.mark.parametrize("where", ["fallback", "depends_on"])
def test_config_refuses_a_trailing_newline_in_references(where):
    value = ["hash\n"] if where == "fallback" else ["embeddings/hash\n"]
    doc = {"embeddings": {"providers": {"hash": {"class": "a.B"}, "x": {"class": "a.B", where: value}}}}
    with pytest.raises(ConfigError, match=where):
        parse_config(doc, env={})


@pytest.mark.parametrize("name", BAD_NAMES)
def test_run_time_registration_refuses_bad_names(name):
    """What register_provider (Python API and admin HTTP) does first: the table refuses."""
    route = Route(type=ProviderType.EMBEDDING, name=name, spec=ProviderSpec.model_validate({"class": "a.B"}),
                  source="runtime")
    with pytest.raises(ConfigError, match="invalid provider name"):
        RouteTable(app_name="registry").with_route(route)


def test_run_time_registration_accepts_good_names():
    table = RouteTable(app_name="registry")
    for name in GOOD_NAMES:
        table = table.with_route(Route(type=ProviderType.EMBEDDING, name=name,
                                       spec=ProviderSpec.model_validate({"class": "a.B"})))
    assert table.names(ProviderType.EMBEDDING) == sorted(GOOD_NAMES)
