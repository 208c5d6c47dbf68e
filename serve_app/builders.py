"""The Serve application builders, at the import paths Serve config files name
(``serve_app.builders:build_provider_app`` and ``:build_registry_app``).
They live in `deployments.provider_app` and `deployments.registry_app`; these names keep every written config working."""

from deployments.provider_app import build_provider_app
from deployments.registry_app import build_registry_app

__all__ = ["build_provider_app", "build_registry_app"]
