"""One exception tree for the whole registry.

    RegistryError
    ├── ConfigError                  bad providers.yaml or registration spec (names the key path)
    │   └── InterpolationError       ${VAR} unset without default, unbalanced braces
    ├── ProviderLoadError            class path cannot be imported or is not allowed
    │   ├── ModuleNotAllowedError    module outside the allowlisted prefixes
    │   └── InterfaceError           class misses methods of its type's interface
    ├── UnknownProviderTypeError     not one of the eight ProviderType values
    ├── ProviderNotFoundError        no provider of that type and name (lists known names)
    ├── ProviderExistsError          register_provider on a name already taken
    ├── RegistryBusyError            another caller holds the registry's change lock too long
    ├── DeploymentError              a provider's Serve application failed to start
    │   └── InsufficientResourcesError  the cluster lacks what the provider asks for
    ├── EmbeddingSpaceMismatchError  a store filled by one embedding model, asked with another
    ├── InvalidRequestError          a caller's input is wrong (names the field)
    │   └── RequestTooLargeError     ... a request body over registry.max_request_bytes (413)
    ├── ProviderCallError            a provider call failed (and its fallbacks, if any)
    │   ├── ProviderTimeoutError     ... by missing its deadline
    │   └── ProviderUnavailableError ... not called: every provider of the chain known down (503 + Retry-After)
    └── ProviderOverloadedError      a provider's Serve queue is full (503 + Retry-After): not a failure

Every error carries a plain message and its HTTP status (``http_status``); HTTP
answers them in one place (`deployments.http_api.registry_error_response`).
Provider SDK errors are translated at the provider boundary with
``raise ... from exc``.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Root of every error the registry raises on purpose."""

    http_status = 500  # overridden by every concrete subclass that callers can cause


class ConfigError(RegistryError):
    http_status = 400

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class InterpolationError(ConfigError):
    pass


class ProviderLoadError(RegistryError):
    http_status = 400


class ModuleNotAllowedError(ProviderLoadError):
    http_status = 403


class InterfaceError(ProviderLoadError):
    pass


class UnknownProviderTypeError(RegistryError):
    http_status = 404


class ProviderNotFoundError(RegistryError):
    http_status = 404


class ProviderExistsError(RegistryError):
    http_status = 409


class RegistryBusyError(RegistryError):
    http_status = 409


class DeploymentError(RegistryError):
    http_status = 502


class InsufficientResourcesError(DeploymentError):
    http_status = 409


class EmbeddingSpaceMismatchError(RegistryError):
    """A vector store holds vectors of another embedding model than the one routed to it."""

    http_status = 409


class InvalidRequestError(RegistryError):
    http_status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class RequestTooLargeError(InvalidRequestError):
    """A request body larger than ``registry.max_request_bytes``: refused before it is parsed."""

    http_status = 413


class ProviderCallError(RegistryError):
    http_status = 502


class ProviderTimeoutError(ProviderCallError):
    http_status = 504


class ProviderUnavailableError(ProviderCallError):
    """Nothing was called: every provider of the chain is known to be down (its breaker
    open after failures: a lost node, a crashed replica), so the caller hears it at once,
    with when to come back (503 + ``Retry-After``: the time until the breaker lets a
    trial call through), instead of waiting out a deadline per call.

    A `ProviderCallError`, so Python callers that catch failures catch it too."""

    http_status = 503

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class ProviderOverloadedError(RegistryError):
    """Serve refused the call: the provider's queue (``deployment.max_queued_requests``) is full.

    Not a `ProviderCallError`: the provider is healthy, only busy, so its
    breaker does not count it (`providers.registry.routing`); the caller is
    told to come back (503 with ``Retry-After``) instead of seeing a 5xx of a
    broken provider.
    """

    http_status = 503

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


def is_backpressure(exc: BaseException) -> bool:
    """Ray Serve's ``BackPressureError`` (a handle's ``max_queued_requests`` reached), bare or
    wrapped by Ray (``.cause``). By name: this module, like the routing core, imports no Ray."""
    cause = getattr(exc, "cause", None)
    for err in (exc, cause):
        if isinstance(err, BaseException) and any(c.__name__ == "BackPressureError" for c in type(err).__mro__):
            return True
    return False


def not_initialized(owner: str) -> ProviderCallError:
    """The error of a call that reaches a provider before its ``initialize`` has run."""
    return ProviderCallError(f"{owner} is not initialized")
