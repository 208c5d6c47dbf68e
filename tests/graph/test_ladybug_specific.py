"""What only the embedded Ladybug engine does: files, locks, read-only opens, replicas."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from providers.errors import ConfigError, InvalidRequestError, ProviderCallError
from providers.graph.ladybug import LadybugGraphClient, LadybugGraphEngine
from providers.interfaces.graph_engines import Entity, Relationship

# A second process opening the same path; prints what happened.
OPEN_ELSEWHERE = r"""
import sys, ladybug
try:
    db = ladybug.Database(sys.argv[1], read_only=sys.argv[2] == "ro")
    rows = ladybug.Connection(db).execute("MATCH (e:Entity) RETURN count(*)").get_all()
    print("opened", rows[0][0])
except RuntimeError as exc:
    print("refused", exc)
"""


def open_elsewhere(path: Path, mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", OPEN_ELSEWHERE, str(path), mode],
                          capture_output=True, text=True, timeout=120)
    return done.stdout.strip()


async def engine_at(path: Path, **config) -> LadybugGraphEngine:
    engine = LadybugGraphEngine()
    await engine.initialize({"path": str(path), **config})
    return engine


async def test_persists_across_reopening(tmp_path):
    path = tmp_path / "deep" / "dir" / "graph.db"  # parents are created
    first = await engine_at(path)
    await first.create_entities([Entity(id="a", name="A", entity_type="t", properties={"k": [1, 2]}),
                                 Entity(id="b", name="B", entity_type="t")])
    await first.create_relationship(Relationship(id="ab", source_id="a", target_id="b", relationship_type="R"))
    await first.close()
    await first.close()  # safe twice

    again = await engine_at(path)
    try:
        assert (await again.get_entity("a")).properties == {"k": [1, 2]}
        assert (await again.get_relationship("ab")).target_id == "b"
        await again.create_entity(Entity(id="c", name="C", entity_type="t"))  # schema creation is idempotent
        assert (await again.get_stats())["entities"] == 3
    finally:
        await again.close()


def test_max_replicas_is_one():
    for cls in (LadybugGraphEngine, LadybugGraphClient):
        assert cls.max_replicas({}) == 1
        assert cls.max_replicas({"path": "/tmp/x.db", "read_only": True}) == 1


async def test_single_writer_between_processes(tmp_path):
    """Observed with ladybug 0.22: a read-write open takes an exclusive file lock.
    A second process's read-write open fails at once ("Could not set lock on
    file ... Lock is held by PID n"), it does not wait; a read-only open is let in
    and sees the checkpointed data. After close() the lock is free again.
    The registry relies on max_replicas() == 1 rather than on this error."""
    path = tmp_path / "graph.db"
    engine = await engine_at(path)
    await engine.create_entity(Entity(id="a", name="A", entity_type="t"))
    try:
        refused = open_elsewhere(path, "rw")
        assert refused.startswith("refused") and "lock" in refused.lower(), refused
        assert open_elsewhere(path, "ro").startswith("opened"), "a read-only open may share the file"
    finally:
        await engine.close()
    assert open_elsewhere(path, "rw") == "opened 1"


def hold_lock(path: Path) -> subprocess.Popen:
    """Another process with the database open read-write until its stdin closes."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, ladybug; db = ladybug.Database(sys.argv[1]); "
         "ladybug.Connection(db).execute('RETURN 1'); print('held', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


async def test_engine_open_while_another_process_writes(tmp_path):
    """Past lock_wait_s, initialize() reports the lock as a ProviderCallError naming the setting."""
    path = tmp_path / "graph.db"
    holder = hold_lock(path)
    try:
        start = time.monotonic()
        with pytest.raises(ProviderCallError) as err:
            await engine_at(path, lock_wait_s=0.5)
        assert "lock" in str(err.value).lower() and "config.lock_wait_s" in str(err.value)
        assert 0.5 <= time.monotonic() - start < 60  # waited lock_wait_s, then gave up (not a hang)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


async def test_engine_open_waits_for_the_lock_to_be_released(tmp_path):
    """A replica restarted while another process briefly holds the file starts as soon as it is free."""
    path = tmp_path / "graph.db"
    holder = hold_lock(path)
    release = threading.Timer(1.0, holder.stdin.close)
    release.start()
    try:
        engine = await engine_at(path, lock_wait_s=120)  # a deadline; the lock goes after about 1 s
        assert (await engine.health_check())["status"] == "healthy"
        await engine.close()
    finally:
        release.join()
        holder.wait(timeout=60)


async def test_read_only(tmp_path):
    path = tmp_path / "graph.db"
    with pytest.raises(ConfigError) as err:  # nothing to open yet
        await engine_at(path, read_only=True)
    assert "config.path" in str(err.value)
    writer = await engine_at(path)
    await writer.create_entity(Entity(id="a", name="A", entity_type="t"))
    await writer.close()

    reader = await engine_at(path, read_only=True)
    try:
        assert (await reader.get_entity("a")).name == "A"
        assert await reader.execute_cypher("MATCH (e:Entity) RETURN e.id AS id") == [{"id": "a"}]
        with pytest.raises(InvalidRequestError) as err:
            await reader.create_entity(Entity(id="b", name="B", entity_type="t"))
        assert err.value.field == "config.read_only"
        with pytest.raises(InvalidRequestError):
            await reader.execute_cypher("CREATE (e:Entity {id: 'b'})")
        assert (await reader.health_check())["read_only"] is True
    finally:
        await reader.close()


async def test_config_errors(tmp_path):
    with pytest.raises(ConfigError) as err:
        await engine_at(tmp_path / "g.db", colour="red")
    assert "config.colour" in str(err.value)
    with pytest.raises(ConfigError) as err:
        await engine_at(tmp_path / "g.db", max_depth=0)
    assert "config.max_depth" in str(err.value)
    engine = await engine_at(tmp_path / "g.db", max_depth=2)
    try:
        with pytest.raises(InvalidRequestError) as err:
            await engine.get_connected_entities("x", max_depth=3)
        assert err.value.field == "max_depth" and "config.max_depth" in str(err.value)
    finally:
        await engine.close()


async def test_client_transactions_are_all_or_nothing(tmp_path):
    engine = await engine_at(tmp_path / "g.db")
    client = engine.client
    try:
        assert client.supports_transactions()
        out = await client.execute_in_transaction([
            ("CREATE (e:Entity {id: $id}) RETURN e.id AS id", {"id": "t1"}),
            ("MATCH (e:Entity) RETURN count(*) AS n", None),
        ])
        assert out == [[{"id": "t1"}], [{"n": 1}]]
        with pytest.raises(InvalidRequestError):  # the duplicate key undoes t2 as well
            await client.execute_in_transaction([
                ("CREATE (e:Entity {id: $id})", {"id": "t2"}),
                ("CREATE (e:Entity {id: $id})", {"id": "t1"}),
            ])
        assert await client.execute("MATCH (e:Entity) RETURN e.id AS id ORDER BY id") == [{"id": "t1"}]
        assert (await client.health_check())["status"] == "healthy"
    finally:
        await engine.close()
    assert (await client.health_check())["status"] == "unhealthy"  # closed, and says so without raising
    with pytest.raises(ProviderCallError):
        await client.execute("RETURN 1")


async def test_memory_database():
    engine = LadybugGraphEngine()
    await engine.initialize({"path": ":memory:"})
    try:
        await engine.create_entity(Entity(id="m", name="M", entity_type="t"))
        assert await engine.entity_exists("m")
    finally:
        await engine.close()


async def test_relationship_keys_are_rebuilt_when_they_disagree_with_the_edges(tmp_path):
    """A database whose key table lost entries (one written before the table existed,
    or an admin write around it) is reconciled when opened."""
    path = tmp_path / "graph.db"
    engine = await engine_at(path)
    await engine.create_entities([Entity(id=i, name=i, entity_type="t") for i in "abc"])
    await engine.create_relationships([Relationship(id="ab", source_id="a", target_id="b", relationship_type="T"),
                                       Relationship(id="bc", source_id="b", target_id="c", relationship_type="T")])
    await engine.client.execute("MATCH (k:RelKey) DELETE k")  # behind the engine's back
    assert await engine.get_relationship("ab") is None  # the lookup goes through the keys
    await engine.close()
    engine = await engine_at(path)
    try:
        assert (await engine.get_relationship("ab")).target_id == "b"
        assert (await engine.get_relationship("bc")).source_id == "b"
        await engine.create_relationship(Relationship(id="ab", source_id="c", target_id="a", relationship_type="T"))
        assert (await engine.get_stats())["relationships"] == 2  # an upsert, not a second edge
    finally:
        await engine.close()
