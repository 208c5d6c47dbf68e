"""What the Cohere embedder and reranker share: their connection keys and one POST.

Both speak Cohere's HTTP API with httpx (the ``cohere`` SDK is not a runtime
dependency), to Cohere itself or to anything that serves the same routes
(this registry's ``/v1/embed``, ``/v2/embed``, ``/v1/rerank``,
``/v2/rerank``). The API key travels only in the Authorization header: it is
a `SecretStr` in the config (its repr is masked, and the registry redacts
``api_key`` in every listing), and any text from the server that is put in
an error has the key's value scrubbed first, in case a server echoes it.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr

from providers.config_base import ProviderConfig
from providers.errors import ProviderCallError, ProviderTimeoutError


class CohereConnectionConfig(ProviderConfig):
    """Where the Cohere API is and how to reach it."""

    base_url: str = Field(
        "https://api.cohere.com", pattern=r"^https?://",
        description="Server root without the version, e.g. https://api.cohere.com or http://host:8000.")
    model: str = Field(..., min_length=1, description="Model name sent with each request.")
    api_key: SecretStr | None = Field(None, description="Bearer token; never logged or shown.")
    api_version: Literal["v1", "v2"] = Field("v2", description="Which API generation's routes to call.")
    timeout_s: float = Field(30.0, gt=0, description="HTTP timeout per request.")
    max_connections: int = Field(64, ge=1, description="HTTP connection pool size.")


class CohereHTTP:
    """One connection pool to a Cohere-compatible server; errors name ``owner`` and the server."""

    def __init__(self, owner: str, settings: CohereConnectionConfig) -> None:
        self.owner, self.settings = owner, settings
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        self._secret = key
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.AsyncClient(base_url=settings.base_url.rstrip("/") + "/", headers=headers,
                                        timeout=settings.timeout_s,
                                        limits=httpx.Limits(max_connections=settings.max_connections))

    def __repr__(self) -> str:
        return f"CohereHTTP({self.owner!r}, base_url={self.settings.base_url!r})"

    async def post(self, route: str, body: dict[str, Any]) -> Any:
        """``POST {base_url}/{api_version}/{route}``; the JSON answer, or a `ProviderCallError`."""
        s = self.settings
        where = f"{self.owner} ({s.base_url}, {s.api_version}/{route})"
        try:
            response = await self.client.post(f"{s.api_version}/{route}", json=body)
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(f"{where} timed out after {s.timeout_s} s (config.timeout_s)") from exc
        except httpx.HTTPError as exc:
            raise ProviderCallError(f"{where} unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ProviderCallError(f"{where} answered {response.status_code}: {self.scrub(response.text[:300])}")
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderCallError(f"{where} answered 200 with a body that is not JSON") from exc

    def scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if len(self._secret) >= 4 else text

    async def close(self) -> None:
        await self.client.aclose()


def malformed(owner: str, exc: Exception) -> ProviderCallError:
    """A 200 answer that does not hold what was asked for: a failing server (so a fallback serves)."""
    return ProviderCallError(f"{owner}: malformed response: {type(exc).__name__}: {exc}")
