"""One Ray instance and one registry for the whole integration session.

A local Ray start costs 3-4 s and each Serve application 2-3 s, so every test
shares them. The registry is the seed's default (app ``registry``), so the
module-level ``provider_registry`` works as written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from providers.net import free_port
from tests.integration import secret_surface

ROOT = Path(__file__).resolve().parents[2]
STS_PATH = ROOT.parent / "shared" / "data" / "stsbenchmark" / "sts-test.csv"
SAMPLE = "tests.integration.sample_providers"
MINILM = "providers.embeddings.sentence_transformers.SentenceTransformerProvider"
ADMIN_TOKEN_ENV = "TEST_REGISTRY_ADMIN_TOKEN"
ADMIN_TOKEN = "adm-" + "7f3c9e1b5a2d4f6e8c0b"
# A secret in the session's own config (the memories store's password, redacted
# wherever the config shows), from the environment like any production secret.
PG_PASSWORD_ENV = "TEST_REGISTRY_PG_PASSWORD"
PG_PASSWORD = "pgpw-" + "3b8e0d2a6c4f1e9d"
# Modules the allowlist tests import, or must never import (tests/integration/test_security.py):
# in a directory on the replicas' PYTHONPATH, each writing a marker file when imported.
PROBE_ALLOWED = "registry_probe_allowed"  # allowlisted below
PROBE_MODULES = {
    PROBE_ALLOWED: "from registry_probe_impl import FullEmbedder\nclass NotAProvider:\n    pass\n",
    "registry_probe_impl": ("from tests.integration.sample_providers import HashEmbedder\n"
                            "class FullEmbedder(HashEmbedder):\n    pass\n"),
    "registry_probe_evil": "class Thing:\n    pass\n",
    PROBE_ALLOWED + "_evil": "class Thing:\n    pass\n",  # the allowed name plus a suffix: no package boundary
}

secret_surface.add("ADMIN_TOKEN", ADMIN_TOKEN)
secret_surface.add("PG_PASSWORD", PG_PASSWORD)


def pytest_runtest_logreport(report):
    secret_surface.record_report(report)


def pytest_collection_modifyitems(session, config, items):
    """A module that sets RUN_LAST (the secret scan) runs after everything else."""
    last = [i for i in items if getattr(getattr(i, "module", None), "RUN_LAST", False)]
    items[:] = [i for i in items if i not in last] + last


@pytest.fixture(scope="session", autouse=True)
def _record_secret_surface():
    uninstall = secret_surface.install()
    yield
    uninstall()


PGVECTOR = "providers.vector_stores.pgvector.PgVectorStore"


def registry_config(port: int, pg_data_dir: str) -> dict:
    return {
        "registry": {
            "http_port": port,
            "allowed_module_prefixes": [SAMPLE],
            "max_texts_per_request": 128,
            "max_chars_per_text": 5000,
            "deploy_timeout_s": 120,
            "admin_token_env": ADMIN_TOKEN_ENV,
            "orphan_grace_s": 4,
        },
        "embeddings": {
            "providers": {
                "minilm": {
                    "class": MINILM,
                    "config": {"num_threads": 2},
                    "deployment": {"num_cpus": 1, "max_ongoing_requests": 256},
                },
                "hash": {
                    "class": f"{SAMPLE}.HashEmbedder",
                    "config": {"label": "hash"},
                    "deployment": {"num_cpus": 0.1},
                },
            }
        },
        "vector_stores": {
            "providers": {
                # the embedded default: PostgreSQL + pgvector, filled by minilm
                "memories": {
                    "class": PGVECTOR,
                    "config": {"data_dir": pg_data_dir, "table_name": "memories", "dimension": 384,
                               "password": f"${{{PG_PASSWORD_ENV}}}"},  # unused by the embedded server
                    "embedder": "minilm",
                    "deployment": {"num_cpus": 0.1, "max_ongoing_requests": 256},
                },
                "journal": {  # what the memory tools write to
                    "class": PGVECTOR,
                    "config": {"data_dir": pg_data_dir, "table_name": "journal", "dimension": 384},
                    "embedder": "minilm",
                    "deployment": {"num_cpus": 0.1, "max_ongoing_requests": 256},
                },
            }
        },
        "rerankers": {
            "providers": {
                "similarity": {
                    "class": "providers.rerankers.embedding_similarity.EmbeddingSimilarityReranker",
                    "config": {"embedder": "minilm"},
                    "depends_on": ["embeddings/minilm"],
                    "deployment": {"num_cpus": 0.1},
                },
            }
        },
        "graph_engines": {
            "providers": {
                "ladybug": {
                    "class": "providers.graph.ladybug.LadybugGraphEngine",
                    "config": {"path": str(Path(pg_data_dir).parent / "graph" / "people.db")},
                    "deployment": {"num_cpus": 0.1},
                },
            }
        },
        "graph_managers": {
            "providers": {
                "people": {
                    "class": "providers.graph.temporal_manager.TemporalGraphManager",
                    "config": {"graph_engine": "ladybug", "exclusive_relationships": ["WORKS_AT"]},
                    "depends_on": ["graph_engines/ladybug"],
                    "deployment": {"num_cpus": 0.1},
                },
            }
        },
        "cache": {
            "providers": {
                "lru": {"class": "providers.caches.memory.MemoryCache", "config": {"max_entries": 1000},
                        "deployment": {"num_cpus": 0.1}},
            }
        },
        "tools": {
            "providers": {
                name: {
                    "class": f"providers.tools.memory.{cls}",
                    "config": {"vector_store": "journal", "embedder": "minilm", "reranker": "similarity",
                               "graph_manager": "people"},
                    "depends_on": ["vector_stores/journal", "embeddings/minilm", "rerankers/similarity",
                                   "graph_managers/people"],
                    "deployment": {"num_cpus": 0.1},
                }
                for name, cls in (("memory.store", "MemoryStoreTool"), ("memory.search", "MemorySearchTool"))
            }
        },
    }


@pytest.fixture(scope="session")
def pg_data_dir(tmp_path_factory):
    """The embedded PostgreSQL of this session; it outlives replicas by design, so stop it here."""
    from providers.vector_stores import embedded_postgres

    path = str(tmp_path_factory.mktemp("pgi") / "data")
    yield path
    embedded_postgres.stop(path)


@pytest.fixture(scope="session")
def probe_modules(tmp_path_factory):
    """``{module: marker path}``: the probe modules' directory, and where each marks its import."""
    root = tmp_path_factory.mktemp("importable")
    markers = {}
    for name, body in PROBE_MODULES.items():
        markers[name] = root / f"{name}.imported"
        (root / f"{name}.py").write_text(f"import pathlib\npathlib.Path({str(markers[name])!r}).touch()\n{body}")
    return {"dir": root, "markers": markers}


@pytest.fixture(scope="session")
def registry(pg_data_dir, probe_modules):
    import ray
    from ray import serve

    from providers.registry.config import parse_config
    from serve_app.main import ensure_ray, start_registry

    # address="local": a fresh instance even if `make serve` runs beside us.
    # PYTHONPATH lets replicas import the test providers (and the probe modules).
    # Secrets go into this process's environment, which the Ray processes
    # inherit, never into runtime_env: Ray logs runtime_env env_vars in clear
    # (runtime_env_agent.log, "Creating runtime env: {...}").
    os.environ[ADMIN_TOKEN_ENV] = ADMIN_TOKEN
    os.environ[PG_PASSWORD_ENV] = PG_PASSWORD
    ensure_ray(address="local", num_cpus=8,
               env_vars={"PYTHONPATH": os.pathsep.join([str(ROOT), str(probe_modules["dir"])])})
    secret_surface.add("RAY_AUTH_TOKEN", secret_surface.ray_token())
    raw = registry_config(free_port(), pg_data_dir)
    raw["registry"]["allowed_module_prefixes"].append(PROBE_ALLOWED)
    config = parse_config(raw)
    try:  # a start that fails still stops Serve and Ray (pg_data_dir then stops PostgreSQL)
        info = start_registry(config)
        yield {**info, "config": config}
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="session")
def reference_model():
    """The packaged model in this process: what every served path must reproduce."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from providers.embeddings.sentence_transformers import packaged_model_path

    return SentenceTransformer(packaged_model_path(), device="cpu")
