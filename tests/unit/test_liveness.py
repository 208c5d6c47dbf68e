"""deployments/liveness.py against real sockets: a listening port is a live replica, a
closed one a dead worker. The GCS lookup is replaced by a list of (state, host, port)
(the cluster test tests/cluster/test_node_loss.py runs the real one on a lost node)."""

from __future__ import annotations

import asyncio
import socket

from deployments.liveness import ReplicaLiveness, reachable


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: a connect is refused at once
    return port


async def test_reachable_tells_a_listening_port_from_a_closed_one():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await reachable("127.0.0.1", port) is None
        dead = closed_port()
        assert "connection refused" in await reachable("127.0.0.1", dead)
    finally:
        server.close()


async def test_a_provider_is_dead_only_when_replicas_are_listed_and_none_answers():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    live, dead = server.sockets[0].getsockname()[1], closed_port()
    listed = {"app-lost": [("ALIVE", "127.0.0.1", dead)],
              "app-half": [("ALIVE", "127.0.0.1", dead), ("ALIVE", "127.0.0.1", live)],
              "app-replacing": [("PENDING_CREATION", "", 0)], "app-deleted": []}
    lookups = []

    def lookup(class_name):
        lookups.append(class_name)
        return listed[class_name.split(":")[1]]

    now = [0.0]
    check = ReplicaLiveness(lambda kind, name: None if name == "unknown" else f"app-{name}", "ProviderDeployment",
                            lookup=lookup, clock=lambda: now[0])
    try:
        assert "none of its 1 replica(s) is reachable" in await check("embeddings", "lost")
        assert lookups == ["ServeReplica:app-lost:ProviderDeployment"]
        assert await check("embeddings", "half") is None  # one replica answers: alive
        # The node-loss case as the GCS shows it: the old replica DEAD, its replacement pending.
        assert "no replica is running (1 being started: pending_creation" in await check("embeddings", "replacing")
        assert await check("embeddings", "deleted") is None  # nothing listed tells nothing
        assert await check("embeddings", "unknown") is None

        # Late calls at once share one probe, and its answer is kept for a second.
        lookups.clear()
        answers = await asyncio.gather(*(check("embeddings", "lost") for _ in range(5)))
        assert all(a == answers[0] for a in answers) and lookups == []  # cached from the first probe
        now[0] += 2.0
        answers = await asyncio.gather(*(check("embeddings", "lost") for _ in range(5)))
        assert lookups == ["ServeReplica:app-lost:ProviderDeployment"] and len(set(answers)) == 1
    finally:
        server.close()


async def test_a_lookup_that_fails_tells_nothing():
    def lookup(class_name):
        raise ConnectionError("GCS unreachable")

    assert await ReplicaLiveness(lambda k, n: "app", "ProviderDeployment", lookup=lookup)("embeddings", "x") is None
