"""Property-based fuzzing of every HTTP endpoint from the served OpenAPI spec
(schemathesis + hypothesis): valid and invalid requests alike get no 5xx, and
every response matches the spec (documented status, JSON content type, schema).

Bounded: ``FUZZ_HTTP_EXAMPLES`` examples per endpoint and generation mode
(default 12), derandomized so a failure reproduces. Path names are drawn both
at random and from providers made for this test (a pgvector store and a Ladybug
graph of their own), so requests reach the providers rather than stopping at
"unknown name". Nothing the rest of the session uses is written: admin calls
carry the token but only ever name providers that do not exist, and the tools
reached are read-only.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

import httpx
import pytest
from hypothesis import strategies as st

from tests.integration.conftest import ADMIN_TOKEN, PGVECTOR, SAMPLE

pytestmark = pytest.mark.integration

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra")
from schemathesis import GenerationMode  # noqa: E402

EXAMPLES = int(os.environ.get("FUZZ_HTTP_EXAMPLES", "12"))
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Names this test owns, by path prefix; admin paths get random names only.
OWN = {"/v1/vector_stores/": ["fuzz-store"], "/v1/graph/": ["fuzz-graph"], "/v1/tools/": ["memory.search"],
       "/v1/providers/": ["hash", "fuzz-store", "fuzz-graph"]}
TYPES = ["embeddings", "vector_stores", "graph_engines", "rerankers", "cache", "tools"]


def operations() -> list[tuple[str, str]]:
    """(method, path) of every route, from the spec of the app the router builds (the
    served one is compared below). The app needs no parts to list its routes."""
    from types import SimpleNamespace

    from deployments.http_app import build_http_app

    core = SimpleNamespace(settings=SimpleNamespace(max_request_bytes=1 << 20, http_host="127.0.0.1"))
    app = build_http_app(core, observability=None, lifecycle=None, rollout=None, vectors=None)
    return [(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops]


@pytest.fixture(scope="module")
def fuzz_target(registry, pg_data_dir, tmp_path_factory):
    from serve_app import ProviderType, provider_registry

    graph_path = str(tmp_path_factory.mktemp("fuzzgraph") / "fuzz.db")

    async def setup() -> None:
        await provider_registry.register_provider(
            ProviderType.VECTOR_STORE, "fuzz-store", PGVECTOR,
            {"data_dir": pg_data_dir, "table_name": "fuzz", "dimension": 16},
            deployment={"num_cpus": 0.1}, embedder="hash-16")
        await provider_registry.register_provider(
            ProviderType.GRAPH_ENGINE, "fuzz-graph", "providers.graph.ladybug.LadybugGraphEngine",
            {"path": graph_path, "max_depth": 4}, deployment={"num_cpus": 0.1})

    async def teardown() -> None:
        for ptype, name in ((ProviderType.VECTOR_STORE, "fuzz-store"), (ProviderType.GRAPH_ENGINE, "fuzz-graph"),
                            (ProviderType.EMBEDDING, "hash-16")):
            await provider_registry.delete_provider(ptype, name)

    asyncio.run(provider_registry.register_provider(
        ProviderType.EMBEDDING, "hash-16", f"{SAMPLE}.HashEmbedder", {"dimension": 16},
        deployment={"num_cpus": 0.1}))
    asyncio.run(setup())
    spec = httpx.get(registry["http"] + "/openapi.json", timeout=30).json()
    yield {"url": registry["http"], "schema": schemathesis.openapi.from_dict(spec), "spec": spec, "sent": [0]}
    asyncio.run(teardown())
    # The fuzzer may have switched health monitoring off; the session expects it on.
    httpx.post(registry["http"] + "/v1/admin/monitoring", json={"enabled": True}, headers=AUTH, timeout=30)


def test_served_spec_lists_every_route_with_bodies(fuzz_target):
    served = {(m.upper(), p) for p, ops in fuzz_target["spec"]["paths"].items() for m in ops}
    assert served == set(operations())
    post = fuzz_target["spec"]["paths"]["/v1/vector_stores/{name}/search"]["post"]
    assert "text" in post["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert "422" not in post["responses"] and "4XX" in post["responses"]


def strategy_for(operation: Any, path: str, mode: GenerationMode) -> st.SearchStrategy:
    strategies = [operation.as_strategy(mode)]
    for prefix, names in OWN.items():
        if path.startswith(prefix) and "{name}" in path:
            extra = {"ptype": st.sampled_from(TYPES)} if "{ptype}" in path else {}
            for name in names:
                fixed = {"name": name}
                strategies.append(st.fixed_dictionaries(extra).flatmap(
                    lambda more, fixed=fixed: operation.as_strategy(mode, path_parameters={**fixed, **more})))
    return st.one_of(strategies)


@pytest.mark.parametrize(("method", "path"), operations(), ids=lambda v: v)
def test_endpoint_survives_fuzzing(fuzz_target, method, path):
    from tests.http_fuzzing import fuzz_operation

    operation = fuzz_target["schema"][path][method]
    admin = path.startswith("/v1/admin/")
    real = {"hash", "minilm", "memories", "journal", "similarity", "ladybug", "people", "lru", "memory.store",
            "memory.search", "fuzz-store", "fuzz-graph", "hash-16"}
    sent, failures = fuzz_operation(
        operation, path, fuzz_target["url"], EXAMPLES, headers=AUTH if admin else None,
        # never let the fuzzer delete or swap what the session runs on; an apply only as a dry run
        # (a generated {"config": {}, "prune": true} would delete every provider of the session)
        skip=lambda case: admin and ((case.path_parameters or {}).get("name") in real
                                     or (path == "/v1/admin/apply" and not _dry_run(case.body))),
        strategy_for=lambda mode: strategy_for(operation, path, mode))
    fuzz_target["sent"][0] += sent
    assert not failures, "\n".join(failures[:5])


def _dry_run(body: Any) -> bool:
    """An apply body that changes nothing: not a mapping (refused), or a dry run."""
    return not isinstance(body, dict) or body.get("dry_run") is True


def test_schemathesis_all_checks_pass(registry, tmp_path):
    """`st run --checks all` over the served spec, as an outside client runs it: every
    check, positive data acceptance, the stateful phase and the method probes
    (405s carry Allow) included. No credentials: admin operations answer 401 and
    names are random, so it changes nothing the session runs on. A fixed seed
    makes a failure reproduce."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis' `st` command is missing from the venv (dev extra)"
    r = subprocess.run([st, "run", registry["http"] + "/openapi.json", "--checks", "all", "--max-examples", "6",
                        "--seed", "1", "--request-timeout", "60"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)  # whatever it writes lands there
    tail = (r.stdout + r.stderr)[-6000:]
    print(tail[-1500:])
    assert r.returncode == 0, tail
    assert re.search(r"\d+ generated, \d+ passed", r.stdout), tail


def test_the_fuzzer_sent_requests(fuzz_target):
    """Runs after the endpoints (file order): the fuzzing above was not vacuous."""
    sent = fuzz_target["sent"][0]
    print(f"HTTP fuzzing sent {sent} requests over {len(operations())} endpoints")
    assert sent >= len(operations()) * min(EXAMPLES, 5), sent
