"""``/v1/admin/...``: register, reload, swap, rollback, delete, set fallback, monitoring, apply.

Guarded by ``Authorization: Bearer <token>``, the token read by the router
from the environment variable named by ``registry.admin_token_env``
(default ``PROVIDER_REGISTRY_ADMIN_TOKEN``). No token configured: every
admin call is refused with 403 saying how to enable it. No Authorization
header: 403; a token that does not match (or another scheme): 401. The comparison is constant-time (`hmac.compare_digest`) and the
token appears in no response, log line or error. The class-path allowlist
applies here exactly as in the Python API (same router methods).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from deployments.http_api import (
    BodyReader,
    error_response,
    json_body,
    json_response,
    read_body,
    registry_error_response,
    route,
    validate_body,
)
from providers.errors import InvalidRequestError
from providers.registry.config import ProviderSpec, RegistryConfig


class FallbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fallback: list[str] = Field(..., description="Names of the same type, in order; [] clears.")


class ReembedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    embedder: str | None = Field(None, description="Embeddings provider to re-embed with; default: the store's.")
    target: str | None = Field(None, description="New collection name; default: derived from the model.")
    batch_size: int = Field(256, ge=1, le=10_000)


class ApplyBody(BaseModel):
    """The wrapped form of an apply body; a bare providers.yaml mapping is the other."""

    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any] = Field(..., description="The providers.yaml mapping, ${VAR}s already interpolated.")
    dry_run: bool | None = Field(None, description="Plan only; change nothing.")
    prune: bool | None = Field(None, description="Delete providers the file does not name.")


YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


class MonitoringBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


# A swap names only what changes: the spec's keys, none of them required.
SWAP_BODY = {k: v for k, v in json_body(ProviderSpec)["requestBody"]["content"]["application/json"]["schema"].items()
             if k != "required"}


def admin_denied(request: Request, env_name: str) -> Response | None:
    """None when the request carries the admin token; else the 403/401 to answer."""
    expected = os.environ.get(env_name, "")
    if not expected:
        return error_response(403, f"admin endpoints are disabled: set the environment variable {env_name} "
                                   "in the environment Ray is started with (not runtime_env: Ray logs its env_vars)", None, "admin_disabled")
    header = request.headers.get("authorization", "").strip()
    if not header:  # no credentials at all: forbidden; credentials that fail: unauthorized
        return error_response(403, "admin endpoints need the admin token (Authorization: Bearer <token>)",
                              None, "forbidden")
    scheme, _, given = header.partition(" ")
    # compare_digest always, even for a wrong scheme: the time taken says nothing about the token.
    # Over SHA-256 digests, so both sides have one length: compare_digest on raw
    # values of different lengths returns at once, which would tell the length.
    matches = hmac.compare_digest(_digest(given.strip()), _digest(expected))
    if scheme.lower() != "bearer" or not matches:
        return error_response(401, "wrong admin token (Authorization: Bearer <token>)", None, "unauthorized")
    return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class AdminRoutes:
    """Each handler checks the token, then calls the same part a Python caller reaches."""

    def __init__(self, core: Any, lifecycle: Any, rollout: Any, vectors: Any, body: BodyReader,
                 applier: Any = None) -> None:
        self.core, self.lifecycle, self.rollout, self.vectors, self.body = core, lifecycle, rollout, vectors, body
        self.applier = applier

    async def _admin(self, request: Request, op: Any, status: int = 200) -> Response:
        denied = admin_denied(request, self.core.settings.admin_token_env)
        if denied is not None:
            return denied
        try:
            return json_response(await op(), status)
        except Exception as exc:
            return registry_error_response(exc)

    @route("POST", "/v1/admin/providers/{ptype}/{name}", openapi_extra=json_body(ProviderSpec))
    async def admin_register(self, request: Request, ptype: str, name: str) -> Response:
        async def op() -> Any:
            body = await self.body.json(request, empty_ok=True)
            if "class" not in body:
                raise InvalidRequestError("is required", "class")
            class_path = body.pop("class")
            config, metadata = body.pop("config", {}), body.pop("metadata", {})
            return await self.lifecycle.register_provider(ptype, name, class_path, config, metadata, body)

        return await self._admin(request, op, 201)

    @route("POST", "/v1/admin/providers/{ptype}/{name}/reload")
    async def admin_reload(self, request: Request, ptype: str, name: str) -> Response:
        return await self._admin(request, lambda: self.rollout.reload_provider(ptype, name))

    @route("POST", "/v1/admin/providers/{ptype}/{name}/swap", openapi_extra=json_body(SWAP_BODY, required=False))
    async def admin_swap(self, request: Request, ptype: str, name: str) -> Response:
        async def op() -> Any:
            return await self.rollout.swap_provider(ptype, name, await self.body.json(request, empty_ok=True))

        return await self._admin(request, op)

    @route("POST", "/v1/admin/providers/{ptype}/{name}/rollback")
    async def admin_rollback(self, request: Request, ptype: str, name: str) -> Response:
        return await self._admin(request, lambda: self.rollout.rollback_provider(ptype, name))

    @route("DELETE", "/v1/admin/providers/{ptype}/{name}")
    async def admin_delete(self, request: Request, ptype: str, name: str) -> Response:
        return await self._admin(request, lambda: self.lifecycle.delete_provider(ptype, name))

    @route("PUT", "/v1/admin/providers/{ptype}/{name}/fallback", openapi_extra=json_body(FallbackBody))
    async def admin_fallback(self, request: Request, ptype: str, name: str) -> Response:
        async def op() -> Any:
            body = await self.body.parse(request, FallbackBody)
            return await self.lifecycle.set_fallback_provider(ptype, name, body.fallback)

        return await self._admin(request, op)

    @route("POST", "/v1/admin/vector_stores/{name}/reembed", openapi_extra=json_body(ReembedBody, required=False))
    async def admin_reembed(self, request: Request, name: str) -> Response:
        """One step of a re-embed (one batch); repeat until the answer says ``done``."""
        async def op() -> Any:
            body = validate_body(await self.body.json(request, empty_ok=True), ReembedBody)
            return await self.vectors.reembed_step(name, body.embedder, body.target, body.batch_size)

        return await self._admin(request, op)

    @route("DELETE", "/v1/admin/vector_stores/{name}/reembed")
    async def admin_reembed_abort(self, request: Request, name: str) -> Response:
        """Give up a re-embed: the store takes writes again; the staging route goes."""
        return await self._admin(request, lambda: self.vectors.reembed_abort(name))

    @route("GET", "/v1/admin/export")
    async def admin_export(self, request: Request) -> Response:
        """The live route table as a providers.yaml mapping (secrets as ${...} placeholders)."""
        async def op() -> Any:
            from providers.registry.export import export_table

            await self.core.refresh()
            registry = self.core.settings.model_dump(mode="json", by_alias=True, exclude_defaults=True)
            doc, needed = export_table(self.core.table, registry)
            return {"config": doc, "set_these_variables": needed, "revision": self.core.table.revision}

        return await self._admin(request, op)

    @route("POST", "/v1/admin/monitoring", openapi_extra=json_body(MonitoringBody))
    async def admin_monitoring(self, request: Request) -> Response:
        async def op() -> Any:
            body = await self.body.parse(request, MonitoringBody)
            return await self.lifecycle.set_monitoring(body.enabled)

        return await self._admin(request, op)

    @route("POST", "/v1/admin/apply", openapi_extra=json_body(ApplyBody, required=False))
    async def admin_apply(self, request: Request) -> Response:
        """Make the registry follow a providers.yaml: the JSON mapping (bare, or wrapped as
        ``{"config": ..., "dry_run": ..., "prune": ...}``), or its YAML text with
        ``Content-Type: application/yaml``. Flags also as query parameters."""
        async def op() -> Any:
            config, flags = await self._apply_body(request)
            dry_run = _flag(request, "dry_run") if flags.dry_run is None else flags.dry_run
            prune = _flag(request, "prune") if flags.prune is None else flags.prune
            return await self.applier.apply(config, dry_run=dry_run, prune=prune)

        return await self._admin(request, op)

    async def _apply_body(self, request: Request) -> tuple[RegistryConfig, ApplyBody]:
        from deployments.apply_plan import parse_apply_body, parse_yaml_text

        no_flags = ApplyBody(config={})
        if request.headers.get("content-type", "").split(";")[0].strip().lower() in YAML_TYPES:
            raw = await read_body(request, self.body.max_request_bytes)
            return parse_yaml_text(raw.decode("utf-8", "replace")), no_flags
        doc = await self.body.json(request, empty_ok=True)
        if "config" in doc:  # no providers.yaml section is named config: the wrapped form
            wrapped = validate_body(doc, ApplyBody)
            return parse_apply_body(wrapped.config), wrapped
        return parse_apply_body(doc), no_flags


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "").strip().lower()
    if value not in _TRUE | _FALSE:
        raise InvalidRequestError(f"must be true or false, got {value!r}", name)
    return value in _TRUE
