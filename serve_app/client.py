"""The seed's Python API client; it lives in `deployments.client` (provider
replicas use it for their dependencies, and deployments must not import
serve_app). This module keeps the documented import path."""

from deployments.client import ProviderRegistry, proxy_class, run_reembed

__all__ = ["ProviderRegistry", "proxy_class", "run_reembed"]
