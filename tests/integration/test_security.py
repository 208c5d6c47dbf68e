"""Security on the running registry (issue 8): the class allowlist through the Python API
and admin HTTP (register and swap), every admin route behind the token, injection
through HTTP (Cypher parameters and graph inputs, vector store filters and search
text), and the proxy bound to loopback only.

The allowlist attempts run in the router's process; the probe modules
(conftest.PROBE_MODULES, on the replicas' PYTHONPATH) write a marker file when
imported, so "refused" is proven to mean "never imported". A positive control
shows the router does import an allowlisted probe (its marker appears).
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from providers.errors import ProviderLoadError
from serve_app import ProviderType, provider_registry
from tests.integration.conftest import ADMIN_TOKEN, PROBE_ALLOWED

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EVIL = "registry_probe_evil"
ATTACKS = [
    "os.system", "os:system", "subprocess.Popen", "builtins.eval",  # the four, and:
    f"{EVIL}.Thing", f"{EVIL}:Thing",  # a module outside the list
    f"{PROBE_ALLOWED}_evil.Thing",  # the allowlisted name plus a suffix: not a package boundary
    f"providers.x:{EVIL}.Thing", "providers.x:os.system", "providers.../os.system", f"providers..{EVIL}.Thing",
    "ｐroviders.embeddings.x.Y", "prоviders.embeddings.x.Y",  # fullwidth p, Cyrillic o
    f"{EVIL}\n.Thing", f"providers.x\n:{EVIL}", f" {EVIL}.Thing ",
    f"{PROBE_ALLOWED}.FullEmbedder",  # allowlisted module re-exporting a class defined outside the list
]
NEVER_IMPORTED = [EVIL, f"{PROBE_ALLOWED}_evil"]


def assert_never_imported(probe_modules) -> None:
    for name in NEVER_IMPORTED:
        assert not probe_modules["markers"][name].exists(), f"{name} was imported"


def assert_refusal_message(text: str) -> None:
    assert "allowed module prefixes" in text or "invalid class path" in text, text


async def _hash_version() -> int:
    return (await provider_registry.list_providers(ProviderType.EMBEDDING))["embeddings"]["hash"]["version"]


def test_positive_control_the_router_imports_an_allowlisted_probe(registry, probe_modules):
    """The router can import from the probe directory, and an import leaves a marker:
    the absent markers below mean 'never imported', not 'could not have been'."""
    r = httpx.post(registry["http"] + "/v1/admin/providers/embeddings/probe-control", headers=AUTH, timeout=60,
                   json={"class": f"{PROBE_ALLOWED}.NotAProvider"})
    assert r.status_code == 400 and "does not implement" in r.json()["error"]["message"], r.text
    assert probe_modules["markers"][PROBE_ALLOWED].exists()
    assert probe_modules["markers"]["registry_probe_impl"].exists()


async def test_python_api_refuses_every_attack(registry, probe_modules):
    before = await _hash_version()
    for n, class_path in enumerate(ATTACKS):
        with pytest.raises(ProviderLoadError) as info:
            await provider_registry.register_provider(ProviderType.EMBEDDING, f"evil-{n}", class_path, {})
        assert_refusal_message(str(info.value))
        with pytest.raises(ProviderLoadError) as info:
            await provider_registry.swap_provider(ProviderType.EMBEDDING, "hash", class_path=class_path)
        assert_refusal_message(str(info.value))
        assert_never_imported(probe_modules)
    names = (await provider_registry.list_providers(ProviderType.EMBEDDING))["embeddings"]
    assert not [n for n in names if n.startswith("evil-")]
    assert await _hash_version() == before  # no swap went through


def test_admin_http_refuses_every_attack(registry, probe_modules):
    base = registry["http"] + "/v1/admin/providers/embeddings"
    version = httpx.get(registry["http"] + "/v1/providers", params={"type": "embeddings"}, timeout=60).json()
    with httpx.Client(headers=AUTH, timeout=60) as client:
        for n, class_path in enumerate(ATTACKS):
            for url in (f"{base}/evil-http-{n}", f"{base}/hash/swap"):
                r = client.post(url, json={"class": class_path})
                assert r.status_code in (400, 403), (class_path, url, r.text)
                assert_refusal_message(r.json()["error"]["message"])
            assert_never_imported(probe_modules)
    after = httpx.get(registry["http"] + "/v1/providers", params={"type": "embeddings"}, timeout=60).json()
    assert not [n for n in after["embeddings"] if n.startswith("evil-http-")]
    assert after["embeddings"]["hash"]["version"] == version["embeddings"]["hash"]["version"]


async def test_run_time_names_are_validated(registry):
    for name in ("bad\n", "a b", "../x", "tаble"):
        with pytest.raises(Exception, match="invalid provider name"):
            await provider_registry.register_provider(ProviderType.EMBEDDING, name,
                                                      "tests.integration.sample_providers.HashEmbedder", {})


def test_every_admin_route_needs_the_token(registry):
    """Every /v1/admin operation the served OpenAPI spec lists: no token 403, a wrong
    one 401, the token never in an answer. A new admin route is covered by being served."""
    spec = httpx.get(registry["http"] + "/openapi.json", timeout=60).json()
    routes = [(method.upper(), path) for path, ops in spec["paths"].items() if path.startswith("/v1/admin")
              for method in ops]
    assert len(routes) >= 10
    for method, path in routes:
        url = registry["http"] + path.replace("{ptype}", "embeddings").replace("{name}", "hash")
        for headers, status in (({}, 403), ({"Authorization": "Bearer wrong"}, 401),
                                ({"Authorization": f"Basic {ADMIN_TOKEN}"}, 401),
                                ({"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"}, 401)):
            r = httpx.request(method, url, headers=headers, json={"class": "os:system"}, timeout=60)
            assert r.status_code == status, (method, path, headers, r.text)
            assert ADMIN_TOKEN not in r.text and ADMIN_TOKEN[:10] not in r.text


# -- injection over HTTP -----------------------------------------------------------------------------

CYPHER_PAYLOADS = ["x'}) MATCH (n) DETACH DELETE n //", 'x"}) DETACH DELETE n //', "`x`) DELETE n /*",
                   "$id", "x' OR 1=1 //", "') RETURN 1 UNION MATCH (n) RETURN n //", "ünï 表",
                   "x'}) DETACH DELETE n RETURN 'a", "x\\'}) SET n.name = 'pwned"]


def test_graph_inputs_and_cypher_parameters_are_data(registry):
    g = registry["http"] + "/v1/graph/ladybug"
    count = "MATCH (e:Entity) RETURN count(*) AS n"
    before = httpx.post(g + "/cypher", json={"query": count}, timeout=60).json()["rows"][0]["n"]
    tag = uuid.uuid4().hex[:8]
    ents = [{"id": f"{p}{tag}", "name": p, "entity_type": p, "properties": {p: p}} for p in CYPHER_PAYLOADS]
    r = httpx.post(g + "/entities", json={"entities": ents}, timeout=60)
    assert r.status_code == 200, r.text
    for p in CYPHER_PAYLOADS:
        if "/" not in p:  # the path route cannot address an id holding "/" (%2F is decoded before routing)
            got = httpx.get(g + "/entities/" + _quote(f"{p}{tag}"), timeout=60)
            assert got.status_code == 200 and got.json()["name"] == p, got.text
        r = httpx.post(g + "/cypher", json={"query": "MATCH (e:Entity) WHERE e.name = $v RETURN e.id AS id",
                                            "parameters": {"v": p}}, timeout=60)
        assert r.status_code == 200 and [row["id"] for row in r.json()["rows"]] == [f"{p}{tag}"], r.text
        # a write smuggled in a parameter stays a value, and the read-only rule still holds
        r = httpx.post(g + "/cypher", json={"query": "RETURN $v AS v", "parameters": {"v": f"{p} SET e.x = 1"}}, timeout=60)
        assert r.status_code == 200 and r.json()["rows"] == [{"v": f"{p} SET e.x = 1"}]
        r = httpx.post(g + "/cypher", json={"query": "MATCH (e:Entity) WHERE e.id = $id SET e.name = 'x'",
                                            "parameters": {"id": p}}, timeout=60)
        assert r.status_code == 400 and r.json()["error"]["param"] == "query"
    after = httpx.post(g + "/cypher", json={"query": count}, timeout=60).json()["rows"][0]["n"]
    assert after == before + len(CYPHER_PAYLOADS)
    r = httpx.post(g + "/cypher", headers=AUTH, json={
        "query": "MATCH (e:Entity) WHERE e.id ENDS WITH $tag DETACH DELETE e", "parameters": {"tag": tag}}, timeout=60)
    assert r.status_code == 200, r.text


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


FILTER_VALUES = ["') OR 1=1 --", "x' OR '1'='1", '"; DROP TABLE memories; --', "\\", "%"]


def test_store_filters_and_search_text_are_data(registry):
    s = registry["http"] + "/v1/vector_stores/memories"
    tag = uuid.uuid4().hex[:8]
    docs = [{"id": f"sec-{tag}-{i}", "content": f"injection probe {tag}", "metadata": {"probe": tag, "v": v}}
            for i, v in enumerate(FILTER_VALUES)]
    assert httpx.post(s + "/documents", json={"documents": docs}, timeout=60).status_code == 200
    try:
        for i, v in enumerate(FILTER_VALUES):
            r = httpx.post(s + "/search", timeout=60,
                           json={"text": "injection probe", "top_k": 10, "filters": {"probe": tag, "v": v}})
            assert r.status_code == 200 and [h["id"] for h in r.json()["results"]] == [f"sec-{tag}-{i}"], r.text
        for key in ("v'; DROP TABLE memories; --", 'a"b', "a)", "{a,b}"):
            r = httpx.post(s + "/search", json={"text": "x", "filters": {key: "x"}}, timeout=60)
            assert r.status_code == 400 and r.json()["error"]["param"] == f"filters.{key}", r.text
        for text in ("'); DROP TABLE memories; --", '"unterminated', "a & b | !c", "alpha:*"):
            r = httpx.post(s + "/search", json={"text": text, "hybrid": True, "top_k": 3,
                                                "filters": {"probe": tag}}, timeout=60)
            assert r.status_code == 200, (text, r.text)
        r = httpx.post(s + "/search", json={"text": "x", "hybrid": True, "filters": {"v": "a\u0000b"}}, timeout=60)
        assert r.status_code == 400
    finally:
        for d in docs:
            httpx.delete(f"{s}/documents/{d['id']}", timeout=60)
    assert httpx.get(s + "/stats", timeout=60).status_code == 200  # the table is still there


def test_the_proxy_listens_on_loopback_only(registry):
    """Default http_host: Serve's proxy socket is bound to 127.0.0.1, not to every interface."""
    import psutil

    port = registry["config"].registry.http_port
    assert registry["config"].registry.http_host == "127.0.0.1"
    listening = [c for c in psutil.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]
    assert listening, f"nothing listens on port {port}"
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}
