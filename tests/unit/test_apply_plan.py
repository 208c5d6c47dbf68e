"""The apply planner (deployments/apply_plan.py), without Ray: a route table and a config in, steps out.

Plans are also *run* here on the real `RouteTable` (its with_route, with_fallback
and without check fallbacks, embedders and dependents exactly as the router's
commits do), so an order that would fail in the router fails here too.
"""

from __future__ import annotations

import copy

import pytest

from deployments.apply_plan import (
    dependency_order,
    file_document,
    format_plan,
    parse_apply_body,
    parse_yaml_text,
    plan_apply,
)
from providers.errors import ConfigError, InterpolationError
from providers.registry.config import parse_config
from providers.registry.table import Route, RouteTable
from providers.types import ProviderType

EMB = "providers.embeddings.hash.HashEmbedder"
STORE = "providers.vector_stores.memory.MemoryStore"


def base() -> dict:
    return {
        "registry": {"http_port": 8123},
        "embeddings": {"providers": {
            "a": {"class": EMB, "config": {"dimension": 8}, "deployment": {"num_cpus": 0.1}},
            "b": {"class": EMB, "config": {"dimension": 8}},
        }},
        "vector_stores": {"providers": {
            "docs": {"class": STORE, "embedder": "a"},
        }},
    }


def table_of(raw: dict) -> RouteTable:
    return RouteTable.from_config(parse_config(raw))


def plan(table: RouteTable, raw: dict, prune: bool = False, running: dict | None = None):
    cfg = parse_config(raw)
    settings = parse_config(running).registry if running is not None else cfg.registry
    return plan_apply(table, cfg, settings, prune)


def rows(p) -> list[tuple[str, str]]:
    return [(s.action, s.key) for s in p.steps]


def run(table: RouteTable, p) -> RouteTable:
    """Each step as the router commits it, on the real table (which refuses a bad order)."""
    for step in p.changes:
        ptype, name = step.target()
        if step.action == "register":
            table = table.with_route(Route(type=ptype, name=name, spec=step.spec, source="runtime"))
        elif step.action == "swap":
            old = table.get(ptype, name)
            table = table.with_route(Route(type=ptype, name=name, spec=step.spec, version=old.version + 1,
                                           source="runtime", previous=old.spec), replace=True)
        elif step.action == "fallback":
            table = table.with_fallback(ptype, name, step.fallback)
        else:
            table = table.without(ptype, name)
    return table


def test_the_same_file_plans_nothing():
    p = plan(table_of(base()), base())
    assert p.steps == [] and p.changes == []
    assert p.unchanged == ["embeddings/a", "embeddings/b", "vector_stores/docs"]
    assert format_plan(p.to_dict()["steps"], p.unchanged).splitlines() == [
        "nothing to do", "3 unchanged: embeddings/a, embeddings/b, vector_stores/docs"]


def test_a_provider_registered_at_run_time_with_the_files_spec_is_unchanged():
    raw = base()
    spec = parse_config(raw).embeddings.providers["b"]
    table = table_of(raw).without(ProviderType.EMBEDDING, "b")
    # registered later, swapped twice meanwhile: another version, source and rollback target
    table = table.with_route(Route(type=ProviderType.EMBEDDING, name="b", spec=spec, version=3,
                                   source="runtime", previous=spec.model_copy(update={"config": {}})))
    assert plan(table, raw).changes == []


def test_new_changed_fallback_only_and_removed():
    old = base()
    new = copy.deepcopy(old)
    emb = new["embeddings"]["providers"]
    emb["c"] = {"class": EMB, "config": {"dimension": 4}}
    emb["a"]["config"]["dimension"] = 12  # changed: a new version
    emb["b"]["fallback"] = ["c"]  # only the fallback list: no redeploy
    del new["vector_stores"]
    p = plan(table_of(old), new)
    assert rows(p) == [("register", "embeddings/c"), ("swap", "embeddings/a"), ("fallback", "embeddings/b"),
                       ("keep", "vector_stores/docs")]
    register, swap, fallback, keep = p.steps
    assert register.detail == f"class {EMB}" and register.spec.config == {"dimension": 4}
    assert swap.detail == "config.dimension: 8 -> 12" and swap.spec.config == {"dimension": 12}
    assert fallback.detail == "fallback: [] -> [c]" and fallback.fallback == ["c"] and fallback.spec is None
    assert keep.detail == "not in the file (--prune deletes it)" and not keep.changes
    assert rows(plan(table_of(old), new, prune=True))[-1] == ("delete", "vector_stores/docs")


def test_a_change_beside_the_fallback_list_is_a_swap():
    new = base()
    new["embeddings"]["providers"]["b"].update(fallback=["a"], deployment={"num_cpus": 0.5})
    (step,) = plan(table_of(base()), new).steps
    assert step.action == "swap" and step.detail == "deployment.num_cpus: 1.0 -> 0.5; fallback: [] -> [a]"


def test_dependencies_come_first_and_deletions_in_reverse():
    new = base()
    new["embeddings"]["providers"]["z-embedder"] = {"class": EMB, "fallback": ["y-fallback"]}
    new["embeddings"]["providers"]["y-fallback"] = {"class": EMB}
    new["vector_stores"]["providers"]["a-store"] = {"class": STORE, "embedder": "z-embedder"}
    new["tools"] = {"providers": {"a-tool": {"class": "providers.tools.x.T",
                                             "depends_on": ["vector_stores/a-store"]}}}
    p = plan(table_of(base()), new)
    assert rows(p) == [("register", "embeddings/y-fallback"), ("register", "embeddings/z-embedder"),
                       ("register", "vector_stores/a-store"), ("register", "tools/a-tool")]
    applied = run(table_of(base()), p)
    # and back: every one of them goes, dependents first, after nothing else needs them
    back = plan(applied, base(), prune=True)
    assert rows(back) == [("delete", "tools/a-tool"), ("delete", "vector_stores/a-store"),
                          ("delete", "embeddings/z-embedder"), ("delete", "embeddings/y-fallback")]
    assert run(applied, back).routes.keys() == table_of(base()).routes.keys()


def test_a_fallback_is_dropped_before_its_target_is_deleted():
    old = base()
    old["embeddings"]["providers"]["b"]["fallback"] = ["a"]
    old["vector_stores"]["providers"]["docs"]["embedder"] = "b"
    new = copy.deepcopy(old)
    del new["embeddings"]["providers"]["a"]
    new["embeddings"]["providers"]["b"]["fallback"] = []
    p = plan(table_of(old), new, prune=True)
    assert rows(p) == [("fallback", "embeddings/b"), ("delete", "embeddings/a")]
    run(table_of(old), p)  # in the other order, `without` refuses: a is b's fallback


def test_applying_the_plan_makes_the_next_plan_empty():
    new = base()
    new["embeddings"]["providers"]["a"]["config"] = {"dimension": 16}
    new["embeddings"]["providers"]["b"]["fallback"] = ["a"]
    new["embeddings"]["providers"]["c"] = {"class": EMB}
    del new["vector_stores"]
    table = run(table_of(base()), plan(table_of(base()), new, prune=True))
    again = plan(table, new, prune=True)
    assert again.steps == [] and again.unchanged == ["embeddings/a", "embeddings/b", "embeddings/c"]


def test_registry_section_changes_need_a_restart_and_apply_nothing():
    new = base()
    new["registry"].update(http_port=9000, max_top_k=50, router={"num_replicas": 2})
    p = plan(table_of(base()), new, running=base())
    assert rows(p) == [("restart", "registry.http_port"), ("restart", "registry.max_top_k"),
                       ("restart", "registry.router.num_replicas")]
    assert p.steps[0].detail == "8123 -> 9000 (needs a restart; not applied)"
    assert p.changes == []


def test_the_running_embedding_cache_is_never_pruned():
    running = base()
    running["cache"] = {"providers": {"shared": {"class": "providers.caches.memory.MemoryCache"}}}
    running["registry"]["embedding_cache"] = {"cache": "shared"}
    p = plan(table_of(running), base(), prune=True, running=running)
    assert ("keep", "cache/shared") in rows(p) and ("restart", "registry.embedding_cache.cache") in rows(p)
    assert p.changes == []


def test_secret_values_never_appear_in_a_plan():
    old = base()
    old["embeddings"]["providers"]["a"]["config"].update(api_key="sk-old-1234", url="http://u:pw-old@h/x")
    new = copy.deepcopy(old)
    new["embeddings"]["providers"]["a"]["config"].update(api_key="sk-new-5678", url="http://u:pw-new@h/x")
    (step,) = plan(table_of(old), new).steps
    text = format_plan([step.to_dict()])
    assert "config.api_key: *** -> ***" in text and "http://u:***@h/x" in text
    for secret in ("sk-old", "sk-new", "pw-old", "pw-new"):
        assert secret not in text


def test_format_plan_is_a_table():
    new = base()
    new["embeddings"]["providers"]["longer-name"] = {"class": EMB}
    new["embeddings"]["providers"]["a"]["config"]["dimension"] = 9
    p = plan(table_of(base()), new)
    lines = format_plan(p.to_dict()["steps"], p.unchanged).splitlines()
    assert lines[0].split() == ["ACTION", "PROVIDER", "CHANGE"]
    assert lines[1].split()[:2] == ["register", "embeddings/longer-name"]
    assert lines[2].split() == ["swap", "embeddings/a", "config.dimension:", "8", "->", "9"]
    assert lines[1].index("class") == lines[2].index("config") == lines[0].index("CHANGE")
    assert lines[3] == "2 unchanged: embeddings/b, vector_stores/docs"


def test_a_depends_on_cycle_keeps_every_provider():
    raw = {"tools": {"providers": {
        "x": {"class": "providers.tools.a.T", "depends_on": ["tools/y"]},
        "y": {"class": "providers.tools.a.T", "depends_on": ["tools/x"]},
        "w": {"class": "providers.tools.a.T"},
    }}}
    specs = {f"tools/{n}": s for n, s in parse_config(raw).tools.providers.items()}
    assert dependency_order(specs) == ["tools/w", "tools/x", "tools/y"]


def test_a_bad_body_names_the_key_path():
    bad = base()
    bad["embeddings"]["providers"]["a"]["deployment"]["num_cpus"] = -1
    with pytest.raises(ConfigError, match=r"embeddings\.providers\.a\.deployment\.num_cpus"):
        parse_apply_body(bad)
    bad = base()
    bad["vector_stores"]["providers"]["docs"]["embedder"] = "nope"
    with pytest.raises(ConfigError, match=r"vector_stores\.providers\.docs\.embedder: unknown"):
        parse_apply_body(bad)


def test_body_is_taken_as_is_and_yaml_text_reads_no_router_environment(monkeypatch):
    monkeypatch.setenv("APPLY_TEST_SECRET", "from-the-router")
    raw = {"embeddings": {"providers": {"a": {"class": EMB, "config": {"key": "${APPLY_TEST_SECRET}"}}}}}
    assert parse_apply_body(raw).embeddings.providers["a"].config == {"key": "${APPLY_TEST_SECRET}"}
    text = f"embeddings:\n  providers:\n    a:\n      class: {EMB}\n      config: {{key: '${{APPLY_TEST_SECRET}}'}}\n"
    with pytest.raises(InterpolationError, match="APPLY_TEST_SECRET"):
        parse_yaml_text(text)
    cfg = parse_yaml_text(text.replace("APPLY_TEST_SECRET}", "APPLY_TEST_SECRET:-dflt}"))
    assert cfg.embeddings.providers["a"].config == {"key": "dflt"}
    with pytest.raises(ConfigError, match="body is not valid YAML at line 3") as info:
        parse_yaml_text("embeddings:\n  providers: [sk-secret-9999\n")
    assert "sk-secret-9999" not in str(info.value)


def test_file_document_interpolates_here_and_names_bad_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("APPLY_TEST_DIM", "8")
    path = tmp_path / "providers.yaml"
    path.write_text(f"embeddings:\n  providers:\n    a:\n      class: {EMB}\n"
                    "      config: {dimension: '${APPLY_TEST_DIM}'}\n")
    doc = file_document(path)
    assert doc["embeddings"]["providers"]["a"]["config"] == {"dimension": "8"}
    assert parse_apply_body(doc) == parse_config(doc)  # what the router parses is what was validated here
    path.write_text(f"embeddings:\n  providers:\n    a:\n      class: {EMB}\n      deployment: {{num_gpu: 1}}\n")
    with pytest.raises(ConfigError, match=r"embeddings\.providers\.a\.deployment\.num_gpu: unknown key"):
        file_document(path)
