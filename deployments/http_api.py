"""HTTP face of the router: OpenAI- and Cohere-compatible embeddings and the registry's read API.

Every error leaves as JSON in OpenAI's shape ``{"error": {"message", "type",
"param", "code"}}`` with a 4xx naming the field, or a 502/503/504 when a
provider (and its fallbacks) failed. Nothing a caller sends produces a 500.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from deployments.cohere_shapes import CohereEmbedRequest, CohereEmbedV2Request, check_embed, embed_answer
from providers.errors import (
    InvalidRequestError,
    ProviderOverloadedError,
    ProviderUnavailableError,
    RegistryError,
    RequestTooLargeError,
    is_backpressure,
)
from providers.registry.limits import check_texts
from providers.types import ProviderType

logger = logging.getLogger("ray.serve")


def route(method: str, path: str, *, hot: bool = False,
          **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a handler method of a route group; `mount` adds it, bound to its object.

    Handlers are methods of small classes that receive their collaborators in
    their constructors, so no FastAPI app exists at import time and none is
    changed by importing anything (`build_http_app` makes one per router).
    ``hot``: a busy route with a fixed path whose handler takes only the request
    and answers its own errors; `deployments.hot_routes` answers it before
    FastAPI's routing.
    """
    if hot and "{" in path:
        raise ValueError(f"a hot route has a fixed path, not {path!r}")

    def mark(handler: Callable[..., Any]) -> Callable[..., Any]:
        handler.__route__ = (method, path, options)  # type: ignore[attr-defined]
        handler.__hot__ = hot  # type: ignore[attr-defined]
        return handler

    return mark


def mount(app: FastAPI, *groups: object) -> dict[tuple[str, str], Callable[..., Any]]:
    """Add every marked handler of ``groups``, in the order the classes define them
    (Starlette matches routes in order: ``/entities/{id:path}`` before ``/entities``).
    Returns the hot ones, ``(method, path) -> bound handler``, for `HotRoutes`."""
    hot = {}
    for group in groups:
        for name, handler in vars(type(group)).items():
            marked = getattr(handler, "__route__", None)
            if marked is not None:
                method, path, options = marked
                app.add_api_route(path, getattr(group, name), methods=[method], **options)
                if handler.__hot__:
                    hot[(method, path)] = getattr(group, name)
    return hot


def new_app() -> FastAPI:
    """A FastAPI app that answers every error in the registry's JSON shape and
    documents it in its spec; the routes come from `mount`."""
    app = FastAPI(title="Provider registry", docs_url="/docs", redoc_url=None)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.openapi = lambda: openapi(app)  # type: ignore[method-assign]
    return app


def json_body(model: type[BaseModel] | dict[str, Any], required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` declaring a route's JSON body. Bodies are parsed by hand
    (`parse_body`: any Content-Type, errors in our shape), so FastAPI cannot see
    them; without this the spec, /docs and the fuzzer would not know them."""
    schema = model if isinstance(model, dict) else _inline_refs(model.model_json_schema(by_alias=True))
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Pydantic's ``$defs`` inlined: an operation's schema cannot point into another document."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.rsplit("/", 1)[1]]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}
ERRORS = {"4XX": "The request was refused; `error.param` names the field.",
          "5XX": "A provider (and its fallbacks) failed, timed out or is overloaded."}


def openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's spec, with the errors every route really answers (our JSON shape,
    400 rather than FastAPI's 422)."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        spec = get_openapi(title=app.title, version="1", routes=app.routes)
        for ops in spec.get("paths", {}).values():
            for op in ops.values():
                responses = op.setdefault("responses", {})
                responses.pop("422", None)
                for status, text in ERRORS.items():
                    responses[status] = {"description": text,
                                         "content": {"application/json": {"schema": ERROR_SCHEMA}}}
        spec.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
        spec.get("components", {}).get("schemas", {}).pop("ValidationError", None)
        _bound_integers(spec)
        app.openapi_schema = spec
    return app.openapi_schema



INT64 = (-(2**63), 2**63 - 1)


def _bound_integers(node: Any) -> None:
    """Every integer in the spec, with the bounds the parser really has: an
    integer outside 64 bits is a 400 (schemathesis sent -57245697410733539328
    as a "valid" priority), so the spec says so instead of promising any size."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            node.setdefault("minimum", INT64[0])
            node.setdefault("maximum", INT64[1])
        for value in node.values():
            _bound_integers(value)
    elif isinstance(node, list):
        for value in node:
            _bound_integers(value)


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., min_length=1, description="Name of an embeddings provider.")
    # Parsed as Any so a wrong item gets our message naming it; the schema says what passes.
    input: str | list[Any] = Field(..., description="A string or a list of strings.", json_schema_extra={
        "anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}]})
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status, media_type="application/json")


def error_response(status: int, message: str, param: str | None = None, code: str | None = None) -> Response:
    kind = "invalid_request_error" if status < 500 else "provider_error"
    return json_response({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)


def registry_error_response(exc: BaseException, param: str | None = None) -> Response:
    """Map any exception from the registry (possibly wrapped by Ray) to a response.

    ``param`` names the request field an error without its own field is
    about (``model`` for an unknown or failing provider).
    """
    cause = getattr(exc, "cause", None)
    err = cause if isinstance(cause, BaseException) else exc
    if is_backpressure(err):  # a provider's queue full on a call outside the chain (reads, describe)
        err = ProviderOverloadedError(f"a provider is overloaded: {err}; retry later")
    if isinstance(err, ProviderOverloadedError):
        # Overload is "come back later", not a failure: 503 with Retry-After (RFC 9110: whole
        # seconds), so a well-behaved client backs off instead of hammering a full queue.
        response = error_response(503, str(err), param, "overloaded")
        response.headers["retry-after"] = str(max(1, math.ceil(err.retry_after_s)))
        return response
    if isinstance(err, RegistryError):
        status = err.http_status if err.http_status != 500 else 503
        response = error_response(status, str(err), getattr(err, "field", None) or param, type(err).__name__)
        if isinstance(err, ProviderUnavailableError):  # known down: when a trial call may go through
            response.headers["retry-after"] = str(max(1, math.ceil(err.retry_after_s)))
        return response
    logger.exception("unexpected error in the registry router")
    return error_response(503, f"registry error: {type(err).__name__}", None, "internal")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused (413) past ``max_bytes``: on the declared Content-Length
    before reading anything, and while reading a body that declares none
    (chunked), so no caller makes the router buffer more than the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(f"is {int(declared)} bytes", max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(f"is over {max_bytes} bytes", max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(what: str, max_bytes: int) -> RequestTooLargeError:
    return RequestTooLargeError(f"{what}; the limit is {max_bytes} (registry.max_request_bytes)", "body")


async def read_json_object(request: Request, max_bytes: int, empty_ok: bool = False) -> dict[str, Any]:
    """The body as a JSON object, whatever Content-Type says; errors name ``body``."""
    raw = await read_body(request, max_bytes)
    if empty_ok and not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"malformed JSON ({exc})", "body") from None
    if not isinstance(data, dict):
        raise InvalidRequestError(f"must be a JSON object, got {type(data).__name__}", "body")
    return data


async def parse_body(request: Request, model: type[BaseModel], max_bytes: int) -> Any:
    return validate_body(await read_json_object(request, max_bytes), model)


def validate_body(data: dict[str, Any], model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequestError(*_first_problem(exc.errors(include_url=False, include_input=False))) from None


def _first_problem(errors: list[dict[str, Any]]) -> tuple[str, str]:
    """Pydantic's errors as (message, field): the first field named, the rest appended."""
    found = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        if err.get("type") == "json_invalid":
            found.append(("body", "malformed JSON"))
            continue
        found.append((loc, "unknown field" if err.get("type") == "extra_forbidden" else err.get("msg", "invalid")))
    if not found:
        return "invalid request", "body"
    (field, first), rest = found[0], found[1:]
    return first + "".join(f"; {loc}: {msg}" for loc, msg in rest), field


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    err = InvalidRequestError(*_first_problem(exc.errors()))
    return error_response(400, str(err), err.field, "invalid_request")


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    response = error_response(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        # RFC 9110: Allow lists every method the path answers. Starlette names only the
        # first route whose path matched (``/documents/{id}`` has a GET and a DELETE route).
        allowed = {m for r in request.app.routes if r.matches(request.scope)[0] is not Match.NONE
                   for m in getattr(r, "methods", None) or ()}
        if allowed:
            response.headers["allow"] = ", ".join(sorted(allowed))
    return response


class BodyReader:
    """Every handler reads its body through these two, with the registry's size limit."""

    def __init__(self, max_request_bytes: int) -> None:
        self.max_request_bytes = max_request_bytes

    async def parse(self, request: Request, model: type[BaseModel]) -> Any:
        return await parse_body(request, model, self.max_request_bytes)

    async def json(self, request: Request, empty_ok: bool = False) -> dict[str, Any]:
        return await read_json_object(request, self.max_request_bytes, empty_ok)


class CoreRoutes:
    """OpenAI- and Cohere-compatible embeddings, the model and provider listings, health and stats."""

    def __init__(self, core: Any, observability: Any, body: BodyReader) -> None:
        self.core, self.observability, self.body = core, observability, body

    @route("POST", "/v1/embeddings", hot=True, openapi_extra=json_body(EmbeddingsRequest))
    async def embeddings(self, request: Request) -> Response:
        # The body is parsed here, not by FastAPI, so that a client that omits
        # Content-Type (curl -d does) is still understood, and errors keep our shape.
        try:
            body = await self.body.parse(request, EmbeddingsRequest)
        except InvalidRequestError as exc:
            return error_response(exc.http_status, str(exc), exc.field, "invalid_request")
        texts = [body.input] if isinstance(body.input, str) else body.input
        try:
            if texts and all(isinstance(t, int) for t in texts):
                raise InvalidRequestError("token arrays are not supported; send strings", "input")
            s = self.core.settings
            check_texts(texts, "input", s.max_texts_per_request, s.max_chars_per_text)
            vectors = await self.core.call(ProviderType.EMBEDDING, body.model, "embed_texts", [texts])
        except Exception as exc:
            return registry_error_response(rename_field(exc, "texts", "input"), param="model")
        matrix = np.asarray(vectors, dtype=np.float32)
        if body.dimensions is not None and body.dimensions != matrix.shape[1]:
            return error_response(400, f"dimensions: provider {body.model!r} returns {matrix.shape[1]}", "dimensions")
        if body.encoding_format == "base64":
            data = [{"object": "embedding", "index": i, "embedding": base64.b64encode(row.astype("<f4").tobytes()).decode()}
                    for i, row in enumerate(matrix)]
        else:
            data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(matrix)]
        words = sum(len(t.split()) for t in texts)  # approximate: whitespace words, not model tokens
        return json_response({"object": "list", "data": data, "model": body.model,
                              "usage": {"prompt_tokens": words, "total_tokens": words}})

    @route("POST", "/v1/embed", hot=True, openapi_extra=json_body(CohereEmbedRequest))
    async def cohere_embed_v1(self, request: Request) -> Response:
        """Cohere's v1 embed (``cohere.Client.embed``); shapes in `deployments.cohere_shapes`."""
        return await self._cohere_embed(request, CohereEmbedRequest, 1)

    @route("POST", "/v2/embed", hot=True, openapi_extra=json_body(CohereEmbedV2Request))
    async def cohere_embed_v2(self, request: Request) -> Response:
        """Cohere's v2 embed (``cohere.ClientV2.embed``)."""
        return await self._cohere_embed(request, CohereEmbedV2Request, 2)

    async def _cohere_embed(self, request: Request, model: type[CohereEmbedRequest], version: int) -> Response:
        try:
            body = await self.body.parse(request, model)
            s = self.core.settings
            texts, types = check_embed(body, s.max_texts_per_request, s.max_chars_per_text)
            if body.input_type == "search_query":  # each text a query: a model may prefix queries
                vectors = await asyncio.gather(*(self.core.call(ProviderType.EMBEDDING, body.model, "embed_query", [t])
                                                 for t in texts))
            else:
                vectors = await self.core.call(ProviderType.EMBEDDING, body.model, "embed_texts", [texts])
        except Exception as exc:
            return registry_error_response(exc, param="model")
        matrix = np.asarray(vectors, dtype=np.float32)
        wanted = getattr(body, "output_dimension", None)
        if wanted is not None and wanted != matrix.shape[1]:
            return error_response(400, f"output_dimension: provider {body.model!r} returns {matrix.shape[1]}",
                                  "output_dimension", "invalid_request")
        return json_response(embed_answer(version, texts, matrix, types))

    @route("GET", "/v1/models")
    async def models(self) -> Response:
        names = self.core.table.names(ProviderType.EMBEDDING)
        return json_response({"object": "list", "data": [
            {"id": n, "object": "model", "owned_by": "provider-registry"} for n in names]})

    @route("GET", "/v1/providers")
    async def http_list_providers(self, type: str | None = None, include_instances: bool = False) -> Response:
        try:
            return json_response(await self.observability.list_providers(type, include_instances))
        except Exception as exc:
            return registry_error_response(exc)

    @route("GET", "/v1/providers/{ptype}/{name}/health")
    async def http_health(self, ptype: str, name: str) -> Response:
        try:
            report = await self.observability.health_check(ptype, name)
        except Exception as exc:
            return registry_error_response(exc)
        return json_response(report, 200 if report.get("status") == "healthy" else 503)

    @route("GET", "/v1/stats")
    async def http_stats(self) -> Response:
        return json_response(await self.observability.get_stats())

    @route("GET", "/healthz")
    async def healthz(self) -> Response:
        table = self.core.table
        return json_response({"status": "ok", "providers": len(table.routes), "revision": table.revision})


def rename_field(exc: BaseException, old: str, new: str) -> BaseException:
    """Errors checked by the shared limits (or a provider) name the Python argument;
    HTTP callers sent another field (``input`` for ``texts``)."""
    cause = getattr(exc, "cause", None)  # raised in a replica: Ray's wrapper keeps it as .cause
    err = cause if isinstance(cause, InvalidRequestError) else exc
    if isinstance(err, InvalidRequestError) and err.field and err.field.startswith(old):
        return type(err)(str(err).split(": ", 1)[-1], new + err.field[len(old):])
    return exc
