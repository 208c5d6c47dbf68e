"""Structured provider logs (deployments/logs.py), formatted by the very formatters
Ray Serve writes its log files with: text (``ServeFormatter``) and JSON."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from deployments.logs import (
    ProviderLogFilter,
    app_log,
    fields_of_app,
    install_log_filter,
    package_of,
    prefix_of,
    provider_fields,
    provider_log,
    route_provider_logs,
)
from providers.registry.redaction import secret_values

FIELDS = provider_fields("embeddings", "minilm", 3)
SECRET_CONFIG = {"api_key": "sk-never-in-a-log-4242", "url": "postgresql://app:pw-in-a-dsn@db/x", "batch": 8}


class ListHandler(logging.Handler):
    """Keeps records and, formatted with ``formatter``, the lines a file would get."""

    def __init__(self, formatter: logging.Formatter | None = None) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        try:
            self.lines.append(self.format(record))
        except Exception:  # as the standard handlers do: report, never raise into the caller
            self.handleError(record)


def _logger(name: str, *handlers: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test_logs.{name}")
    logger.handlers[:] = list(handlers)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def _text_formatter() -> logging.Formatter:
    from ray.serve._private.logging_utils import ServeFormatter

    return ServeFormatter("registry--embeddings--minilm--v3_ProviderDeployment", "abc123")


def _json_formatter() -> logging.Formatter:
    from ray._common.formatters import JSONFormatter

    return JSONFormatter()


def test_fields_and_prefix() -> None:
    assert FIELDS == {"provider_type": "embeddings", "provider_name": "minilm", "provider_version": 3}
    assert prefix_of(FIELDS) == "[embeddings/minilm v3]"
    assert prefix_of(provider_fields("vector_store", "memories")) == "[vector_stores/memories]"


def test_provider_log_carries_the_fields_and_starts_with_the_prefix() -> None:
    handler = ListHandler()
    provider_log(_logger("helper", handler), logging.WARNING, "rolled back from v%d: %s", 2, "50% failed",
                 ptype="embeddings", name="minilm", version=3)
    (record,) = handler.records
    assert {k: getattr(record, k) for k in FIELDS} == FIELDS
    assert record.getMessage() == "[embeddings/minilm v3] rolled back from v2: 50% failed"
    assert record.levelno == logging.WARNING


def test_the_replica_filter_stamps_every_record_even_serve_s_own() -> None:
    handler = ListHandler(_text_formatter())
    install_log_filter(FIELDS, logger=_logger("replica", handler))
    logger = logging.getLogger("test_logs.replica")
    logger.info("CALL invoke OK %.1fms", 2.0)  # a Serve access line: no extra=
    (record,) = handler.records
    assert {k: getattr(record, k) for k in FIELDS} == FIELDS
    assert handler.lines[0].endswith("-- [embeddings/minilm v3] CALL invoke OK 2.0ms")


def test_text_and_json_files_show_the_provider() -> None:
    text, js = ListHandler(_text_formatter()), ListHandler(_json_formatter())
    flt = ProviderLogFilter(FIELDS)
    for h in (text, js):
        h.addFilter(flt)
    logger = _logger("both", text, js)
    logger.info("initialized ready (%s)", "providers.embeddings.x.Y")
    assert "[embeddings/minilm v3] initialized ready (providers.embeddings.x.Y)" in text.lines[0]
    data = json.loads(js.lines[0])
    assert (data["provider_type"], data["provider_name"], data["provider_version"]) == ("embeddings", "minilm", 3)
    assert data["message"] == "[embeddings/minilm v3] initialized ready (providers.embeddings.x.Y)"


def test_two_handlers_prefix_once() -> None:
    first, second = ListHandler(), ListHandler()
    flt = ProviderLogFilter(FIELDS)
    first.addFilter(flt)
    second.addFilter(flt)
    _logger("twice", first, second).info("hello")
    assert second.records[0].getMessage() == "[embeddings/minilm v3] hello"


def test_a_record_about_another_provider_keeps_its_own_fields() -> None:
    """In the router a line names the provider it is about, not a replica's."""
    handler = ListHandler()
    install_log_filter(None, logger=_logger("router", handler))
    logger = logging.getLogger("test_logs.router")
    provider_log(logger, logging.INFO, "deploying", ptype="rerankers", name="similarity", version=7)
    logger.info("route table refresh failed")
    about, plain = handler.records
    assert about.getMessage() == "[rerankers/similarity v7] deploying" and about.provider_name == "similarity"
    assert plain.getMessage() == "route table refresh failed" and not hasattr(plain, "provider_type")


@pytest.mark.parametrize("formatter", [_text_formatter, _json_formatter], ids=["text", "json"])
def test_a_secret_of_the_config_never_reaches_a_log_line(formatter: Any) -> None:
    secrets = secret_values(SECRET_CONFIG)
    handler = ListHandler(formatter())
    install_log_filter(FIELDS, lambda: secrets, logger=_logger("secrets", handler))
    logger = logging.getLogger("test_logs.secrets")
    logger.warning("connecting with key %s to %s", SECRET_CONFIG["api_key"], SECRET_CONFIG["url"])
    try:
        raise RuntimeError(f"auth failed for {SECRET_CONFIG['api_key']}")
    except RuntimeError:
        logger.exception("initialize failed")
    logger.info("stack", stack_info=True, extra={"note": "x"})
    text = "\n".join(handler.lines)
    assert "sk-never-in-a-log-4242" not in text and "pw-in-a-dsn" not in text
    assert "connecting with key *** to postgresql://app:***@db/x" in text
    assert "RuntimeError: auth failed for ***" in text  # the traceback is kept, scrubbed


def test_the_filter_reads_the_secrets_of_the_current_config() -> None:
    current: set[str] = set()
    handler = ListHandler()
    install_log_filter(FIELDS, lambda: current, logger=_logger("swap", handler))
    current |= {"a-new-secret-value"}  # a reconfigure with a new config
    logging.getLogger("test_logs.swap").info("using a-new-secret-value")
    assert handler.records[0].getMessage() == "[embeddings/minilm v3] using ***"


def test_a_broken_format_never_fails_the_caller() -> None:
    handler = ListHandler()
    install_log_filter(FIELDS, logger=_logger("broken", handler))
    logging.getLogger("test_logs.broken").info("%d items", "not a number")  # must not raise
    assert len(handler.records) == 1 and handler.lines == []  # the handler reported it, as handlers do


def test_installing_again_replaces_the_filter() -> None:
    handler = ListHandler()
    logger = _logger("again", handler)
    install_log_filter(provider_fields("embeddings", "a", 1), logger=logger)
    install_log_filter(provider_fields("embeddings", "a", 2), logger=logger)
    assert len(handler.filters) == 1
    logger.info("x")
    assert handler.records[0].getMessage() == "[embeddings/a v2] x"


def test_a_provider_s_own_loggers_reach_the_serve_log_stamped() -> None:
    serve_handler = ListHandler(_text_formatter())
    serve = _logger("serve", serve_handler)
    install_log_filter(FIELDS, logger=serve)
    root = _logger("root")  # stands for the root logger, at its default level
    root.setLevel(logging.WARNING)
    provider_code = logging.getLogger("test_logs.root.mypkg.module")
    provider_code.setLevel(logging.NOTSET)
    route_provider_logs(["test_logs.root.mypkg"], target=serve, root=root)
    route_provider_logs(["test_logs.root.mypkg"], target=serve, root=root)  # idempotent: one line each
    provider_code.info("loaded %d rows", 5)
    logging.getLogger("test_logs.root.otherlib").debug("below its level: not forwarded")
    assert [r.getMessage() for r in serve_handler.records] == ["[embeddings/minilm v3] loaded 5 rows"]
    assert serve_handler.records[0].levelno == logging.INFO and serve_handler.records[0].provider_version == 3


def test_application_names_map_back_to_providers() -> None:
    assert fields_of_app("registry--vector_stores--my--store--v12") == provider_fields("vector_stores", "my--store", 12)
    assert fields_of_app("registry") is None and fields_of_app("registry--embeddings--x") is None
    handler = ListHandler()
    logger = _logger("apps", handler)
    app_log(logger, logging.WARNING, "deleting orphaned provider application %s", "r--cache--lru--v2",
            app_name="r--cache--lru--v2")
    app_log(logger, logging.WARNING, "could not delete %s", "registry", app_name="registry")
    assert handler.records[0].getMessage() == "[cache/lru v2] deleting orphaned provider application r--cache--lru--v2"
    assert handler.records[0].provider_type == "cache"
    assert handler.records[1].getMessage() == "could not delete registry"


def test_package_of_a_class_path() -> None:
    assert package_of("providers.embeddings.x.Cls") == "providers"
    assert package_of("mypkg.sub:Cls") == "mypkg"


def test_provider_applications_and_the_router_get_the_configured_encoding() -> None:
    from serve_app.builders import build_provider_app, build_registry_app

    spec = {"class": "providers.caches.memory.MemoryCache"}
    app = build_provider_app({"type": "cache", "name": "lru", "version": 4, "spec": spec, "log_encoding": "JSON"})
    deployment = app._bound_deployment
    assert deployment._deployment_config.logging_config["encoding"] == "JSON"
    assert deployment.init_args[5] == 4  # the replica knows its version
    default = build_provider_app({"type": "cache", "name": "lru", "version": 1, "spec": spec})
    assert default._bound_deployment._deployment_config.logging_config["encoding"] == "TEXT"
    router = build_registry_app({"config": {"registry": {"log_encoding": "JSON"}}})
    assert router._bound_deployment._deployment_config.logging_config["encoding"] == "JSON"


def test_log_encoding_is_text_or_json() -> None:
    from providers.registry.config import RegistrySettings

    assert RegistrySettings().log_encoding == "TEXT"
    with pytest.raises(ValueError):
        RegistrySettings(log_encoding="XML")


def test_serve_config_files_pass_the_encoding(tmp_path: Any) -> None:
    from serve_app.serve_config import build_serve_config

    path = tmp_path / "providers.yaml"
    path.write_text("registry: {log_encoding: JSON}\ncache:\n  providers:\n"
                    "    lru: {class: providers.caches.memory.MemoryCache}\n")
    apps = build_serve_config(path)["applications"]
    assert apps[0]["args"]["log_encoding"] == "JSON"
