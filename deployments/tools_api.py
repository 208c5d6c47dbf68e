"""Tools and rerankers over HTTP, and the check of tool arguments.

A tool's arguments are validated in the router against the JSON Schema the
tool publishes (``get_input_schema``), for HTTP and Python callers alike,
before any provider sees them: a bad argument is a 400 naming its path
(``arguments.memories[0].content``), never a failure inside a replica. A
limit of the schema (``maxItems``, ``maximum``, ...) is named with the tool,
and every string and list must also keep within the registry's limits.
A reranker's own ``get_max_candidates()`` is checked here too, before the
candidates travel to it.

``POST /v1/rerank`` follows Cohere's (v1) and Jina's shape: ``{model, query,
documents, top_n, return_documents}`` -> ``{results: [{index,
relevance_score, document?}]}``, best first; ``POST /v2/rerank`` is Cohere's
v2 (string documents, none echoed). ``relevance_score`` lies in [0, 1]
(`deployments.cohere_shapes.relevance_scores` says how).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from deployments.cohere_shapes import CohereRerankV2Request, api_meta, check_rerank_documents, relevance_scores
from deployments.http_api import BodyReader, json_body, json_response, registry_error_response, rename_field, route
from providers.errors import InvalidRequestError
from providers.idempotency import MAX_KEY_CHARS, REQUEST_ID_HEADER
from providers.interfaces.rerankers import RerankCandidate
from providers.registry.limits import check_text, check_tree, limit_error
from providers.registry.table import Route
from providers.types import ProviderType

TOOL = ProviderType.TOOL
RERANK_METHODS = {"rerank": "candidates", "rerank_with_fusion": "candidates", "batch_score_pairs": "documents"}
# JSON Schema keywords that bound a size: their errors name the keyword and the tool.
LIMIT_KEYWORDS = ("maxItems", "maxLength", "maxProperties", "maximum", "exclusiveMaximum")


def schema_error(schema: dict[str, Any], arguments: Any, root: str = "arguments",
                 owner: str = "the input schema") -> InvalidRequestError | None:
    """The first way ``arguments`` breaks ``schema``, naming the exact path; None if valid.
    ``owner`` names the schema in the message of a broken limit."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(arguments), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return None
    err = errors[0]
    path = root + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
    if err.validator == "required":  # name the missing property, not its parent
        missing = [p for p in err.validator_value if isinstance(err.instance, dict) and p not in err.instance]
        if missing:
            return InvalidRequestError("is required", f"{path}.{missing[0]}")
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = set((err.schema or {}).get("properties", {}))
        extra = sorted(k for k in err.instance if k not in known)
        if extra:
            return InvalidRequestError("unknown argument", f"{path}.{extra[0]}")
    if err.validator in LIMIT_KEYWORDS:
        return limit_error(_size(err.validator, err.instance), err.validator_value, f"{err.validator} in {owner}", path)
    return InvalidRequestError(err.message[:300], path)


def _size(keyword: str, instance: Any) -> str:
    """What was sent, in the words of the other limits' errors (``has 300 items``)."""
    if keyword == "maxItems":
        return f"has {len(instance)} items"
    if keyword == "maxLength":
        return f"has {len(instance)} characters"
    if keyword == "maxProperties":
        return f"has {len(instance)} properties"
    return f"is {instance}"


class ArgumentGuard:
    """The core's guard (`deployments.router_core.Guard`) for checks that need the
    provider's own answers, read once per version by ``core.describe``."""

    async def before_call(self, core: Any, route: Route, method: str, args: list[Any],
                          kwargs: dict[str, Any]) -> None:
        if route.type is TOOL and method == "invoke":
            await self._check_tool_arguments(core, route, args, kwargs)
        elif route.type is ProviderType.RERANKER and method in RERANK_METHODS:
            await self._check_max_candidates(core, route, RERANK_METHODS[method], args, kwargs)

    async def before_attempt(self, core: Any, route: Route, method: str) -> None:
        return None

    async def _check_tool_arguments(self, core: Any, route: Route, args: list[Any], kwargs: dict[str, Any]) -> None:
        arguments = args[0] if args else kwargs.get("arguments")
        if not isinstance(arguments, dict):
            raise InvalidRequestError(f"must be an object, got {type(arguments).__name__}", "arguments")
        info = await core.describe(TOOL, route.name)
        problem = schema_error(info["getters"].get("get_input_schema") or {}, arguments,
                               owner=f"the input schema of {route.name}")
        if problem is not None:
            raise problem
        check_tree(arguments, "arguments", core.settings)

    async def _check_max_candidates(self, core: Any, route: Route, field: str, args: list[Any],
                                    kwargs: dict[str, Any]) -> None:
        """Refuse what the reranker would refuse, before the candidates travel to its replica."""
        candidates = args[1] if len(args) > 1 else kwargs.get(field)
        if not isinstance(candidates, (list, tuple)):
            return  # the reranker names the type error
        try:
            limit = (await core.describe(ProviderType.RERANKER, route.name))["getters"].get("get_max_candidates")
        except Exception:  # cannot ask it now: its own check still applies, and a fallback may serve
            return
        if isinstance(limit, int) and len(candidates) > limit:
            raise limit_error(f"has {len(candidates)} candidates", limit,
                              f"config.max_candidates of reranker {route.name!r}", field)



async def list_tools(core: Any) -> list[dict[str, Any]]:
    """Every tool provider with its name, description and input schema."""
    tools = []
    for name in core.table.names(TOOL):
        try:
            g = (await core.describe(TOOL, name))["getters"]
            tools.append({"name": name, "tool_name": g.get("get_name"), "description": g.get("get_description"),
                          "input_schema": g.get("get_input_schema")})
        except Exception as exc:  # one broken tool must not hide the others
            tools.append({"name": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
    return tools


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., min_length=1, description="Name of a reranker provider.")
    query: str = Field(..., min_length=1)
    documents: list[Any] = Field(..., description="Strings, or objects with 'text'.", json_schema_extra={
        "type": "array", "minItems": 1, "items": {"anyOf": [
            {"type": "string"}, {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}]}})
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False


class ToolRoutes:
    """Tools and rerankers over HTTP."""

    def __init__(self, core: Any, body: BodyReader) -> None:
        self.core, self.body = core, body

    @route("GET", "/v1/tools")
    async def http_tools(self) -> Response:
        return json_response({"tools": await list_tools(self.core)})

    @route("POST", "/v1/tools/{name}", openapi_extra=json_body({"type": "object", "description": "The tool's arguments (GET /v1/tools lists each tool's schema)."}, required=False))
    async def http_invoke_tool(self, name: str, request: Request) -> Response:
        try:
            arguments = await self.body.json(request, empty_ok=True)
            arguments = await self._with_idempotency_key(name, arguments, request.headers.get(REQUEST_ID_HEADER))
            result = await self.core.call(TOOL, name, "invoke", [arguments])
        except Exception as exc:
            return registry_error_response(bare_path(exc), param="name")
        return json_response({"tool": name, "result": result})

    async def _with_idempotency_key(self, name: str, arguments: Any, request_id: str | None) -> Any:
        """A tool that takes an ``idempotency_key`` (memory.store) gets the request's id when
        the caller set none, so HAProxy's retry of the call writes the same ids again
        (providers/idempotency.py). The schema is read once per tool version (describe)."""
        if not request_id or not isinstance(arguments, dict) or "idempotency_key" in arguments:
            return arguments
        try:
            schema = (await self.core.describe(TOOL, name))["getters"].get("get_input_schema") or {}
        except Exception:  # the call itself names what is wrong with the tool
            return arguments
        if "idempotency_key" not in (schema.get("properties") or {}):
            return arguments
        return {**arguments, "idempotency_key": request_id[:MAX_KEY_CHARS]}

    @route("POST", "/v1/rerank", hot=True, openapi_extra=json_body(RerankRequest))
    async def http_rerank(self, request: Request) -> Response:
        """Cohere's v1 rerank (``cohere.Client.rerank``), also Jina's shape."""
        try:
            body = await self.body.parse(request, RerankRequest)
            texts, scored = await self._rerank(body)
        except Exception as exc:
            return registry_error_response(rename_field(exc, "candidates", "documents"), param="model")
        results = [{"index": i, "relevance_score": score,
                    **({"document": {"text": texts[i]}} if body.return_documents else {})} for i, score in scored]
        return json_response({"id": str(uuid.uuid4()), "model": body.model, "results": results,
                              "meta": {"documents": len(texts), **api_meta(1, search_units=1)}})

    @route("POST", "/v2/rerank", hot=True, openapi_extra=json_body(CohereRerankV2Request))
    async def http_rerank_v2(self, request: Request) -> Response:
        """Cohere's v2 rerank (``cohere.ClientV2.rerank``): documents are strings, none echoed."""
        try:
            body = await self.body.parse(request, CohereRerankV2Request)
            _, scored = await self._rerank(body, objects=False)
        except Exception as exc:
            return registry_error_response(rename_field(exc, "candidates", "documents"), param="model")
        return json_response({"id": str(uuid.uuid4()), "results": [{"index": i, "relevance_score": score}
                                                                  for i, score in scored],
                              "meta": api_meta(2, search_units=1)})

    async def _rerank(self, body: Any, objects: bool = True) -> tuple[list[str], list[tuple[int, float]]]:
        """The documents' texts and ``(index, relevance_score)`` best first, scores in [0, 1]."""
        s = self.core.settings
        check_text(body.query, "query", s.max_chars_per_text)
        texts = check_rerank_documents(body.documents, s.max_texts_per_request, s.max_chars_per_text, objects)
        candidates = [RerankCandidate(id=str(i), content=t) for i, t in enumerate(texts)]
        ranked = await self.core.call(ProviderType.RERANKER, body.model, "rerank", [body.query, candidates],
                                      {"top_k": body.top_n})
        # The first of the chain that answers describes it (read once per version): the one that
        # served unless the named one failed this call only; a chain mixing kinds is mapped by that one.
        info = await self.core.describe(ProviderType.RERANKER, body.model, use_fallback=True)
        kind = info["getters"].get("get_reranker_type")
        scores = relevance_scores([float(r.rerank_score) for r in ranked], kind, body.model)
        return texts, [(int(r.id), score) for r, score in zip(ranked, scores)]


def bare_path(exc: BaseException) -> BaseException:
    """Over HTTP the body *is* the arguments object: name ``query``, not ``arguments.query``."""
    cause = getattr(exc, "cause", None)
    err = cause if isinstance(cause, InvalidRequestError) else exc
    if isinstance(err, InvalidRequestError) and err.field and err.field.startswith("arguments."):
        return InvalidRequestError(str(err).split(": ", 1)[-1], err.field[len("arguments."):])
    return exc
