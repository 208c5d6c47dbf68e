"""One behavioural suite for every graph engine (see conftest: Ladybug always,
Memgraph where MEMGRAPH_URL is set)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from providers.errors import InvalidRequestError
from providers.graph.cypher_lexer import is_read_only
from providers.interfaces.graph_engines import Entity, Relationship

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def ent(i: str, etype: str = "person", **props) -> Entity:
    return Entity(id=i, name=f"name-{i}", entity_type=etype, properties=props)


def rel(i: str, s: str, t: str, rtype: str = "KNOWS", props: dict | None = None, **kw) -> Relationship:
    return Relationship(id=i, source_id=s, target_id=t, relationship_type=rtype, properties=props or {}, **kw)


async def chain(engine, n: int, cycle: bool = False) -> None:
    """a0 -> a1 -> ... -> a{n-1} (-> a0 when cycle)."""
    await engine.create_entities([ent(f"a{i}") for i in range(n)])
    rels = [rel(f"r{i}", f"a{i}", f"a{i + 1}") for i in range(n - 1)]
    if cycle:
        rels.append(rel(f"r{n - 1}", f"a{n - 1}", "a0"))
    await engine.create_relationships(rels)


# -- entities --------------------------------------------------------------------------

async def test_entity_lifecycle(engine):
    assert await engine.create_entity(ent("e1", colour="red", n=3)) == "e1"
    got = await engine.get_entity("e1")
    assert (got.name, got.entity_type, got.properties, got.confidence) == ("name-e1", "person", {"colour": "red", "n": 3}, 1.0)
    assert got.created_at.tzinfo is not None and got.created_at == got.updated_at
    assert await engine.entity_exists("e1")

    await asyncio.sleep(0.002)
    assert await engine.update_entity(Entity(id="e1", name="new", entity_type="org", properties={"x": [1, 2]},
                                             confidence=0.5))
    upd = await engine.get_entity("e1")
    assert (upd.name, upd.entity_type, upd.properties, upd.confidence) == ("new", "org", {"x": [1, 2]}, 0.5)
    assert upd.created_at == got.created_at and upd.updated_at > got.updated_at

    assert await engine.delete_entity("e1")
    assert await engine.get_entity("e1") is None
    assert not await engine.entity_exists("e1")


async def test_create_merges_by_id_and_keeps_created_at(engine):
    await engine.create_entity(Entity(id="m", name="one", entity_type="t", created_at=T0))
    await engine.create_entity(Entity(id="m", name="two", entity_type="t"))
    got = await engine.get_entity("m")
    assert got.name == "two" and got.created_at == T0 and got.updated_at > T0
    assert (await engine.get_stats())["entities"] == 1


async def test_generated_id_when_none_given(engine):
    new_id = await engine.create_entity(Entity(id="", name="anon", entity_type="t"))
    assert new_id and (await engine.get_entity(new_id)).name == "anon"


async def test_batch_entities_in_input_order(engine):
    ids = [f"b{i:03d}" for i in reversed(range(50))]
    assert await engine.create_entities([ent(i) for i in ids]) == ids
    assert (await engine.get_stats())["entities"] == 50
    assert await engine.create_entities([]) == []


async def test_bad_batch_writes_nothing(engine):
    with pytest.raises(InvalidRequestError) as err:
        await engine.create_entities([ent("x1"), ent("x2"), ent("x1")])
    assert err.value.field == "entities[2].id"
    with pytest.raises(InvalidRequestError) as err:
        await engine.create_entities([ent("y1"), Entity(id="y2", name="n", entity_type="t", confidence=2.0)])
    assert err.value.field == "entities[1].confidence"
    with pytest.raises(InvalidRequestError) as err:
        await engine.create_entities([Entity(id="z", name="n", entity_type="t", properties={"f": object()})])
    assert err.value.field == "entities[0].properties"
    assert (await engine.get_stats())["entities"] == 0


async def test_unknown_ids_are_none_or_false(engine):
    assert await engine.get_entity("nope") is None
    assert await engine.update_entity(ent("nope")) is False
    assert await engine.delete_entity("nope") is False
    assert await engine.entity_exists("nope") is False
    assert await engine.get_relationship("nope") is None
    assert await engine.delete_relationship("nope") is False
    assert await engine.relationship_exists("nope") is False
    assert await engine.get_entity_relationships("nope") == []
    assert await engine.get_connected_entities("nope") == []
    assert await engine.find_path("nope", "nada") is None
    assert await engine.get_entity_timeline("nope") == []


async def test_invalid_ids_are_caller_errors(engine):
    for bad in ("", None, 5, "x" * 600, "a\x00b"):
        with pytest.raises(InvalidRequestError):
            await engine.get_entity(bad)
    with pytest.raises(InvalidRequestError) as err:
        await engine.update_entity(Entity(id="", name="n", entity_type="t"))
    assert err.value.field == "entity.id"


async def test_find_entities(engine):
    await engine.create_entities([ent("p1", k=1, tag="a"), ent("p2", k=12, tag="a"), ent("p3", k=1, tag="b"),
                                  ent("o1", "org", k=1), ent("p4", nested={"a": 1})])
    assert {e.id for e in await engine.find_entities("person")} == {"p1", "p2", "p3", "p4"}
    # '"k":1' is a substring of '"k":12': the exact comparison must drop p2
    assert {e.id for e in await engine.find_entities(properties={"k": 1})} == {"p1", "p3", "o1"}
    assert {e.id for e in await engine.find_entities("person", {"k": 1, "tag": "a"})} == {"p1"}
    assert [e.id for e in await engine.find_entities(properties={"nested": {"a": 1}})] == ["p4"]
    assert len(await engine.find_entities(limit=2)) == 2
    assert await engine.find_entities("nobody") == []
    with pytest.raises(InvalidRequestError) as err:
        await engine.find_entities(limit=0)
    assert err.value.field == "limit"


# -- relationships ---------------------------------------------------------------------------

async def test_relationship_lifecycle(engine):
    await engine.create_entities([ent("a"), ent("b")])
    rid = await engine.create_relationship(rel("ab", "a", "b", "WORKS_WITH", {"since": 2020}, confidence=0.7,
                                               valid_from=T0, valid_to=T0 + timedelta(days=1)))
    assert rid == "ab" and await engine.relationship_exists("ab")
    got = await engine.get_relationship("ab")
    assert (got.source_id, got.target_id, got.relationship_type, got.properties, got.confidence) == \
        ("a", "b", "WORKS_WITH", {"since": 2020}, 0.7)
    assert (got.valid_from, got.valid_to) == (T0, T0 + timedelta(days=1))
    assert await engine.delete_relationship("ab")
    assert await engine.get_relationship("ab") is None
    assert await engine.entity_exists("a") and await engine.entity_exists("b")


async def test_relationship_upsert_keeps_created_at(engine):
    await engine.create_entities([ent("a"), ent("b"), ent("c")])
    await engine.create_relationship(rel("r", "a", "b", created_at=T0))
    await engine.create_relationship(rel("r", "a", "c", "LIKES"))
    got = await engine.get_relationship("r")
    assert (got.target_id, got.relationship_type, got.created_at) == ("c", "LIKES", T0)
    assert (await engine.get_stats())["relationships"] == 1


async def test_relationship_between_missing_entities(engine):
    await engine.create_entity(ent("a"))
    with pytest.raises(InvalidRequestError) as err:
        await engine.create_relationship(rel("r", "a", "ghost"))
    assert err.value.field == "relationship.target_id"
    with pytest.raises(InvalidRequestError) as err:
        await engine.create_relationship(rel("r", "ghost", "a"))
    assert err.value.field == "relationship.source_id"
    with pytest.raises(InvalidRequestError) as err:
        await engine.create_relationships([rel("r1", "a", "a"), rel("r2", "a", "ghost")])
    assert err.value.field == "relationships[1].target_id"
    assert (await engine.get_stats())["relationships"] == 0  # the batch wrote nothing


async def test_batch_relationships_and_any_type(engine):
    await engine.create_entities([ent("a"), ent("b")])
    types = ["KNOWS", "has space", "ü-ñ", "`x`) DELETE", "123"]
    ids = await engine.create_relationships([rel(f"t{i}", "a", "b", t) for i, t in enumerate(types)])
    assert ids == [f"t{i}" for i in range(len(types))]
    assert sorted(r.relationship_type for r in await engine.get_entity_relationships("a")) == sorted(types)
    with pytest.raises(InvalidRequestError):
        await engine.create_relationships([rel("d", "a", "b"), rel("d", "b", "a")])


async def test_entity_relationships_by_direction_and_type(engine):
    await engine.create_entities([ent("x"), ent("y"), ent("z")])
    await engine.create_relationships([rel("xy", "x", "y"), rel("zx", "z", "x", "LIKES"), rel("xx", "x", "x")])
    ids = lambda rs: sorted(r.id for r in rs)  # noqa: E731
    assert ids(await engine.get_entity_relationships("x", direction="outgoing")) == ["xx", "xy"]
    assert ids(await engine.get_entity_relationships("x", direction="incoming")) == ["xx", "zx"]
    assert ids(await engine.get_entity_relationships("x")) == ["xx", "xy", "zx"]  # the self-loop once
    assert ids(await engine.get_entity_relationships("x", "LIKES")) == ["zx"]
    with pytest.raises(InvalidRequestError) as err:
        await engine.get_entity_relationships("x", direction="sideways")
    assert err.value.field == "direction"


async def test_delete_entity_removes_its_relationships(engine):
    await chain(engine, 3)
    assert await engine.delete_entity("a1")
    assert not await engine.relationship_exists("r0") and not await engine.relationship_exists("r1")
    assert (await engine.get_stats())["relationships"] == 0



async def test_relationship_found_by_id_after_its_source_changes(engine):
    await engine.create_entities([ent("a"), ent("b"), ent("c")])
    await engine.create_relationship(rel("r", "a", "b"))
    await engine.create_relationship(rel("r", "c", "b"))  # the upsert moves its source
    assert (await engine.get_relationship("r")).source_id == "c"
    assert [x.id for x in await engine.get_entity_relationships("a")] == []
    assert await engine.delete_entity("c")  # takes r with it
    assert not await engine.relationship_exists("r") and await engine.get_relationship("r") is None
    await engine.create_relationship(rel("r", "a", "b"))  # the id is free again
    assert (await engine.get_relationship("r")).source_id == "a"
    assert (await engine.get_stats())["relationships"] == 1


async def test_admin_cypher_writes_are_seen_by_id_lookups(engine):
    """execute_cypher writes around the engine's own bookkeeping; lookups by id still agree."""
    await engine.create_entities([ent("a"), ent("b")])
    await engine.execute_cypher("MATCH (a:Entity {id: 'a'}), (b:Entity {id: 'b'}) "
                                "CREATE (a)-[:RELATES {id: 'cy', type: 'T', properties: '{}'}]->(b)")
    assert (await engine.get_relationship("cy")).target_id == "b"
    await engine.execute_cypher("MATCH (:Entity)-[r:RELATES]->(:Entity) WHERE r.id = 'cy' SET r.id = 'cy2'")
    assert await engine.get_relationship("cy") is None and await engine.relationship_exists("cy2")
    await engine.execute_cypher("MATCH (:Entity)-[r:RELATES]->(:Entity) WHERE r.id = 'cy2' DELETE r "
                                "WITH 1 AS one MATCH (a:Entity {id: 'b'}), (b:Entity {id: 'a'}) "
                                "CREATE (a)-[:RELATES {id: 'back', type: 'T', properties: '{}'}]->(b)")
    assert not await engine.relationship_exists("cy2")
    assert (await engine.get_relationship("back")).source_id == "b"
    await engine.create_relationship(rel("cy2", "a", "b"))
    assert sorted(r.id for r in await engine.get_entity_relationships("a")) == ["back", "cy2"]

# -- traversal ----------------------------------------------------------------------------

async def test_connected_entities_depth_distinct_and_start_excluded(engine):
    await chain(engine, 5, cycle=True)
    await engine.create_entity(ent("hub"))
    await engine.create_relationships([rel("h0", "hub", "a0"), rel("h1", "hub", "a1")])  # a0, a1 reachable twice
    assert [e.id for e in await engine.get_connected_entities("a0")] == ["a1", "a4", "hub"]
    two = [e.id for e in await engine.get_connected_entities("a0", max_depth=2)]
    assert two == sorted(set(two)) and set(two) == {"a1", "a2", "a3", "a4", "hub"}
    assert "a0" not in [e.id for e in await engine.get_connected_entities("a0", max_depth=5)]


async def test_connected_entities_by_type(engine):
    await engine.create_entities([ent("s"), ent("k"), ent("l"), ent("kk")])
    await engine.create_relationships([rel("1", "s", "k", "KNOWS"), rel("2", "s", "l", "LIKES"),
                                       rel("3", "k", "kk", "KNOWS"), rel("4", "l", "kk", "LIKES")])
    assert [e.id for e in await engine.get_connected_entities("s", "KNOWS", max_depth=2)] == ["k", "kk"]
    assert [e.id for e in await engine.get_connected_entities("s", "LIKES", max_depth=1)] == ["l"]


async def test_depth_limits(engine):
    await chain(engine, 2)
    for call in (lambda d: engine.get_connected_entities("a0", max_depth=d),
                 lambda d: engine.find_path("a0", "a1", max_depth=d)):
        for bad in (0, -1, engine.cfg.max_depth + 1, 1.5, True):
            with pytest.raises(InvalidRequestError) as err:
                await call(bad)
            assert err.value.field == "max_depth"
        assert await call(engine.cfg.max_depth) is not None


async def test_find_path_shortest_in_order(engine):
    await chain(engine, 5)
    await engine.create_relationship(rel("short", "a1", "a3"))
    path = await engine.find_path("a0", "a4", max_depth=5)
    assert [e.id for e in path.entities] == ["a0", "a1", "a3", "a4"]
    assert [r.id for r in path.relationships] == ["r0", "short", "r3"]
    assert path.metadata["length"] == 3 and path.metadata["directions"] == ["outgoing"] * 3
    back = await engine.find_path("a4", "a0", max_depth=3)  # edges may be walked against their direction
    assert [e.id for e in back.entities] == ["a4", "a3", "a1", "a0"]
    assert back.metadata["directions"] == ["incoming"] * 3
    assert await engine.find_path("a0", "a4", max_depth=2) is None
    same = await engine.find_path("a2", "a2")
    assert [e.id for e in same.entities] == ["a2"] and same.relationships == []


async def test_cycles_terminate(engine):
    await chain(engine, 6, cycle=True)
    await engine.create_relationships([rel(f"back{i}", f"a{i + 1}", f"a{i}") for i in range(5)])
    await engine.create_entity(ent("island"))
    md = engine.cfg.max_depth
    assert await asyncio.wait_for(engine.find_path("a0", "island", max_depth=md), 30) is None
    found = await asyncio.wait_for(engine.get_connected_entities("a0", max_depth=md), 30)
    assert [e.id for e in found] == ["a1", "a2", "a3", "a4", "a5"]
    path = await engine.find_path("a0", "a3", max_depth=md)
    assert path.metadata["length"] == 3


# -- time -----------------------------------------------------------------------------------

async def test_timeline_ordering_and_window(engine):
    await engine.create_entities([Entity(id="t", name="t", entity_type="x", created_at=T0), ent("u")])
    await engine.create_relationships([
        rel("late", "t", "u", valid_from=T0 + timedelta(days=10)),
        rel("early", "u", "t", valid_from=T0 + timedelta(days=2), valid_to=T0 + timedelta(days=20)),
    ])
    events = await engine.get_entity_timeline("t")
    kinds = [(e["event"], e.get("relationship_id")) for e in events]
    assert kinds == [("entity_created", None), ("relationship_started", "early"), ("relationship_started", "late"),
                     ("relationship_ended", "early"), ("entity_updated", None)]
    times = [e["timestamp"] for e in events]
    assert times == sorted(times)
    window = await engine.get_entity_timeline("t", T0 + timedelta(days=1), T0 + timedelta(days=15))
    assert [(e["event"], e.get("relationship_id")) for e in window] == \
        [("relationship_started", "early"), ("relationship_started", "late")]
    with pytest.raises(InvalidRequestError) as err:
        await engine.get_entity_timeline("t", T0 + timedelta(days=2), T0)
    assert err.value.field == "end_time"


# -- injection ------------------------------------------------------------------------------

INJECTIONS = [
    "x'}) MATCH (n) DETACH DELETE n //",
    'x"}) MATCH (n) DETACH DELETE n //',
    "$id RETURN 1; MATCH (n) DETACH DELETE n",
    "`) DETACH DELETE n /*",
    "\\' OR 1=1 --",
]


async def test_injection_is_stored_literally(engine):
    await engine.create_entity(ent("keep"))
    for text in INJECTIONS:
        await engine.create_entity(Entity(id=text, name=text, entity_type=text, properties={text: text}))
        got = await engine.get_entity(text)
        assert (got.id, got.name, got.entity_type, got.properties) == (text, text, text, {text: text})
        assert [e.id for e in await engine.find_entities(text, {text: text})] == [text]
        await engine.create_relationship(rel(f"{text}-r", "keep", text, text, {text: text}))
        assert (await engine.get_relationship(f"{text}-r")).relationship_type == text
    stats = await engine.get_stats()
    assert stats["entities"] == len(INJECTIONS) + 1 and stats["relationships"] == len(INJECTIONS)
    assert await engine.entity_exists("keep")


# Everything a caller can send, through every method that takes it: each payload is data.
PAYLOADS = INJECTIONS + [
    "x' OR 1=1 //", 'x" OR 1=1 //', "`x`", "$id", "{id: 'keep'}", "x}) DETACH DELETE e //",
    "x]->() DELETE r //", "\\u0027}) MATCH (n) DETACH DELETE n //", "x */ MATCH (n) DETACH DELETE n /*",
    "x\nMATCH (n) DETACH DELETE n", "x\r\n// comment", "ünïcødé 表 𝔘", "x" * 250, ":RELATES", "e.id", "null",
    "true", "1", "*", "'", '"', "\\", "%s", "{}", "properties(e)", "') RETURN 1 UNION MATCH (n) RETURN n //",
]


async def test_injection_through_every_input_is_data(engine):
    """Ids, names, types, relationship types, property keys and values, find_entities' type and
    property filters, traversal and path endpoints, deletes, and execute_cypher's parameters:
    each payload is stored and matched literally, and the graph around it is untouched."""
    await engine.create_entities([ent("keep"), ent("keep2")])
    await engine.create_relationship(rel("keep-r", "keep", "keep2"))
    for text in PAYLOADS:
        rid = f"r-{text}"[:512]
        await engine.create_entity(Entity(id=text, name=text, entity_type=text, properties={text: text, "k": text}))
        await engine.create_relationship(rel(rid, "keep", text, text, {text: text}))
        got = await engine.get_entity(text)
        assert (got.id, got.name, got.entity_type, got.properties) == (text, text, text, {text: text, "k": text})
        assert await engine.entity_exists(text)
        assert [e.id for e in await engine.find_entities(entity_type=text)] == [text]
        assert [e.id for e in await engine.find_entities(properties={"k": text})] == [text]
        assert [e.id for e in await engine.find_entities(text, {text: text})] == [text]
        rels = await engine.get_entity_relationships(text, relationship_type=text)
        assert [(r.id, r.relationship_type, r.properties) for r in rels] == [(rid, text, {text: text})]
        assert [e.id for e in await engine.get_connected_entities("keep", relationship_type=text)] == [text]
        path = await engine.find_path("keep", text, max_depth=1)
        assert [e.id for e in path.entities] == ["keep", text]
        rows = await engine.execute_cypher(
            "MATCH (e:Entity) WHERE e.id = $v AND e.name = $v RETURN e.id AS id", {"v": text})
        assert rows == [{"id": text}]
        assert await engine.update_entity(Entity(id=text, name=text + "!", entity_type=text, properties={"k": text}))
    stats = await engine.get_stats()
    assert stats["entities"] == len(PAYLOADS) + 2 and stats["relationships"] == len(PAYLOADS) + 1
    assert (await engine.get_relationship("keep-r")).target_id == "keep2"
    for text in PAYLOADS:  # deletes by an injection id remove exactly that one
        assert await engine.delete_relationship(f"r-{text}"[:512])
        assert await engine.delete_entity(text)
    stats = await engine.get_stats()
    assert stats["entities"] == 2 and stats["relationships"] == 1
    assert await engine.relationship_exists("keep-r")


async def test_property_filters_cannot_be_forged_from_json_fragments(engine):
    """find_entities prefilters on the stored JSON text (CONTAINS); a key holding JSON
    syntax is escaped there and compared exactly after, so it cannot match another
    entity's properties."""
    await engine.create_entities([ent("admin", role="admin", x=1), ent("user", role="user")])
    for forged in ({'role":"admin","x': 1}, {'role":"admin': "x"}, {"role": 'admin","x":1'},
                   {'"role"': "admin"}, {"role\\": "admin"}):
        assert await engine.find_entities(properties=forged) == [], forged
    assert [e.id for e in await engine.find_entities(properties={"role": "admin"})] == ["admin"]


async def test_cypher_parameters_are_never_query_text(engine):
    """A read query's parameters may hold write clauses or a query's syntax: they stay values."""
    await engine.create_entities([ent("p1"), ent("p2")])
    for value in PAYLOADS:
        rows = await engine.execute_cypher("MATCH (e:Entity) WHERE e.id = $id RETURN e.id AS id", {"id": value})
        assert rows == []
        rows = await engine.execute_cypher("RETURN $v AS v", {"v": value})
        assert rows == [{"v": value}]
    assert (await engine.get_stats())["entities"] == 2


# -- raw Cypher -----------------------------------------------------------------------------

async def test_execute_cypher(engine):
    await engine.create_entities([ent("c1"), ent("c2", "org")])
    rows = await engine.execute_cypher(
        "MATCH (e:Entity) WHERE e.entity_type = $t RETURN e.id AS id, e.name AS name", {"t": "org"})
    assert rows == [{"id": "c2", "name": "name-c2"}]
    assert await engine.execute_cypher("MATCH (e:Entity) RETURN count(*) AS n;") == [{"n": 2}]


async def test_cypher_errors_are_caller_errors(engine):
    for bad in ("MATC (n) RETURN n", "MATCH (n:Entity) RETURN n.id AS id ORDER BY", "RETURN undefined_var"):
        with pytest.raises(InvalidRequestError) as err:
            await engine.execute_cypher(bad)
        assert err.value.field == "query" and str(err.value) != "query: "
    with pytest.raises(InvalidRequestError) as err:
        await engine.execute_cypher("RETURN 1; MATCH (n) DETACH DELETE n")
    assert err.value.field == "query"
    with pytest.raises(InvalidRequestError):
        await engine.execute_cypher("   ")


# -- health ---------------------------------------------------------------------------------

async def test_health_and_stats(engine):
    assert (await engine.health_check())["status"] == "healthy"
    await chain(engine, 3)
    await engine.create_entity(ent("o", "org"))
    stats = await engine.get_stats()
    assert stats["entities"] == 4 and stats["relationships"] == 2
    assert stats["entities_by_type"] == {"person": 3, "org": 1} and stats["relationships_by_type"] == {"KNOWS": 2}


# -- is_read_only (engine-independent) -------------------------------------------------------

@pytest.mark.parametrize("query", [
    "MATCH (n) RETURN n",
    "match (n:Entity) where n.name = 'CREATE (x)' return n",
    'MATCH (n) WHERE n.name = "DELETE n" RETURN n',
    "MATCH (n) // DETACH DELETE n\nRETURN n",
    "MATCH (n) /* SET n.x = 1 */ RETURN n",
    "MATCH (n) RETURN n.set AS s, $delete AS d",
    "MATCH (n:`CREATE`) RETURN n",
    "OPTIONAL MATCH (n) WITH n UNWIND [1,2] AS x RETURN x",
    "CALL show_tables() RETURN *",
    "CALL db.labels()",
    "MATCH (n) RETURN 'it''s; fine' AS s;",
    "RETURN 'a\\'; DELETE' AS s",
])
def test_is_read_only_accepts(query):
    assert is_read_only(query)


@pytest.mark.parametrize("query", [
    "CREATE (n:Entity {id: 'x'})",
    "MATCH (n) DETACH DELETE n",
    "MATCH (n) SET n.x = 1",
    "MATCH (n) REMOVE n.x",
    "MERGE (n:Entity {id: 'x'})",
    "MATCH (n) RETURN n; MATCH (n) DELETE n",
    "DROP TABLE Entity",
    "ALTER TABLE Entity ADD x STRING",
    "COPY Entity FROM 'x.csv'",
    "LOAD FROM 'x.csv' RETURN *",
    "LOAD CSV FROM 'x.csv' AS row RETURN row",
    "INSTALL json",
    "CALL some.write_procedure()",
    "CALL { MATCH (n) DELETE n }",
    "MATCH (n) CALL apoc.create.node(['X'], {}) YIELD node RETURN node",
    "MATCH (n) FOREACH (x IN [1] | CREATE (m))",
    "MATCH (n) RETURN n /* unterminated",
    "",
    "   ",
    "EXPORT DATABASE 'x'",
    "BEGIN TRANSACTION",
])
def test_is_read_only_rejects(query):
    assert not is_read_only(query)
