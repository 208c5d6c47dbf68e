"""What every provider's own ``config:`` schema is built on.

A provider validates the mapping it is given in ``initialize`` with
`parse_provider_config` against a `ProviderConfig` subclass: unknown keys
fail, and every error names its key (``config.batch_size``). The registry's
own schema (`providers.registry.config`) is built on the same `StrictModel`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from providers.errors import ConfigError

# A provider (or application) name; providers that name others use it too.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)


class ProviderConfig(StrictModel):
    """Base of each provider's own ``config:`` schema (unknown keys fail)."""


def describe_errors(exc: ValidationError, source: str) -> str:
    """Pydantic's errors as ``key.path: message`` lines (no input values: they may be secret)."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{loc}: {msg}")
    head = f"invalid {source}" if len(lines) > 1 else f"invalid {source}:"
    return head + (" " + lines[0] if len(lines) == 1 else ":\n  " + "\n  ".join(lines))


def parse_provider_config(model: type[ProviderConfig], raw: Any, path: str = "config") -> Any:
    """Validate a provider's ``config:`` mapping; errors name ``config.<key>``."""
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, path).replace(f"invalid {path}: ", f"invalid {path}.", 1)) from None
