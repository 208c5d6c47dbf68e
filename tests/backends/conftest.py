"""Fixtures of the backend tests: an offline hub, STS-B, the packaged MiniLM on torch, the tiny cross-encoder.

Every export goes to a temporary cache of this session (``export_cache``), so
each run exports afresh: the export path itself is under test, not a graph
left by an earlier run.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub (it reads these once): no test may reach a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import csv  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import pytest_asyncio  # noqa: E402

from tests.rerankers.tiny_model import build_tiny_cross_encoder  # noqa: E402

STS_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "stsbenchmark" / "sts-test.csv"


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("exports"))


@pytest.fixture(scope="session")
def sts_rows() -> list[tuple[float, str, str]]:
    if not STS_PATH.exists():
        pytest.skip(f"STS-B test set not found at {STS_PATH} (shared/data is laid beside the project)")
    with open(STS_PATH, encoding="utf-8") as fh:
        rows = [(float(c[4]), c[5], c[6]) for c in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
    assert len(rows) == 1379
    return rows


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_tiny_cross_encoder(Path(tmp_path_factory.mktemp("tiny-cross-encoder")))


@pytest_asyncio.fixture(scope="session")
async def torch_minilm():  # type: ignore[no-untyped-def]
    from providers.embeddings.sentence_transformers import SentenceTransformerProvider

    provider = SentenceTransformerProvider()
    await provider.initialize({"backend": "torch", "device": "cpu", "num_threads": 2})
    yield provider
    await provider.close()
