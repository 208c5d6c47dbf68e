"""The temporal graph manager on the real Ladybug engine (in process, through a LocalRegistry)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from providers.errors import InvalidRequestError
from providers.graph.extractor import parse_extraction
from providers.graph.temporal_manager import TemporalGraphManager, entity_id_for
from providers.registry.dependencies import LocalRegistry
from providers.types import ProviderType

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
async def manager(tmp_path):
    from providers.graph.ladybug import LadybugGraphEngine

    engine = LadybugGraphEngine()
    await engine.initialize({"path": str(tmp_path / "graph.db")})
    m = TemporalGraphManager()
    m.registry = LocalRegistry({(ProviderType.GRAPH_ENGINE, "g"): engine})
    await m.initialize({"graph_engine": "g", "exclusive_relationships": ["WORKS_AT"], "max_depth": 3})
    yield m
    close = getattr(engine, "close", None)
    if close:
        await close()


def person(name):
    return {"name": name, "entity_type": "Person"}


def org(name):
    return {"name": name, "entity_type": "Organization"}


async def test_entities_merge_by_name_and_type(manager):
    a = await manager.add_episode("Alice joined Acme.", T0, [person("Alice"), org("Acme")],
                                  [{"source": "Alice", "target": "Acme", "type": "WORKS_AT"}], source="hr")
    b = await manager.add_episode("alice likes tea", T0 + timedelta(days=1),
                                  [{**person("alice"), "properties": {"drink": "tea"}}])
    assert a.entity_ids[0] == b.entity_ids[0] == entity_id_for("Alice", "Person")
    engine = await manager.engine()
    alice = await engine.get_entity(a.entity_ids[0])
    assert alice.properties["drink"] == "tea"
    facts = await manager.get_entity_relationships(alice.id)
    assert [f.relationship_type for f in facts] == ["WORKS_AT"]
    assert facts[0].properties["source"] == "hr" and facts[0].properties["episode_id"] == a.episode_id


async def test_an_exclusive_fact_ends_the_old_one_instead_of_deleting_it(manager):
    await manager.add_episode("Alice works at Acme.", T0, [person("Alice"), org("Acme")],
                              [{"source": "Alice", "target": "Acme", "type": "WORKS_AT"}])
    moved = T0 + timedelta(days=30)
    second = await manager.add_episode("Alice moved to Globex.", moved, [person("Alice"), org("Globex")],
                                       [{"source": "Alice", "target": "Globex", "type": "WORKS_AT"}])
    assert len(second.invalidated_relationship_ids) == 1
    alice = entity_id_for("Alice", "Person")
    now = [r.target_id for r in await manager.get_entity_relationships(alice, "WORKS_AT")]
    assert now == [entity_id_for("Globex", "Organization")]
    before = [r.target_id for r in await manager.get_entity_relationships(alice, "WORKS_AT", as_of=T0 + timedelta(days=1))]
    assert before == [entity_id_for("Acme", "Organization")]
    timeline = await manager.get_entity_timeline(alice)
    kinds = [(e["event"], e.get("type")) for e in timeline]
    assert ("fact_ended", "WORKS_AT") in kinds and kinds.count(("fact_started", "WORKS_AT")) == 2
    assert [e["time"] for e in timeline] == sorted(e["time"] for e in timeline)
    changes = await manager.get_changes(moved - timedelta(hours=1), moved + timedelta(hours=1))
    assert changes["relationships_ended"] == second.invalidated_relationship_ids
    assert entity_id_for("Globex", "Organization") in changes["entities"]
    stats = await manager.get_stats()
    assert stats["episodes"] == 2 and stats["invalidated_facts"] == 1


async def test_graph_as_of_and_neighbourhoods(manager):
    await manager.add_episode("Bob knows Carol.", T0, [person("Bob"), person("Carol")],
                              [{"source": "Bob", "target": "Carol", "type": "KNOWS"}])
    await manager.add_episode("Carol knows Dan.", T0 + timedelta(days=10), [person("Carol"), person("Dan")],
                              [{"source": "Carol", "target": "Dan", "type": "KNOWS"}])
    bob = entity_id_for("Bob", "Person")
    early = await manager.get_graph_as_of(T0 + timedelta(days=1), bob, max_depth=2)
    assert {e.name for e in early.entities} == {"Bob", "Carol"}
    late = await manager.get_connected_entities(bob, max_depth=2)
    assert {e.name for e in late.entities} == {"Carol", "Dan"}
    whole = await manager.get_graph_as_of(T0 + timedelta(days=1))
    assert {e.name for e in whole.entities} == {"Bob", "Carol"} and len(whole.relationships) == 1
    with pytest.raises(InvalidRequestError) as err:
        await manager.get_connected_entities(bob, max_depth=4)
    assert err.value.field == "max_depth"
    hits = await manager.search("carol")
    assert hits[0].entities[0].name == "Carol" and hits[0].score == 1.0


@pytest.mark.parametrize("relationships, field", [
    ([{"source": "Nobody", "target": "Zed", "type": "KNOWS"}], "relationships[0].source_id"),
    ([{"source": "Zed", "target": "Zed", "type": "bad type!"}], "relationships[0].relationship_type"),
    ([{"source": "Zed", "target": "Zed", "type": "MENTIONS"}], "relationships[0].relationship_type"),
])
async def test_bad_episodes_are_refused(manager, relationships, field):
    with pytest.raises(InvalidRequestError) as err:
        await manager.add_episode("x", T0, [person("Zed")], relationships)
    assert err.value.field == field


async def test_injection_through_names_is_stored_literally(manager):
    evil = "x'}) DETACH DELETE n //"
    result = await manager.add_episode(evil, T0, [person(evil)])
    engine = await manager.engine()
    assert (await engine.get_entity(result.entity_ids[0])).name == evil
    assert (await manager.get_stats())["episodes"] == 1


def test_extractor_answers_are_parsed_strictly():
    entities, rels = parse_extraction('```json\n{"entities": [{"name": "Ada", "entity_type": "Person"}, '
                                      '{"name": "", "entity_type": "X"}], "relationships": [{"source": "Ada", '
                                      '"target": "Analytical Engine", "type": "worked on"}]}\n```')
    assert [e.name for e in entities] == ["Ada"]
    assert rels[0].relationship_type == "WORKED_ON"
    from providers.errors import ProviderCallError

    with pytest.raises(ProviderCallError):
        parse_extraction("I cannot help with that.")
