"""Structured logs about providers: type, name and version on every line; secrets in none.

* `provider_log(logger, level, msg, *args, ptype=, name=, version=)` writes a
  line about a provider from anywhere (router, deployer): the message starts
  with ``[embeddings/minilm v3]``, readable in Serve's text logs, and the
  record carries ``provider_type``, ``provider_name`` and ``provider_version``,
  which Serve's JSON format (``registry.log_encoding: JSON``) writes as fields.
* `install_log_filter(...)` puts a `ProviderLogFilter` on the handlers of
  Serve's logger in this process: it scrubs secrets (the configured values,
  and passwords in DSNs) from every message and traceback, and in a
  provider's replica stamps every record with that provider's fields and
  prefix, Serve's own lines (access log, replica start) included.
* `route_provider_logs(...)` sends what a provider's code logs through the
  ``logging`` module into its replica's Serve log, through the same filter:
  without it those records would reach only Python's last-resort stderr
  handler (warnings and worse, stripped of level and fields).

Nothing here imports Ray: the filter works on any logger, which the unit
tests use.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from providers.registry.redaction import scrub_text
from providers.types import ProviderType

SERVE_LOGGER = "ray.serve"
FIELDS = ("provider_type", "provider_name", "provider_version")


def provider_fields(ptype: Any, name: str, version: int | None = None) -> dict[str, Any]:
    return {"provider_type": ProviderType.parse(ptype).value, "provider_name": name, "provider_version": version}


def prefix_of(fields: dict[str, Any]) -> str:
    """``[embeddings/minilm v3]`` (``[embeddings/minilm]`` when the version is not known)."""
    version = fields.get("provider_version")
    return f"[{fields['provider_type']}/{fields['provider_name']}{f' v{version}' if version is not None else ''}]"


def provider_log(logger: logging.Logger, level: int, msg: str, *args: Any, ptype: Any, name: str,
                 version: int | None = None, exc_info: Any = None) -> None:
    """One line about one provider, with its fields and prefix."""
    fields = provider_fields(ptype, name, version)
    # The prefix goes in as an argument, so a '%' in it could never break the format.
    logger.log(level, "%s " + msg, prefix_of(fields), *args, extra=fields, exc_info=exc_info)


# "<registry app>--<type>--<name>--v<N>" (providers.registry.table.provider_app_name)
_TYPES = "|".join(re.escape(t.value) for t in ProviderType)
_APP_NAME = re.compile(rf"^.+?--(?P<type>{_TYPES})--(?P<name>.+)--v(?P<version>[0-9]+)$")


def fields_of_app(app_name: str) -> dict[str, Any] | None:
    """A provider application's fields from its name; None for another application."""
    m = _APP_NAME.match(app_name)
    return provider_fields(m["type"], m["name"], int(m["version"])) if m else None


def app_log(logger: logging.Logger, level: int, msg: str, *args: Any, app_name: str, exc_info: Any = None) -> None:
    """A line about a Serve application: `provider_log` when it is a provider's (orphans
    and deletions know only the application's name)."""
    fields = fields_of_app(app_name)
    if fields is None:
        logger.log(level, msg, *args, exc_info=exc_info)
    else:
        provider_log(logger, level, msg, *args, ptype=fields["provider_type"], name=fields["provider_name"],
                     version=fields["provider_version"], exc_info=exc_info)


class ProviderLogFilter(logging.Filter):
    """Stamps records with a provider's fields (``fields``, in its replica) and
    prefix, and scrubs ``secrets()`` and DSN passwords from message and traceback.

    It never drops a record, and it is idempotent: a record passing two
    handlers is prefixed and scrubbed once.
    """

    def __init__(self, fields: dict[str, Any] | None = None,
                 secrets: Callable[[], Iterable[str]] = tuple) -> None:
        super().__init__()
        self.fields = dict(fields or {})
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._stamp(record)
        except Exception:  # a log line must never fail the code that writes it
            pass
        return True

    def _stamp(self, record: logging.LogRecord) -> None:
        for key, value in self.fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        secrets = list(self.secrets())
        message = record.getMessage()
        if getattr(record, "provider_type", None) and getattr(record, "provider_name", None):
            prefix = prefix_of({k: getattr(record, k, None) for k in FIELDS})
            if not message.startswith(prefix):
                message = f"{prefix} {message}"
        record.msg, record.args = scrub_text(message, secrets), None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text once set: the traceback is written scrubbed.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_text(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = scrub_text(record.stack_info, secrets)


class _ToServeLog(logging.Handler):
    """Hands records to the handlers of Serve's logger, as they are at emit time
    (Serve replaces its handlers when a deployment's logging config changes)."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        for handler in list(self.target.handlers):
            if record.levelno >= handler.level:
                handler.handle(record)


def install_log_filter(fields: dict[str, Any] | None = None, secrets: Callable[[], Iterable[str]] = tuple,
                       logger: logging.Logger | None = None) -> ProviderLogFilter:
    """Put a `ProviderLogFilter` on every handler of Serve's logger (replacing one put before)."""
    logger = logger or logging.getLogger(SERVE_LOGGER)
    flt = ProviderLogFilter(fields, secrets)
    for handler in logger.handlers:
        for old in [f for f in handler.filters if isinstance(f, ProviderLogFilter)]:
            handler.removeFilter(old)
        handler.addFilter(flt)
    return flt


def route_provider_logs(packages: Iterable[str], level: int = logging.INFO,
                        target: logging.Logger | None = None, root: logging.Logger | None = None) -> None:
    """Records that reach the root logger go to Serve's log; the provider's
    own packages log from ``level`` up (the root's default, WARNING, would hide
    their INFO lines)."""
    target = target or logging.getLogger(SERVE_LOGGER)
    root = root or logging.getLogger()
    if not any(isinstance(h, _ToServeLog) for h in root.handlers):
        root.addHandler(_ToServeLog(target))
    for package in packages:
        logging.getLogger(package).setLevel(level)


def install_router_logging(secrets: Callable[[], Iterable[str]]) -> None:
    """The router's log: every line scrubbed of the providers' secrets, and the
    registry's own modules' lines (the deployer's, the embedding cache's) in it."""
    install_log_filter(None, secrets)
    route_provider_logs(["deployments", "providers"])


def package_of(class_path: str) -> str:
    """``providers.embeddings.x.Cls`` or ``pkg.mod:Cls`` -> ``providers`` / ``pkg``."""
    return class_path.replace(":", ".").split(".", 1)[0]
