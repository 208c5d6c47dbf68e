"""Class paths an attacker would try, through every entry point that loads a class
from configuration, and proof that nothing outside the allowlist is even imported.

Entry points here (no Ray): providers.yaml read by `load_config` and then the
loader, ``provider-registry check``, the provider replica's constructor
(``ProviderDeployment``, what ``serve deploy`` and every registration runs),
the deployer's pre-deploy check (start_registry, register, swap) and the
shutdown path (``stop_embedded_servers``). The Python API and admin HTTP on a
real registry: tests/integration/test_security.py.

An "evil" module is a real file on ``sys.path`` that writes a marker file when
imported: its absence after each attempt proves the refusal came before the
import (importing is already running the attacker's code). A positive control
shows the same module does write its marker once it is allowlisted.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from providers.errors import ModuleNotAllowedError, ProviderLoadError
from providers.registry.config import ProviderSpec, load_config
from providers.registry.loading import check_allowed, load_provider_class, split_class_path
from providers.types import ProviderType

EMB = ProviderType.EMBEDDING


class Evil:
    """A module on sys.path that records being imported."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.marker = root / f"{name}.imported"
        (root / f"{name}.py").write_text(
            "import pathlib\n"
            f"pathlib.Path({str(self.marker)!r}).write_text('imported')\n"
            "class Thing:\n    pass\n")

    def assert_not_imported(self) -> None:
        assert not self.marker.exists(), f"{self.name} was imported"
        assert self.name not in sys.modules


@pytest.fixture
def evil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Evil:
    monkeypatch.syspath_prepend(str(tmp_path))
    # A prefix-boundary lookalike of the project's "providers." prefix, unique per test.
    module = Evil(tmp_path, f"providers_evil_{uuid.uuid4().hex[:8]}")
    yield module
    sys.modules.pop(module.name, None)


def attacks(name: str) -> list[str]:
    """The issue's four (os.system, subprocess.Popen, builtins.eval, a module outside the
    list) and the tricks: colon paths, traversal, look-alikes, case, stray characters."""
    return [
        "os.system", "os:system", "subprocess.Popen", "subprocess:Popen", "builtins.eval", "builtins:eval",
        f"{name}.Thing", f"{name}:Thing",  # outside the list; also 'providers' + '_evil': no package boundary
        f"providers.x:{name}.Thing", "providers.x:os.system", "providers:os.system",  # colon paths
        "providers.../os.system", "providers/../os.system", f"providers..{name}.Thing", f".{name}.Thing",
        "ｐroviders.embeddings.x.Y", "prоviders.embeddings.x.Y",  # fullwidth p, Cyrillic o
        f"{name.replace('providers', 'Providers')}.Thing", "Providers.embeddings.x.Y",  # case
        f"{name}\n.Thing", f"providers.x\n:{name}", f"providers\x00.{name}.Thing", f" {name}.Thing ",
        f"{name}.Thing;providers.x.Y", f"providers.x.Y {name}.Thing",
        "providers.config_base:BaseModel",  # an allowed module's import of a foreign class
        "providers.registry.loading:importlib",  # ... or of a module
    ]


def assert_refused(exc: BaseException) -> None:
    assert isinstance(exc, ProviderLoadError), repr(exc)
    text = str(exc)
    assert "allowed module prefixes" in text or "invalid class path" in text or "not a class" in text, text


def write_config(tmp_path: Path, class_path: str, prefixes: list[str] | None = None) -> Path:
    doc: dict[str, Any] = {"embeddings": {"providers": {"x": {"class": class_path}}}}
    if prefixes is not None:
        doc["registry"] = {"allowed_module_prefixes": prefixes}
    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


# -- the entry points, each (tmp_path, class_path) -> refuses or raises ---------------------------

def via_config_and_loader(tmp_path: Path, class_path: str) -> None:
    config = load_config(write_config(tmp_path, class_path), env={})
    for ptype, _, spec in config.specs():
        load_provider_class(spec.class_path, ptype, config.registry.allowed_prefixes())


def via_cli_check(tmp_path: Path, class_path: str) -> None:
    from serve_app.cli import main

    if main(["check", "--config", str(write_config(tmp_path, class_path))]) != 0:
        raise ProviderLoadError("check refused it: allowed module prefixes / invalid class path")


def via_replica(tmp_path: Path, class_path: str) -> None:
    from deployments.provider_deployment import ProviderDeployment

    config = load_config(write_config(tmp_path, class_path), env={})
    ProviderDeployment(EMB.value, "x", config.embeddings.providers["x"].class_path,
                       list(config.registry.allowed_prefixes()))


def via_deployer(tmp_path: Path, class_path: str) -> None:
    from deployments import deployer
    from providers.registry.table import Route

    config = load_config(write_config(tmp_path, class_path), env={})
    route = Route(type=EMB, name="x", spec=config.embeddings.providers["x"])
    deployer.check_replica_limit(route, list(config.registry.allowed_prefixes()))


def via_shutdown(tmp_path: Path, class_path: str) -> None:
    from serve_app.main import stop_embedded_servers

    stop_embedded_servers(load_config(write_config(tmp_path, class_path), env={}))  # prints what it skipped


ENTRY_POINTS: dict[str, Callable[[Path, str], None]] = {
    "config+loader": via_config_and_loader, "cli check": via_cli_check, "replica": via_replica,
    "deployer": via_deployer,
}


# A replica whose constructor raised is collected with its (Serve-awaited) async __del__.
@pytest.mark.filterwarnings("ignore:coroutine 'ProviderDeployment.__del__' was never awaited")
@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=str)
def test_every_attack_is_refused_before_import(entry, evil, tmp_path, capsys):
    for class_path in attacks(evil.name):
        with pytest.raises(ProviderLoadError) as info:
            ENTRY_POINTS[entry](tmp_path, class_path)
        assert_refused(info.value)
        evil.assert_not_imported()
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err


def test_shutdown_path_skips_what_it_may_not_load(evil, tmp_path, capsys):
    for class_path in attacks(evil.name):
        via_shutdown(tmp_path, class_path)
        assert "could not stop the embedded server of embeddings/x" in capsys.readouterr().out
        evil.assert_not_imported()


def test_positive_control_the_evil_module_is_caught_once_allowed(evil, tmp_path):
    """The same module, once its own name is allowlisted, is imported (the marker appears):
    so the marker's absence above really means 'never imported'."""
    config = load_config(write_config(tmp_path, f"{evil.name}.Thing", [evil.name]), env={})
    with pytest.raises(ProviderLoadError, match="does not implement"):
        load_provider_class(f"{evil.name}.Thing", EMB, config.registry.allowed_prefixes())
    assert evil.marker.exists()


def test_an_allowed_module_cannot_vouch_for_a_class_defined_elsewhere(tmp_path, monkeypatch):
    """A complete, working embedder re-exported by an allowlisted module is refused: the
    code that would run is not under the allowlist."""
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"reexport_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("from tests.unit.sample_providers import WordCountEmbedder\n")
    try:
        with pytest.raises(ModuleNotAllowedError, match="defined outside the allowed module prefixes"):
            load_provider_class(f"{name}.WordCountEmbedder", EMB, [name])
        # named where it is defined, with that module allowed, it loads
        from tests.unit.sample_providers import WordCountEmbedder

        assert load_provider_class("tests.unit.sample_providers.WordCountEmbedder", EMB,
                                   [name, "tests.unit.sample_providers"]) is WordCountEmbedder
    finally:
        sys.modules.pop(name, None)


@pytest.mark.parametrize("prefix", ["", " ", ".", "*", "providers.*", "providers*", "^providers", ".*"])
def test_no_prefix_spelling_widens_the_list(prefix):
    """Prefixes are module names, not patterns: none of these allows os or a lookalike."""
    for module in ("os", "providers_evil", "xproviders.x"):
        with pytest.raises(ModuleNotAllowedError):
            check_allowed(module, [prefix])


@pytest.mark.parametrize("text", ["os\n.system", "providers.x\n:Y", "providers.x:Y\nZ", "providers.x\r.Y",
                                  "providers.x\t.Y", "providers.x.Y\x00"])
def test_control_characters_are_not_part_of_a_class_path(text):
    """re's '$' matches before a final newline: 'providers.x\\n' used to pass as a module name."""
    with pytest.raises(ProviderLoadError, match="invalid class path"):
        split_class_path(text)


def test_a_registration_spec_carries_the_class_verbatim():
    """The spec keeps what was asked for; the check happens where the class is loaded."""
    assert ProviderSpec.model_validate({"class": "os:system"}).class_path == "os:system"
