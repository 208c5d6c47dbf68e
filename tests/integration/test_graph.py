"""The knowledge graph through the registry on real Ray and the real Ladybug
engine: HTTP, the temporal manager, read-only Cypher, and memory.store
recording entities through the manager."""

from __future__ import annotations

import httpx
import pytest

from providers.errors import ConfigError
from serve_app import ProviderType, provider_registry
from tests.integration.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.integration


def g(registry, path):
    return registry["http"] + "/v1/graph/people" + path


def test_entities_relationships_neighbours_and_paths(registry):
    ents = [{"id": f"p{i}", "name": f"Person {i}", "entity_type": "Person", "properties": {"n": i}} for i in range(5)]
    r = httpx.post(g(registry, "/entities"), json={"entities": ents}, timeout=60)
    assert r.status_code == 200, r.text
    rels = [{"id": f"k{i}", "source_id": f"p{i}", "target_id": f"p{i + 1}", "relationship_type": "KNOWS"}
            for i in range(4)] + [{"id": "loop", "source_id": "p4", "target_id": "p0", "relationship_type": "KNOWS"}]
    r = httpx.post(g(registry, "/relationships"), json={"relationships": rels}, timeout=60)
    assert r.status_code == 200, r.text
    assert httpx.get(g(registry, "/entities/p2"), timeout=60).json()["name"] == "Person 2"
    assert httpx.get(g(registry, "/entities/nope"), timeout=60).status_code == 404
    r = httpx.post(g(registry, "/entities"), json={"entities": [{"id": "org/acme", "name": "Acme", "entity_type": "Org"}]}, timeout=60)
    assert r.status_code == 200, r.text
    assert httpx.get(g(registry, "/entities/org%2Facme"), timeout=60).json()["name"] == "Acme"  # '/' is part of the id
    assert httpx.get(g(registry, "/neighbors/org%2Facme"), timeout=60).json()["entities"] == []
    r = httpx.get(g(registry, "/neighbors/p0"), params={"depth": 2}, timeout=60)
    assert r.status_code == 200, r.text
    names = {e["name"] for e in r.json()["entities"]}
    assert {"Person 1", "Person 2", "Person 4"} <= names and "Person 0" not in names
    r = httpx.get(g(registry, "/path"), params={"source": "p0", "target": "p3"}, timeout=60)
    assert r.status_code == 200 and r.json()["found"] is True  # the cycle p4 -> p0 does not loop forever
    assert httpx.get(g(registry, "/path"), params={"source": "p0", "target": "ghost"}, timeout=60).status_code == 404
    r = httpx.get(g(registry, "/neighbors/p0"), params={"depth": 50}, timeout=60)
    assert r.status_code == 400 and "depth" in r.json()["error"]["message"].lower()


def test_cypher_is_read_only_unless_admin(registry):
    read = {"query": "MATCH (e:Entity) WHERE e.id = $id RETURN e.name AS name", "parameters": {"id": "p1"}}
    r = httpx.post(g(registry, "/cypher"), json=read, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [{"name": "Person 1"}]
    write = {"query": "MATCH (e:Entity) WHERE e.id = 'p1' SET e.name = 'hacked'"}
    r = httpx.post(g(registry, "/cypher"), json=write, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "query"
    r = httpx.post(g(registry, "/cypher"), json={"query": "MATCH (e:Entity RETURN e"}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "query"  # the engine's syntax error
    r = httpx.post(g(registry, "/cypher"), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                   json={"query": "MATCH (e:Entity) WHERE e.id = $id SET e.confidence = 0.5", "parameters": {"id": "p1"}}, timeout=60)
    assert r.status_code == 200, r.text


def test_episodes_invalidate_facts_and_read_as_of(registry):
    base = "2024-03-01T00:00:00+00:00"
    ep = {"content": "Dana works at Initech.", "timestamp": base, "source": "crm",
          "entities": [{"name": "Dana", "entity_type": "Person"}, {"name": "Initech", "entity_type": "Organization"}],
          "relationships": [{"source": "Dana", "target": "Initech", "type": "WORKS_AT"}]}
    r = httpx.post(g(registry, "/episodes"), json=ep, timeout=60)
    assert r.status_code == 200, r.text
    dana = r.json()["entity_ids"][0]
    ep2 = {"content": "Dana now works at Hooli.", "timestamp": "2024-06-01T00:00:00+00:00",
           "entities": [{"name": "Dana", "entity_type": "Person"}, {"name": "Hooli", "entity_type": "Organization"}],
           "relationships": [{"source": "Dana", "target": "Hooli", "type": "WORKS_AT"}]}
    r = httpx.post(g(registry, "/episodes"), json=ep2, timeout=60)
    assert r.status_code == 200 and len(r.json()["invalidated_relationship_ids"]) == 1
    then = httpx.get(g(registry, f"/neighbors/{dana}"), params={"as_of": "2024-04-01T00:00:00Z"}, timeout=60).json()
    assert [e["name"] for e in then["entities"]] == ["Initech"]
    now = httpx.get(g(registry, f"/neighbors/{dana}"), timeout=60).json()
    assert [e["name"] for e in now["entities"]] == ["Hooli"]
    timeline = httpx.get(g(registry, f"/timeline/{dana}"), timeout=60).json()["events"]
    assert [e["event"] for e in timeline].count("fact_ended") == 1
    changes = httpx.get(g(registry, "/changes"), params={"start_time": "2024-05-01T00:00:00Z",
                                                         "end_time": "2024-07-01T00:00:00Z"}, timeout=60).json()
    assert len(changes["relationships_ended"]) == 1
    r = httpx.post(g(registry, "/episodes"), json={"content": "x", "relationships": [{"source": "A", "target": "B",
                                                                                      "type": "KNOWS"}]}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"].startswith("relationships[0]")


async def test_memory_store_records_entities_through_the_manager(registry):
    store = await provider_registry.get_provider(ProviderType.TOOL, "memory.store")
    result = await store.invoke({"memories": [{"content": "Erin founded Vandelay Industries."}],
                                 "entities": [{"name": "Erin", "entity_type": "Person"},
                                              {"name": "Vandelay Industries", "entity_type": "Organization"}],
                                 "relationships": [{"source": "Erin", "target": "Vandelay Industries",
                                                    "type": "FOUNDED"}]})
    assert result["stored"] == 1 and len(result["episode"]["entity_ids"]) == 2
    manager = await provider_registry.get_provider(ProviderType.GRAPH_MANAGER, "people")
    hits = await manager.search("Erin")
    assert hits[0].relationships[0].relationship_type == "FOUNDED"


async def test_ladybug_refuses_a_second_replica(registry, tmp_path):
    with pytest.raises(ConfigError, match="num_replicas"):
        await provider_registry.register_provider(
            ProviderType.GRAPH_ENGINE, "two-writers", "providers.graph.ladybug.LadybugGraphEngine",
            {"path": str(tmp_path / "g.db")}, deployment={"num_replicas": 2, "num_cpus": 0.1})
