"""Shared fixtures of the reranker tests: offline hub, the tiny cross-encoder, MiniLM."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub (it reads these once): no test may
# reach a model hub; every model is built here or shipped in a package.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import pytest_asyncio  # noqa: E402

from tests.rerankers.tiny_model import build_tiny_cross_encoder  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_tiny_cross_encoder(Path(tmp_path_factory.mktemp("tiny-cross-encoder")))


@pytest_asyncio.fixture(scope="session")
async def minilm():  # type: ignore[no-untyped-def]
    """The packaged all-MiniLM-L6-v2, loaded once (a few seconds)."""
    from providers.embeddings.sentence_transformers import SentenceTransformerProvider

    provider = SentenceTransformerProvider()
    await provider.initialize({})
    yield provider
    await provider.close()
