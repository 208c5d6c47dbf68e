"""The LLM extractor against a real OpenAI-compatible chat endpoint, when one is named.

No model server can run on this project's CPU machines, so this runs only
with ``EXTRACTOR_BASE_URL`` (e.g. http://gpu-box:8000/v1, a vLLM server) and
``EXTRACTOR_MODEL`` set (``EXTRACTOR_API_KEY`` if it needs one); the parsing
of answers is tested without a server in test_temporal_manager.py.
"""

from __future__ import annotations

import os

import pytest

from providers.graph.extractor import extract

BASE_URL = os.environ.get("EXTRACTOR_BASE_URL")
MODEL = os.environ.get("EXTRACTOR_MODEL")


@pytest.mark.skipif(not (BASE_URL and MODEL), reason="EXTRACTOR_BASE_URL / EXTRACTOR_MODEL not set: no chat model here")
async def test_a_real_model_extracts_people_and_employers():
    config = {"base_url": BASE_URL, "model": MODEL, "api_key": os.environ.get("EXTRACTOR_API_KEY")}
    entities, relationships = await extract(config, "Grace Hopper worked at the Eckert-Mauchly Computer Corporation.")
    names = {e.name.casefold() for e in entities}
    assert any("grace" in n for n in names)
    assert relationships and all(r.relationship_type.isupper() for r in relationships)
