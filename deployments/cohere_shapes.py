"""Cohere's embed and rerank shapes, for the routes of http_api (embed) and tools_api (rerank).

Requests are what Cohere's official Python client sends (``cohere.Client``:
``/v1/embed``, ``/v1/rerank``; ``cohere.ClientV2``: ``/v2/embed``,
``/v2/rerank``), answers what it parses. What the registry cannot honour
is refused with a 400 naming the field, never ignored: images and
``inputs`` (text only), the quantized ``embedding_types`` (``int8``,
``uint8``, ``binary``, ``ubinary``: Cohere's calibration is its own),
``truncate`` other than ``END`` (the models cut over-long texts at the end),
``max_tokens``. ``priority`` is accepted: it orders work, it changes no answer.

Relevance scores: Cohere's lie in [0, 1], and so do ours (`relevance_scores`).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from providers.errors import InvalidRequestError, ProviderCallError
from providers.registry.limits import check_text, check_texts, limit_error

INPUT_TYPES = Literal["search_document", "search_query", "classification", "clustering"]
EMBEDDING_TYPES = ("float", "base64")
# What the spec documents is what is accepted (schemathesis' positive_data_acceptance
# sends schema-valid bodies and expects no 400): fields parse leniently, as Any, so
# that a wrong one gets our message naming it, and their schemas say what passes.
STRINGS = {"type": "array", "minItems": 1, "items": {"type": "string"}}
NOTHING = {"anyOf": [{"type": "array", "maxItems": 0}, {"type": "null"}]}


def _embed_schema(schema: dict[str, Any]) -> None:
    """``texts`` is required (the registry embeds text only, Cohere also takes images instead)."""
    props = schema["properties"]
    props["texts"] = {**STRINGS, "description": props["texts"].get("description", "")}
    schema["required"] = sorted({*schema.get("required", []), "texts"})
# Float rounding: a cosine of identical vectors computes to 1 + 2e-16, (1 + 1 + 2e-16) / 2 > 1.
SCORE_SLACK = 1e-6


class CohereEmbedRequest(BaseModel):
    """``POST /v1/embed``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_embed_schema)

    model: str = Field(..., min_length=1, description="Name of an embeddings provider.")
    texts: list[Any] | None = Field(None, description="The strings to embed (required: no images).")
    images: list[Any] | None = Field(None, description="Not supported (400 when not empty).",
                                     json_schema_extra=NOTHING)
    input_type: INPUT_TYPES | None = Field(
        None, description="search_query embeds each text as a query; the others (and none) as documents.")
    embedding_types: list[Any] | None = Field(
        None, description="Any of 'float', 'base64' (float32 little-endian); given: answered by type.",
        json_schema_extra={"anyOf": [{"type": "array", "minItems": 1, "items": {"enum": list(EMBEDDING_TYPES)}},
                                     {"type": "null"}]})
    truncate: Literal["NONE", "START", "END"] | None = Field(
        None, description="Only END is supported.", json_schema_extra={"anyOf": [{"const": "END"}, {"type": "null"}]})


class CohereEmbedV2Request(CohereEmbedRequest):
    """``POST /v2/embed``: ``input_type`` is required, as in Cohere's v2."""

    input_type: INPUT_TYPES = Field(  # type: ignore[assignment]
        ..., description="search_query embeds each text as a query; the others as documents.")
    inputs: list[Any] | None = Field(None, description="Not supported (400 when not empty).",
                                     json_schema_extra=NOTHING)
    max_tokens: int | None = Field(None, description="Not supported (400 when given).",
                                   json_schema_extra={"anyOf": [{"type": "null"}]})
    output_dimension: int | None = Field(None, ge=1, description="Must equal the model's dimension.")
    priority: int | None = Field(None, description="Accepted; changes no answer.")


class CohereRerankV2Request(BaseModel):
    """``POST /v2/rerank`` (``/v1/rerank`` is `deployments.tools_api.RerankRequest`)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., min_length=1, description="Name of a reranker provider.")
    query: str = Field(..., min_length=1)
    documents: list[Any] = Field(..., description="Strings.", json_schema_extra=STRINGS)
    top_n: int | None = Field(None, ge=1)
    priority: int | None = Field(None, description="Accepted; changes no answer.")


def check_embed(body: CohereEmbedRequest, max_texts: int, max_chars: int) -> tuple[list[str], list[str] | None]:
    """The texts and the embedding types asked for (None: v1's plain float answer); 400s name the field."""
    for field in ("images", "inputs"):
        if getattr(body, field, None):
            raise InvalidRequestError("is not supported: the registry embeds texts only; send texts", field)
    if getattr(body, "max_tokens", None) is not None:
        raise InvalidRequestError("is not supported: the models cut over-long texts themselves", "max_tokens")
    if body.truncate not in (None, "END"):
        raise InvalidRequestError(f"{body.truncate!r} is not supported: the models cut over-long texts at the "
                                  "end (END)", "truncate")
    if body.texts is None:
        raise InvalidRequestError("is required", "texts")
    texts = check_texts(body.texts, "texts", max_texts, max_chars)
    types = body.embedding_types
    if types is not None:
        if not types:
            raise InvalidRequestError("must not be empty", "embedding_types")
        for i, kind in enumerate(types):
            if kind not in EMBEDDING_TYPES:
                raise InvalidRequestError(f"{kind!r} is not supported; use any of {list(EMBEDDING_TYPES)}",
                                          f"embedding_types[{i}]")
        types = list(dict.fromkeys(types))
    elif isinstance(body, CohereEmbedV2Request):
        types = ["float"]  # v2 answers by type always; float is Cohere's default
    return texts, types


def embed_answer(version: int, texts: list[str], matrix: np.ndarray, types: list[str] | None) -> dict[str, Any]:
    """Cohere's embed answer: v1 without types a list of float lists
    (``embeddings_floats``), otherwise ``{"float": [...], "base64": [...]}``."""
    meta = api_meta(version, input_tokens=sum(len(t.split()) for t in texts))  # whitespace words, not tokens
    head = {"id": str(uuid.uuid4()), "texts": texts, "meta": meta}
    if types is None:
        return {"response_type": "embeddings_floats", **head, "embeddings": matrix}
    by_type: dict[str, Any] = {}
    for kind in types:
        by_type[kind] = matrix if kind == "float" else [
            base64.b64encode(row.astype("<f4").tobytes()).decode() for row in matrix]
    return {"response_type": "embeddings_by_type", **head, "embeddings": by_type}


def check_rerank_documents(documents: list[Any], max_texts: int, max_chars: int,
                           objects: bool = True) -> list[str]:
    """The documents' texts; ``objects``: v1 also takes ``{"text": ...}``. 400s name ``documents[i]``."""
    if not documents:
        raise InvalidRequestError("must not be empty", "documents")
    if len(documents) > max_texts:
        raise limit_error(f"has {len(documents)} documents", max_texts, "registry.max_texts_per_request", "documents")
    texts = []
    for i, doc in enumerate(documents):
        if objects and isinstance(doc, dict):
            texts.append(check_text(doc.get("text"), f"documents[{i}].text", max_chars))
        else:
            texts.append(check_text(doc, f"documents[{i}]", max_chars))
    return texts


def relevance_scores(scores: list[float], reranker_type: Any, name: str) -> list[float]:
    """A reranker's scores as Cohere's ``relevance_score``, in [0, 1], order kept.

    The embedding-similarity reranker scores by cosine, in [-1, 1]: it is
    mapped by ``(cos + 1) / 2``, so 1 stays 1, orthogonal is 0.5 and opposite
    is 0. Other rerankers already answer in [0, 1] (a cross-encoder's default
    ``normalization: sigmoid``, vLLM's activated scores, Cohere's own); a
    score outside it (a cross-encoder with ``normalization: none`` gives
    logits) is the reranker's misconfiguration, answered as a 502 that says
    so rather than clamped into a meaningless 0 or 1.
    """
    if reranker_type == "embedding_similarity":
        scores = [(s + 1.0) / 2.0 for s in scores]
    out = []
    for s in scores:
        if not -SCORE_SLACK <= s <= 1.0 + SCORE_SLACK:
            raise ProviderCallError(
                f"reranker {name!r} ({reranker_type}) returned the score {s:.6g}, outside the 0..1 of "
                "relevance_score; give it config.normalization: sigmoid (or minmax)")
        out.append(min(1.0, max(0.0, float(s))))
    return out


def api_meta(version: int, **billed: int) -> dict[str, Any]:
    return {"api_version": {"version": str(version)}, "billed_units": billed}
