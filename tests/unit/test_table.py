"""The route table (providers/registry/table.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from providers.errors import ConfigError, ProviderExistsError, ProviderNotFoundError
from providers.registry.config import parse_config, parse_spec
from providers.registry.table import Route, RouteTable, config_hash, provider_app_name, route_key
from providers.types import ProviderType

E = ProviderType.EMBEDDING
MINILM = "providers.embeddings.sentence_transformers.SentenceTransformerProvider"


def raw_config(**embedders: dict[str, Any]) -> dict[str, Any]:
    return {
        "registry": {"app_name": "reg"},
        "embeddings": {"providers": {n: {"class": MINILM, **s} for n, s in embedders.items()}},
        "rerankers": {"providers": {"rr": {"class": MINILM}}},
    }


@pytest.fixture
def table() -> RouteTable:
    """a -> [b], b and c without fallbacks, plus one reranker."""
    return RouteTable.from_config(parse_config(raw_config(a={"fallback": ["b"]}, b={}, c={}), env={}))


def route(name: str, ptype: ProviderType = E, **spec: Any) -> Route:
    return Route(type=ptype, name=name, spec=parse_spec({"class": MINILM, **spec}), source="runtime")


def test_from_config(table: RouteTable) -> None:
    assert table.app_name == "reg"
    assert table.revision == 0
    assert table.names(E) == ["a", "b", "c"]
    assert table.names(ProviderType.RERANKER) == ["rr"]
    assert table.names(ProviderType.TOOL) == []
    assert set(table.routes) == {"embeddings/a", "embeddings/b", "embeddings/c", "rerankers/rr"}
    a = table.get(E, "a")
    assert (a.type, a.name, a.version, a.source) == (E, "a", 1, "config")
    assert a.spec.fallback == ["b"]
    assert a.key == "embeddings/a"


def test_get_accepts_type_as_string(table: RouteTable) -> None:
    assert table.get("embeddings", "b") is table.get(E, "b")


def test_get_unknown_lists_known_names(table: RouteTable) -> None:
    with pytest.raises(ProviderNotFoundError) as info:
        table.get(E, "ghost")
    text = str(info.value)
    assert "'ghost'" in text and "embeddings" in text
    assert "['a', 'b', 'c']" in text
    assert "rr" not in text  # names of other types are not offered


def test_get_unknown_of_empty_type_says_none(table: RouteTable) -> None:
    with pytest.raises(ProviderNotFoundError, match="known: none"):
        table.get(ProviderType.TOOL, "x")


def test_chain(table: RouteTable) -> None:
    assert table.chain(E, "a") == ["a", "b"]
    assert table.chain(E, "c") == ["c"]


def test_with_route_adds(table: RouteTable) -> None:
    new = table.with_route(route("d", fallback=["a"]))
    assert new.names(E) == ["a", "b", "c", "d"]
    assert new.chain(E, "d") == ["d", "a", "b"]
    assert table.names(E) == ["a", "b", "c"]  # the old table is unchanged


def test_with_route_on_existing_name_fails(table: RouteTable) -> None:
    with pytest.raises(ProviderExistsError, match="'b'"):
        table.with_route(route("b"))


def test_with_route_replace(table: RouteTable) -> None:
    new = table.with_route(route("b").model_copy(update={"version": 2}), replace=True)
    assert new.get(E, "b").version == 2
    assert new.get(E, "b").source == "runtime"


def test_same_name_different_type_is_not_taken(table: RouteTable) -> None:
    assert table.with_route(route("a", ProviderType.RERANKER)).names(ProviderType.RERANKER) == ["a", "rr"]


def test_with_route_with_unknown_fallback_fails(table: RouteTable) -> None:
    with pytest.raises(ProviderNotFoundError, match="'ghost'"):
        table.with_route(route("d", fallback=["ghost"]))


def test_with_route_fallback_of_another_type_fails(table: RouteTable) -> None:
    with pytest.raises(ProviderNotFoundError, match="'rr'"):
        table.with_route(route("d", fallback=["rr"]))


def test_with_fallback(table: RouteTable) -> None:
    new = table.with_fallback(E, "c", ["a"])
    assert new.chain(E, "c") == ["c", "a", "b"]
    assert new.revision == table.revision + 1


def test_with_fallback_cycle_fails(table: RouteTable) -> None:
    with pytest.raises(ConfigError, match="cycle b -> a -> b"):
        table.with_fallback(E, "b", ["a"])


def test_with_fallback_to_itself_fails(table: RouteTable) -> None:
    with pytest.raises(ConfigError, match="itself"):
        table.with_fallback(E, "c", ["c"])


def test_with_fallback_unknown_primary_or_fallback(table: RouteTable) -> None:
    with pytest.raises(ProviderNotFoundError, match="'ghost'"):
        table.with_fallback(E, "ghost", ["a"])
    with pytest.raises(ProviderNotFoundError, match="'ghost'"):
        table.with_fallback(E, "c", ["ghost"])


def test_with_fallback_can_clear(table: RouteTable) -> None:
    assert table.with_fallback(E, "a", []).chain(E, "a") == ["a"]


def test_without_removes(table: RouteTable) -> None:
    new = table.without(E, "c")
    assert new.names(E) == ["a", "b"]
    with pytest.raises(ProviderNotFoundError):
        new.get(E, "c")


def test_without_refuses_a_fallback_in_use(table: RouteTable) -> None:
    with pytest.raises(ConfigError) as info:
        table.without(E, "b")
    assert "'b'" in str(info.value) and "['a']" in str(info.value)


def test_without_allowed_once_no_longer_a_fallback(table: RouteTable) -> None:
    assert table.with_fallback(E, "a", []).without(E, "b").names(E) == ["a", "c"]


def test_without_unknown_fails(table: RouteTable) -> None:
    with pytest.raises(ProviderNotFoundError):
        table.without(E, "ghost")


def test_revision_increases_on_every_mutation(table: RouteTable) -> None:
    steps = [
        lambda t: t.with_route(route("d")),
        lambda t: t.with_route(route("d").model_copy(update={"version": 2}), replace=True),
        lambda t: t.with_fallback(E, "d", ["c"]),
        lambda t: t.with_monitoring(True),
        lambda t: t.with_monitoring(False),
        lambda t: t.with_fallback(E, "d", []),
        lambda t: t.without(E, "d"),
    ]
    revisions = [table.revision]
    current = table
    for step in steps:
        current = step(current)
        revisions.append(current.revision)
    assert revisions == list(range(table.revision, table.revision + len(steps) + 1))


def test_failed_mutation_leaves_table_unchanged(table: RouteTable) -> None:
    before = table.to_json()
    with pytest.raises(ConfigError):
        table.with_fallback(E, "b", ["a"])
    assert table.to_json() == before


def test_json_round_trip(table: RouteTable) -> None:
    changed = table.with_route(route("d", fallback=["a"], config={"k": [1, "two"], "api_key": "x"},
                                     deployment={"num_gpus": 0.25, "autoscaling_config": {"max_replicas": 3}},
                                     depends_on=["rerankers/rr"], metadata={"team": "search"})).with_monitoring(True)
    text = changed.to_json()
    back = RouteTable.from_json(text)
    assert back == changed
    assert back.to_json() == text
    assert RouteTable.from_json(text.encode()) == changed
    assert '"class":' in text  # the YAML spelling, so the JSON reads as a providers.yaml entry


def test_provider_app_name_format() -> None:
    assert provider_app_name("registry", E, "minilm", 3) == "registry--embeddings--minilm--v3"
    assert provider_app_name("reg", "rerankers", "x.y-z", 1) == "reg--rerankers--x.y-z--v1"


def test_route_key() -> None:
    assert route_key(E, "minilm") == "embeddings/minilm"
    assert route_key("EMBEDDING", "minilm") == "embeddings/minilm"


def test_seed_hash_changes_when_config_changes() -> None:
    base = parse_config(raw_config(a={}), env={})
    same = parse_config(raw_config(a={}), env={})
    changed_config = parse_config(raw_config(a={"config": {"batch_size": 8}}), env={})
    changed_deploy = parse_config(raw_config(a={"deployment": {"num_cpus": 2}}), env={})
    added = parse_config(raw_config(a={}, b={}), env={})
    h = RouteTable.from_config(base).seed_hash
    assert re.fullmatch(r"[0-9a-f]{16}", h)
    assert RouteTable.from_config(same).seed_hash == h
    others = [RouteTable.from_config(c).seed_hash for c in (changed_config, changed_deploy, added)]
    assert h not in others
    assert len(set(others)) == len(others)
    assert config_hash(base) == h
