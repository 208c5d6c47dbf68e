"""The seed's Python examples (PROVIDER_REGISTRY.md), run against a running registry.

What a newcomer with the seed's document does after ``make serve``: another
Python process joins the registry's Ray instance and runs the examples, in the
document's order, with the names of config/providers.yaml. Run it by hand
against your own ``make serve``:

    .venv/bin/python tests/newcomer/seed_examples.py

``make serve`` starts a local Ray instance and records no address file, so
``ray.init(address="auto")`` (the client's default) finds it by its running
processes; with more than one Ray instance on the machine, name it:
``RAY_AUTH_MODE=token RAY_ADDRESS=<ip>:<gcs port>`` (the ``--gcs-address`` of
that instance's raylet). RAY_AUTH_MODE=token because Ray 2.60 starts a local
instance with token authentication on (the token in ~/.ray/auth_token) and a
driver given an explicit address sends it only when told to.
tests/newcomer/test_make_serve.py runs this file that way.

Every example's output is printed as the seed prints it; the last line,
``SEED_RESULT {...}``, is JSON for the test to read. The registration adds
the embeddings provider ``new_embedder`` to the running registry (run-time
changes last until the registry restarts).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import numpy as np

# The seed: `from src.core.utils.registry import provider_registry, ProviderType`.
# This project's package for the seed's API is serve_app (README, docs/python-api.md).
from serve_app import ProviderType, provider_registry

logger = logging.getLogger("seed_examples")

# The seed's provider names, as config/providers.yaml names them:
#   "e5-large"   -> "minilm", the default config's one embedder (all-MiniLM-L6-v2, 384-d);
#   "all-minilm" -> "new_embedder", the seed's run-time registration (see below).
PRIMARY = "minilm"
NEW = "new_embedder"


def timed(label: str, started: float, result: dict) -> None:
    seconds = round(time.monotonic() - started, 2)
    result.setdefault("seconds", {})[label] = seconds
    print(f"[{label}: {seconds} s]", flush=True)


async def main() -> dict:
    result: dict = {}

    # --- Basic Usage -------------------------------------------------------------------
    t = time.monotonic()
    # Get a provider instance
    embedder = await provider_registry.get_provider(
        ProviderType.EMBEDDING,
        PRIMARY  # the seed: "e5-large"
    )

    # Use the provider
    embeddings = await embedder.embed_texts(["Hello world", "This is a test"])
    print(f"basic: {len(embeddings)} embeddings of {len(embeddings[0])} dimensions "
          f"(get_dimension() = {embedder.get_dimension()})")
    result["basic"] = {"count": len(embeddings), "dims": [len(e) for e in embeddings],
                       "get_dimension": embedder.get_dimension(),
                       "norms": [round(float(np.linalg.norm(e)), 4) for e in embeddings]}
    timed("basic", t, result)

    # --- Dynamic Registration ----------------------------------------------------------
    # Run before "With Fallback" although the seed shows it after: the seed's fallback
    # ("all-minilm") is a second embedder, and the default config has only one; the
    # registry refuses a fallback name it does not know (ProviderNotFoundError), so
    # the provider registered here is the fallback there.
    t = time.monotonic()
    # Register a new provider at runtime
    success = await provider_registry.register_provider(
        provider_type=ProviderType.EMBEDDING,
        name=NEW,  # the seed: "new_embedder"
        # The seed: "my.custom.provider.MyEmbeddingProvider", which does not exist here;
        # the packaged MiniLM class is an embedder this project ships.
        class_path="providers.embeddings.sentence_transformers.SentenceTransformerProvider",
        # The seed: {"model_name": "my-model", "device": "cpu"}. There is no model
        # "my-model" and the registry runs offline: with no model_name the class
        # loads the packaged all-MiniLM-L6-v2.
        config={"device": "cpu"}
        # No `deployment:` section, as in the seed: the registry's defaults apply.
    )
    print(f"register_provider: {success}")
    result["register"] = success
    timed("register", t, result)

    # --- With Fallback -----------------------------------------------------------------
    t = time.monotonic()
    # Set up fallback
    await provider_registry.set_fallback_provider(
        ProviderType.EMBEDDING,
        primary_name=PRIMARY,  # the seed: "e5-large"
        fallback_name=NEW      # the seed: "all-minilm"
    )

    # Get provider with automatic fallback
    embedder = await provider_registry.get_provider_with_fallback(
        ProviderType.EMBEDDING,
        PRIMARY  # the seed: "e5-large"
    )
    # The seed stops at getting it; one call through it shows it works.
    query = await embedder.embed_query("served by minilm, or by new_embedder when that fails")
    print(f"fallback: {embedder!r} embedded a query into {len(query)} dimensions")
    result["fallback"] = {"repr": repr(embedder), "dims": len(query)}
    timed("fallback", t, result)

    # --- Hot Swapping: Reloading Providers -----------------------------------------------
    t = time.monotonic()
    # Reload a provider (e.g., after code changes)
    success = await provider_registry.reload_provider(
        ProviderType.EMBEDDING,
        NEW  # the seed: "e5-large"; here the provider registered at run time
    )

    if success:
        print("Provider reloaded successfully")
    result["reload"] = success
    timed("reload", t, result)

    # --- Health Monitoring ---------------------------------------------------------------
    t = time.monotonic()
    # Start health monitoring
    await provider_registry.start_health_monitoring()

    # Check specific provider health
    health = await provider_registry.health_check(
        ProviderType.EMBEDDING,
        NEW  # the seed: "e5-large"; the reloaded provider
    )

    print(health["status"])  # "healthy" or "unhealthy"
    print(f"test_successful={health.get('test_successful')} model_loaded={health.get('model_loaded')} "
          f"gpu_available={health.get('gpu_available')} version={health.get('version')}")
    result["health"] = {k: health.get(k) for k in
                        ("status", "test_successful", "model_loaded", "gpu_available", "last_error",
                         "error", "version", "dimension")}
    # Not in the seed's example: monitoring probes every provider until stopped.
    await provider_registry.stop_health_monitoring()
    timed("health", t, result)

    # --- Statistics and Monitoring ---------------------------------------------------------
    t = time.monotonic()
    # Get comprehensive registry statistics
    stats = await provider_registry.get_stats()

    print(f"Total providers: {sum(stats['provider_counts'].values())}")
    print(f"Healthy providers: {stats['health_summary']}")
    print(f"Total usage: {stats['usage_stats']}")
    result["stats"] = {"total": sum(stats["provider_counts"].values()),
                       "provider_counts": stats["provider_counts"],
                       "health_summary": stats["health_summary"],
                       "usage_keys": sorted(stats["usage_stats"])}
    timed("stats", t, result)

    # --- Provider Information --------------------------------------------------------------
    t = time.monotonic()
    # List all providers
    providers = await provider_registry.list_providers()

    # List specific provider type
    embedding_providers = await provider_registry.list_providers(
        provider_type=ProviderType.EMBEDDING
    )

    # Get detailed provider info
    for name, info in embedding_providers["embeddings"].items():
        print(f"Provider: {name}")
        print(f"  Status: {info['health_status']}")
        print(f"  Usage: {info['usage_count']}")
        print(f"  Initialized: {info['initialized']}")
    result["list"] = {
        "all": {ptype: sorted(entries) for ptype, entries in providers.items() if isinstance(entries, dict)},
        "embeddings": {name: {k: info.get(k) for k in ("health_status", "usage_count", "initialized", "version",
                                                     "deployment", "fallback")}
                       for name, info in embedding_providers["embeddings"].items()},
    }
    timed("list", t, result)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    print("SEED_RESULT " + json.dumps(asyncio.run(main()), default=str), flush=True)
