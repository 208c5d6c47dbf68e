"""Do the GPU code paths work on this machine? A smoke check, not a benchmark.

Runs, each only when what it needs is here (otherwise it is skipped with the
reason printed):

    cuda                      torch sees a CUDA device
    minilm_cuda_vs_cpu        SentenceTransformerProvider on cuda (the packaged
                              all-MiniLM-L6-v2) matches its CPU embeddings:
                              max abs diff < 1e-3
    cross_encoder_cuda        CrossEncoderReranker on cuda with a tiny random
                              BERT built here (no download): scores match CPU
                              (< 1e-3) and rank the same; long text truncates
    vllm_embeddings           VLLMEmbeddingProvider on --vllm-model
    vllm_reranker             VLLMReranker on --vllm-reranker-model (default:
                              --vllm-model; an embedding model scores by cosine)

The last line printed is one JSON object:
``{"cuda": bool, "checks": [{"name", "ok", "detail"}, ...]}``; ``ok`` is true,
false, or null for a skipped check. Exit status 1 when a check failed.

Usage: python benchmarks/gpu_check.py [--quick] [--vllm-model PATH] [--vllm-reranker-model PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The checks use only local models: never wait on a hub this machine may not reach.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TOLERANCE = 1e-3
TEXTS = [
    "The cat sits on the mat.",
    "Quarterly revenue grew by twelve percent.",
    "Le chat est assis sur le tapis.",
    "A fast car drove down the empty road at night.",
    "Paris is the capital and largest city of France.",
    "Influenza usually causes fever and muscle aches.",
    "",
    "Mix flour, water and starter; let it rise overnight, then bake.",
]
QUERY = "what is the capital of france"


class Skip(Exception):
    """A check that cannot run here; its message is the reason."""


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def check_cuda() -> str:
    import torch

    if not torch.cuda.is_available():
        raise Skip(f"torch {torch.__version__} sees no CUDA device (torch.version.cuda={torch.version.cuda})")
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return f"torch {torch.__version__}, CUDA {torch.version.cuda}, devices: {names}"


async def check_minilm(quick: bool) -> str:
    import numpy as np

    from providers.embeddings.sentence_transformers import SentenceTransformerProvider

    if not cuda_available():
        raise Skip("no CUDA device")
    texts = TEXTS if quick else TEXTS * 32
    out = {}
    for device in ("cpu", "cuda"):
        provider = SentenceTransformerProvider()
        await provider.initialize({"device": device})
        if provider.device != device:
            raise AssertionError(f"asked for {device}, provider runs on {provider.device}")
        await provider.embed_texts(texts[:4])  # warm-up: first CUDA call pays kernel loading
        start = time.perf_counter()
        out[device] = np.stack(await provider.embed_texts(texts))
        out[device + "_s"] = time.perf_counter() - start
        await provider.close()
    diff = float(np.abs(out["cpu"] - out["cuda"]).max())
    detail = (f"{len(texts)} texts, max abs diff {diff:.2e}; "
              f"cpu {len(texts) / out['cpu_s']:.0f}/s, cuda {len(texts) / out['cuda_s']:.0f}/s")
    if not diff < TOLERANCE:
        raise AssertionError(detail)
    return detail


async def check_cross_encoder(quick: bool) -> str:
    import numpy as np

    from providers.rerankers.cross_encoder import CrossEncoderReranker
    from tests.rerankers.tiny_model import build_tiny_cross_encoder

    if not cuda_available():
        raise Skip("no CUDA device")
    docs = TEXTS if quick else TEXTS * 16
    long_doc = " ".join(["paris is the capital of france"] * 400)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_cross_encoder(tmp)
        scores, orders = {}, {}
        for device in ("cpu", "cuda"):
            reranker = CrossEncoderReranker()
            await reranker.initialize({"model_name": model_dir, "device": device, "normalization": "none",
                                       "batch_size": 8})
            scores[device] = np.asarray(await reranker.batch_score_pairs(QUERY, docs))
            orders[device] = [r.id for r in await reranker.rerank(
                QUERY, [{"id": str(i), "content": d} for i, d in enumerate(docs)])]
            long_scores = await reranker.batch_score_pairs(QUERY, [long_doc])
            if not np.isfinite(long_scores).all():
                raise AssertionError(f"{device}: non-finite score for a long document")
            health = await reranker.health_check()
            if health["status"] != "healthy" or health["device"] != device:
                raise AssertionError(f"{device}: health {health}")
            await reranker.close()
    diff = float(np.abs(scores["cpu"] - scores["cuda"]).max())
    # Near-equal scores may swap under float noise (and TEXTS repeats, so some
    # tie exactly): the cuda order must be best-first by cpu scores, within tolerance.
    cpu_along_cuda = scores["cpu"][[int(i) for i in orders["cuda"]]]
    consistent = bool((np.diff(cpu_along_cuda) <= TOLERANCE).all())
    detail = (f"{len(docs)} pairs, max abs logit diff {diff:.2e}, identical order: "
              f"{orders['cpu'] == orders['cuda']}, order consistent: {consistent}")
    if not (diff < TOLERANCE and consistent):
        raise AssertionError(detail)
    return detail


def _need_vllm(path: str | None, flag: str) -> None:
    if importlib.util.find_spec("vllm") is None:
        raise Skip("vllm is not installed (pip install '.[gpu]')")
    if not path:
        raise Skip(f"no {flag} given")
    if not cuda_available():
        raise Skip("no CUDA device")


async def check_vllm_embeddings(path: str | None) -> str:
    import numpy as np

    from providers.embeddings.vllm import VLLMEmbeddingProvider

    _need_vllm(path, "--vllm-model")
    provider = VLLMEmbeddingProvider()
    # a small share of the GPU: the reranker check loads a second engine after this one
    await provider.initialize({"model": path, "gpu_memory_utilization": 0.3})
    try:
        vectors = np.stack(await provider.embed_texts(TEXTS))
        query = await provider.embed_query(QUERY)
        if vectors.shape != (len(TEXTS), provider.get_dimension()) or not np.isfinite(vectors).all():
            raise AssertionError(f"bad embeddings: shape {vectors.shape}, dimension {provider.get_dimension()}")
        norms = np.linalg.norm(vectors, axis=1)
        best = int(np.argmax(vectors @ query))
        health = await provider.health_check()
        if health["status"] != "healthy":
            raise AssertionError(f"health {health}")
        return (f"dimension {provider.get_dimension()}, norms {norms.min():.4f}..{norms.max():.4f}, "
                f"best match for the query: {TEXTS[best]!r}")
    finally:
        await provider.close()


async def check_vllm_reranker(path: str | None) -> str:
    from providers.rerankers.vllm import VLLMReranker

    _need_vllm(path, "--vllm-reranker-model or --vllm-model")
    reranker = VLLMReranker()
    await reranker.initialize({"model": path, "gpu_memory_utilization": 0.3})
    try:
        results = await reranker.rerank(QUERY, [{"id": str(i), "content": d} for i, d in enumerate(TEXTS)], top_k=3)
        scores = await reranker.batch_score_pairs(QUERY, TEXTS)
        if len(scores) != len(TEXTS) or results[0].rerank_score != max(scores):
            raise AssertionError(f"inconsistent: top {results[0]} vs scores {scores}")
        health = await reranker.health_check()
        if health["status"] != "healthy":
            raise AssertionError(f"health {health}")
        top = results[0]
        return f"top: {top.content!r} ({top.rerank_score:.4f}); scores {min(scores):.4f}..{max(scores):.4f}"
    finally:
        await reranker.close()


async def run_check(name: str, fn: Callable[[], Awaitable[str] | str]) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        result = fn()
        detail = await result if asyncio.iscoroutine(result) else result
        check = {"name": name, "ok": True, "detail": detail}
    except Skip as reason:
        check = {"name": name, "ok": None, "detail": f"skipped: {reason}"}
    except Exception as exc:  # one broken check must not hide the others
        traceback.print_exc()
        check = {"name": name, "ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    check["seconds"] = round(time.perf_counter() - start, 2)
    status = {True: "ok", False: "FAILED", None: "skip"}[check["ok"]]
    print(f"[{status:>6}] {name}: {check['detail']}", flush=True)
    return check


async def main(args: argparse.Namespace) -> int:
    reranker_model = args.vllm_reranker_model or args.vllm_model
    checks = [
        await run_check("cuda", check_cuda),
        await run_check("minilm_cuda_vs_cpu", lambda: check_minilm(args.quick)),
        await run_check("cross_encoder_cuda", lambda: check_cross_encoder(args.quick)),
        await run_check("vllm_embeddings", lambda: check_vllm_embeddings(args.vllm_model)),
        await run_check("vllm_reranker", lambda: check_vllm_reranker(reranker_model)),
    ]
    print(json.dumps({"cuda": cuda_available(), "quick": args.quick, "checks": checks}))
    return 1 if any(c["ok"] is False for c in checks) else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer texts, no throughput figures worth quoting")
    p.add_argument("--vllm-model", help="local directory (or hub id) of an embedding model for vLLM")
    p.add_argument("--vllm-reranker-model", help="cross-encoder for the vLLM reranker (default: --vllm-model)")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
