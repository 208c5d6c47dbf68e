"""What every vector store checks and computes the same way.

Input checks happen before any database work, so a bad batch writes nothing:
ids, content, metadata, and the embedding's length and finiteness (NaN
sorts unpredictably in every index, and pgvector refuses it mid-batch).
Hybrid search fuses a vector ranking with a text ranking here, in one place,
so both stores rank alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from pydantic import Field

from providers.checks import check_id
from providers.config_base import ProviderConfig
from providers.errors import ConfigError, InvalidRequestError
from providers.interfaces.vector_stores import VectorDocument, VectorSearchResult
from providers.vector_stores.filters import parse_datetime

MAX_METADATA_BYTES = 64 * 1024
DISTANCES = ("cosine", "l2", "inner_product")
# SQL identifiers and collection names from config: validated, then quoted.
# fullmatch, not "^...$": "$" also matches before a final newline ("memories\n").
IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class StoreConfig(ProviderConfig):
    """Keys every store understands (each store adds its own)."""

    dimension: int | None = Field(
        None, ge=1, le=16000,
        description="Vector length. Required to create a collection; checked against an existing one.")
    distance: str = Field("cosine", pattern="^(cosine|l2|inner_product)$", description="Similarity measure.")
    max_batch_size: int = Field(10_000, ge=1, le=1_000_000, description="Documents per store_documents call.")
    max_top_k: int = Field(1000, ge=1, le=100_000, description="Largest top_k / limit accepted.")
    hybrid_fusion: str = Field(
        "weighted", pattern="^(weighted|rrf)$",
        description="How hybrid_search fuses: weighted scores, or reciprocal-rank fusion.")
    rrf_k: int = Field(60, ge=1, description="The k of reciprocal-rank fusion (Cormack et al. use 60).")


def check_identifier(name: str, where: str) -> str:
    if not isinstance(name, str) or not IDENTIFIER_RE.fullmatch(name):
        raise ConfigError(f"{where}: {name!r} is not a plain identifier (letters, digits, '_'; "
                          "starts with a letter or '_'; up to 63 characters)")
    return name


def as_document(doc: Any, where: str) -> VectorDocument:
    """A `VectorDocument` from one (or from a dict with its fields, as JSON callers send)."""
    if isinstance(doc, VectorDocument):
        return doc
    if isinstance(doc, dict):
        unknown = set(doc) - {"id", "content", "embedding", "metadata", "created_at", "updated_at"}
        if unknown:
            raise InvalidRequestError(f"unknown field(s) {sorted(unknown)}", where)
        return VectorDocument(id=doc.get("id"), content=doc.get("content", ""), embedding=doc.get("embedding"),
                              metadata=doc.get("metadata") or {}, created_at=doc.get("created_at"),
                              updated_at=doc.get("updated_at"))
    raise InvalidRequestError(f"must be a VectorDocument or an object, got {type(doc).__name__}", where)


def check_ids(ids: Any, where: str, limit: int) -> list[str]:
    if not isinstance(ids, (list, tuple)):
        raise InvalidRequestError(f"must be a list of ids, got {type(ids).__name__}", where)
    if len(ids) > limit:
        raise InvalidRequestError(f"has {len(ids)} ids; the limit is {limit} (config.max_batch_size)", where)
    return [check_id(i, f"{where}[{n}]") for n, i in enumerate(ids)]


def check_vector(vector: Any, dimension: int | None, where: str) -> np.ndarray:
    try:
        arr = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidRequestError("must be a list of numbers", where) from None
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidRequestError(f"must be a flat, non-empty list of numbers (got shape {arr.shape})", where)
    if dimension is not None and arr.size != dimension:
        raise InvalidRequestError(f"has {arr.size} dimensions; this store holds {dimension}", where)
    if not np.isfinite(arr).all():
        raise InvalidRequestError("contains NaN or infinite values", where)
    return arr


def check_documents(documents: Any, dimension: int | None, max_batch: int,
                    where: str = "documents") -> list[VectorDocument]:
    """Validated copies (float32 embeddings, ISO dates parsed); nothing is written before this passes."""
    if isinstance(documents, (VectorDocument, dict)) or not isinstance(documents, (list, tuple)):
        raise InvalidRequestError(f"must be a list of documents, got {type(documents).__name__}", where)
    if not documents:
        raise InvalidRequestError("must not be empty", where)
    if len(documents) > max_batch:
        raise InvalidRequestError(f"has {len(documents)} documents; the limit is {max_batch} (config.max_batch_size)", where)
    out, seen = [], {}
    for n, raw in enumerate(documents):
        at = f"{where}[{n}]"
        doc = as_document(raw, at)
        doc_id = check_id(doc.id, f"{at}.id")
        if doc_id in seen:
            raise InvalidRequestError(f"id {doc_id!r} appears twice in one batch (also at [{seen[doc_id]}])", f"{at}.id")
        seen[doc_id] = n
        if not isinstance(doc.content, str):
            raise InvalidRequestError(f"must be a string, got {type(doc.content).__name__}", f"{at}.content")
        if "\x00" in doc.content:
            raise InvalidRequestError("must not contain NUL characters", f"{at}.content")
        if doc.embedding is None:
            raise InvalidRequestError("is required (embed the content first, or send text over HTTP)", f"{at}.embedding")
        vector = check_vector(doc.embedding, dimension, f"{at}.embedding")
        if dimension is None:
            dimension = vector.size  # the batch must at least agree with itself
        metadata = check_metadata(doc.metadata, f"{at}.metadata")
        created = _when(doc.created_at, f"{at}.created_at")
        out.append(replace(doc, embedding=vector, metadata=metadata, created_at=created,
                           updated_at=_when(doc.updated_at, f"{at}.updated_at")))
    return out


def check_metadata(metadata: Any, where: str) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidRequestError(f"must be an object, got {type(metadata).__name__}", where)
    try:
        encoded = orjson.dumps(metadata, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidRequestError(f"must be JSON-serializable ({exc})", where) from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise InvalidRequestError(f"is {len(encoded)} bytes as JSON; the limit is {MAX_METADATA_BYTES}", where)
    if b"\\u0000" in encoded:
        raise InvalidRequestError("must not contain NUL characters", where)
    if any(not isinstance(k, str) for k in metadata):
        raise InvalidRequestError("keys must be strings", where)
    _check_finite(metadata, where)
    return orjson.loads(encoded)


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequestError("contains NaN or infinite numbers", where)
    if isinstance(value, dict):
        for v in value.values():
            _check_finite(v, where)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_finite(v, where)


def _when(value: Any, where: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return parse_datetime(value.isoformat(), where) if isinstance(value, datetime) else None
    return parse_datetime(value, where)


def check_top_k(top_k: Any, limit: int, where: str = "top_k") -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidRequestError("must be a positive integer", where)
    if top_k > limit:
        raise InvalidRequestError(f"is {top_k}; the limit is {limit} (config.max_top_k)", where)
    return top_k


def check_weight(weight: Any, where: str = "vector_weight") -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= float(weight) <= 1.0:
        raise InvalidRequestError("must be a number between 0 and 1", where)
    return float(weight)


def check_min_score(min_score: Any) -> float | None:
    if min_score is None:
        return None
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not math.isfinite(min_score):
        raise InvalidRequestError("must be a finite number", "min_score")
    return float(min_score)


def fuse(vector_hits: list[VectorSearchResult], text_hits: list[VectorSearchResult], top_k: int,
         vector_weight: float, method: str = "weighted", rrf_k: int = 60) -> list[VectorSearchResult]:
    """One ranking from a vector ranking and a text ranking (both best first).

    ``weighted``: each score min-max normalized within its own list (a
    missing document scores 0 there), then ``w * vector + (1 - w) * text``.
    ``rrf``: ``w / (k + rank_vector) + (1 - w) / (k + rank_text)``, the
    weight kept so that ``vector_weight`` still means something.
    """
    by_id: dict[str, VectorSearchResult] = {}
    for hit in [*vector_hits, *text_hits]:
        by_id.setdefault(hit.id, hit)
    scores: dict[str, float] = {i: 0.0 for i in by_id}
    for hits, weight in ((vector_hits, vector_weight), (text_hits, 1.0 - vector_weight)):
        if method == "rrf":
            for rank, hit in enumerate(hits, start=1):
                scores[hit.id] += weight / (rrf_k + rank)
        else:
            for hit, norm in zip(hits, _min_max([h.score for h in hits])):
                scores[hit.id] += weight * norm
    ranked = sorted(by_id, key=lambda i: (-scores[i], i))[:top_k]
    return [replace(by_id[i], score=float(scores[i])) for i in ranked]


def _min_max(values: list[float]) -> Iterable[float]:
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        return [1.0] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


def space_differs(recorded: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """Whether vectors of ``wanted`` would mix with a collection of ``recorded``.

    Model and dimension decide; the provider's name is reported but may
    change (a renamed provider serving the same model fills the same space).
    """
    if not recorded:
        return False
    return (recorded.get("model"), recorded.get("dimension")) != (wanted.get("model"), wanted.get("dimension"))


def describe_space(space: dict[str, Any] | None) -> str:
    if not space:
        return "nothing recorded"
    return f"model {space.get('model')!r} ({space.get('dimension')}-d, provider {space.get('provider')!r})"
