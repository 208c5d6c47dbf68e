"""Admin HTTP: bearer token from the environment, every operation, no token leaks."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import ADMIN_TOKEN, SAMPLE

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_no_token_is_403_wrong_token_401_and_never_echoed(registry):
    url = registry["http"] + "/v1/admin/providers/embeddings/hash/reload"
    for headers, status in (({}, 403), ({"Authorization": "Bearer wrong"}, 401),
                            ({"Authorization": ADMIN_TOKEN}, 401), ({"Authorization": f"Basic {ADMIN_TOKEN}"}, 401),
                            ({"Authorization": f"Bearer {ADMIN_TOKEN}x"}, 401)):
        r = httpx.post(url, headers=headers, timeout=60)
        assert r.status_code == status, (headers, r.text)
        assert ADMIN_TOKEN not in r.text


def test_every_admin_operation_over_http(registry):
    base = registry["http"] + "/v1/admin/providers/embeddings/admin-made"
    texts = []
    with httpx.Client(timeout=120, headers=AUTH) as client:
        r = client.post(base, json={"class": f"{SAMPLE}.HashEmbedder", "config": {"dimension": 8},
                                    "deployment": {"num_cpus": 0.1}})
        texts.append(r.text)
        assert r.status_code == 201, r.text
        r = httpx.post(registry["http"] + "/v1/embeddings", json={"model": "admin-made", "input": ["x"]}, timeout=60)
        assert len(r.json()["data"][0]["embedding"]) == 8

        r = client.post(base + "/swap", json={"config": {"dimension": 12}})
        texts.append(r.text)
        assert r.status_code == 200 and r.json()["version"] == 2, r.text
        r = client.post(base + "/rollback")
        texts.append(r.text)
        assert r.status_code == 200 and r.json()["version"] == 3
        r = client.post(base + "/reload")
        assert r.status_code == 200 and r.json()["version"] == 4
        r = client.put(base + "/fallback", json={"fallback": ["hash"]})
        assert r.status_code == 200 and r.json()["fallback"] == ["hash"]
        r = client.put(base + "/fallback", json={"fallback": "hash"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "fallback"
        r = client.post(registry["http"] + "/v1/admin/monitoring", json={"enabled": False})
        assert r.status_code == 200

        # bad registrations: named field, allowlist, duplicate
        r = client.post(registry["http"] + "/v1/admin/providers/embeddings/x1", json={"config": {}})
        assert r.status_code == 400 and r.json()["error"]["param"] == "class"
        r = client.post(registry["http"] + "/v1/admin/providers/embeddings/x2", json={"class": "os:system"})
        assert r.status_code == 403 and "allowed" in r.json()["error"]["message"]
        r = client.post(base, json={"class": f"{SAMPLE}.HashEmbedder"})
        assert r.status_code == 409
        r = client.post(registry["http"] + "/v1/admin/providers/embeddings/x3", content="{not json")
        assert r.status_code == 400 and r.json()["error"]["param"] == "body"

        r = client.put(base + "/fallback", json={"fallback": []})
        assert r.status_code == 200
        r = client.delete(base)
        assert r.status_code == 200
        r = client.delete(base)
        assert r.status_code == 404
    for text in texts:
        assert ADMIN_TOKEN not in text
