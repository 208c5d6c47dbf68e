"""One Ray instance and one registry for the whole integration session.

A local Ray start costs 3-4 s and each Serve application 2-3 s, so every test
shares them. The registry is the seed's default (app ``registry``), so the
module-level ``provider_registry`` works as written.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STS_PATH = ROOT.parent / "shared" / "data" / "stsbenchmark" / "sts-test.csv"
SAMPLE = "tests.integration.sample_providers"
MINILM = "providers.embeddings.sentence_transformers.SentenceTransformerProvider"
ADMIN_TOKEN_ENV = "TEST_REGISTRY_ADMIN_TOKEN"
ADMIN_TOKEN = "adm-" + "7f3c9e1b5a2d4f6e8c0b"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
                    "config": {"data_dir": pg_data_dir, "table_name": "memories", "dimension": 384},
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
def registry(pg_data_dir):
    import ray
    from ray import serve

    from providers.registry.config import parse_config
    from serve_app.main import ensure_ray, start_registry

    # address="local": a fresh instance even if `make serve` runs beside us.
    # PYTHONPATH lets replicas import the test providers.
    # The token goes into this process's environment, which the Ray processes
    # inherit, never into runtime_env: Ray logs runtime_env env_vars in clear
    # (runtime_env_agent.log, "Creating runtime env: {...}").
    os.environ[ADMIN_TOKEN_ENV] = ADMIN_TOKEN
    ensure_ray(address="local", num_cpus=8, env_vars={"PYTHONPATH": str(ROOT)})
    config = parse_config(registry_config(free_port(), pg_data_dir))
    info = start_registry(config)
    yield {**info, "config": config}
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def reference_model():
    """The packaged model in this process: what every served path must reproduce."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from providers.embeddings.sentence_transformers import packaged_model_path

    return SentenceTransformer(packaged_model_path(), device="cpu")
