"""Class loading, the module allowlist and interface checks (providers/registry/loading.py).

Also the interface table (providers/interfaces) and the client's proxy classes
(serve_app/client.py), parametrized over every ProviderType.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from abc import ABC, abstractmethod
from typing import Any

import pytest

from providers.embeddings.openai_compatible import OpenAICompatibleProvider
from providers.embeddings.sentence_transformers import SentenceTransformerProvider
from providers.errors import InterfaceError, ModuleNotAllowedError, ProviderLoadError
from providers.interfaces import LIFECYCLE_METHODS, interface_for, shape_of
from providers.interfaces.embeddings import EmbeddingProvider
from providers.registry.config import DEFAULT_ALLOWED_PREFIXES, parse_config
from providers.registry.loading import check_allowed, load_provider_class, split_class_path, validate_provider_class
from providers.types import ProviderType
from serve_app.client import proxy_class

from . import sample_providers

SAMPLE = sample_providers.__name__  # "tests.unit.sample_providers"
PROJECT = list(DEFAULT_ALLOWED_PREFIXES)
REAL_EMBEDDERS = [SentenceTransformerProvider, OpenAICompatibleProvider]


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# -- split_class_path -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pkg.mod.Class", ("pkg.mod", "Class")),
        ("pkg.mod:Class", ("pkg.mod", "Class")),
        ("mod.Class", ("mod", "Class")),
        ("mod:Class", ("mod", "Class")),
        ("  pkg.mod.Class  ", ("pkg.mod", "Class")),
        ("a_1.b_2:_C3", ("a_1.b_2", "_C3")),
    ],
)
def test_split_class_path(text: str, expected: tuple[str, str]) -> None:
    assert split_class_path(text) == expected


@pytest.mark.parametrize(
    "text",
    ["Class", "", ".Class", "pkg.", "pkg.mod:", ":Class", "pkg..mod.Class", "pkg.mod:Outer.Inner",
     "a:b:c", "pkg/mod.Class", "1pkg.Class", "pkg.mod.Cl ass", "pkg-x.Class", "../etc.Class"],
)
def test_split_class_path_invalid(text: str) -> None:
    with pytest.raises(ProviderLoadError, match="invalid class path") as info:
        split_class_path(text)
    assert repr(text) in str(info.value)


# -- the allowlist --------------------------------------------------------------------


@pytest.mark.parametrize("cls", REAL_EMBEDDERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("sep", [".", ":"])
def test_project_providers_are_allowed(cls: type, sep: str) -> None:
    path = f"{cls.__module__}{sep}{cls.__name__}"
    assert load_provider_class(path, ProviderType.EMBEDDING, PROJECT) is cls


@pytest.mark.parametrize(
    "path", ["os:system", "os.system", "subprocess.Popen", "builtins.eval", "providers_evil.x.Y", "provider.x.Y"]
)
def test_refused_outside_the_allowlist(path: str) -> None:
    with pytest.raises(ModuleNotAllowedError) as info:
        load_provider_class(path, ProviderType.EMBEDDING, PROJECT)
    module, _ = split_class_path(path)
    assert repr(module) in str(info.value)
    assert "allowed_module_prefixes" in str(info.value)


def test_refused_module_is_never_imported() -> None:
    # Run in a fresh interpreter: this process may already have imported it.
    code = (
        "import sys\n"
        "from providers.registry.loading import load_provider_class\n"
        "from providers.errors import ModuleNotAllowedError\n"
        "assert 'xml.dom.minidom' not in sys.modules\n"
        "try:\n"
        "    load_provider_class('xml.dom.minidom.Document', 'embeddings', ['providers.'])\n"
        "except ModuleNotAllowedError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('not refused')\n"
        "print(sorted(m for m in sys.modules if m == 'xml' or m.startswith('xml.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_refused_module_is_not_imported_in_process() -> None:
    name = "tests.unit.sample_providers_never_imported"  # no such file; refusal must come first
    assert name not in sys.modules
    with pytest.raises(ModuleNotAllowedError):
        load_provider_class(f"{name}.X", ProviderType.EMBEDDING, ["providers."])
    assert name not in sys.modules


@pytest.mark.parametrize(
    ("module", "prefixes", "allowed"),
    [
        ("providers", ["providers."], True),
        ("providers.embeddings.x", ["providers."], True),
        ("providers.embeddings.x", ["providers"], True),
        ("providers_evil", ["providers."], False),
        ("providers_evil.x", ["providers"], False),
        ("providersx.y", ["providers"], False),
        ("acme.models.e5", ["acme.models"], True),
        ("acme.models_extra", ["acme.models"], False),
        ("acme", ["acme.models"], False),
        ("anything", [""], False),
        ("anything", [], False),
    ],
)
def test_prefixes_match_whole_components(module: str, prefixes: list[str], allowed: bool) -> None:
    if allowed:
        check_allowed(module, prefixes)
    else:
        with pytest.raises(ModuleNotAllowedError):
            check_allowed(module, prefixes)


def test_prefix_from_config_allows_a_test_module() -> None:
    config = parse_config({"registry": {"allowed_module_prefixes": [SAMPLE]}}, env={})
    prefixes = config.registry.allowed_prefixes()
    cls = load_provider_class(f"{SAMPLE}.WordCountEmbedder", ProviderType.EMBEDDING, prefixes)
    assert cls is sample_providers.WordCountEmbedder
    # ... while the default prefixes alone refuse it.
    with pytest.raises(ModuleNotAllowedError):
        load_provider_class(f"{SAMPLE}.WordCountEmbedder", ProviderType.EMBEDDING, DEFAULT_ALLOWED_PREFIXES)


async def test_loaded_test_provider_works() -> None:
    cls = load_provider_class(f"{SAMPLE}:WordCountEmbedder", ProviderType.EMBEDDING, PROJECT + [SAMPLE])
    provider = cls()
    await provider.initialize({"label": "wc"})
    vectors = await provider.embed_texts(["one two", "three"])
    assert [v.tolist() for v in vectors] == [[2.0, 7.0], [1.0, 5.0]]
    assert provider.get_model_name() == "wc"


def test_unknown_module_under_allowed_prefix() -> None:
    with pytest.raises(ProviderLoadError, match="cannot import module 'providers.nope'"):
        load_provider_class("providers.nope.Thing", ProviderType.EMBEDDING, PROJECT)


def test_missing_attribute() -> None:
    with pytest.raises(ProviderLoadError, match="has no attribute 'Nope'"):
        load_provider_class(f"{SAMPLE}.Nope", ProviderType.EMBEDDING, [SAMPLE])


def test_attribute_that_is_not_a_class() -> None:
    with pytest.raises(ProviderLoadError, match="is not a class"):
        load_provider_class(f"{SAMPLE}.NOT_A_CLASS", ProviderType.EMBEDDING, [SAMPLE])


def test_loaded_class_is_checked_against_the_interface() -> None:
    with pytest.raises(InterfaceError, match="HalfEmbedder"):
        load_provider_class(f"{SAMPLE}.HalfEmbedder", ProviderType.EMBEDDING, [SAMPLE])


# -- interface checks ---------------------------------------------------------------------


def test_missing_methods_are_all_named() -> None:
    class Half:
        async def initialize(self, config: dict[str, Any]) -> None: ...

        async def embed_texts(self, texts: list[str], batch_size: int = 32) -> list: ...

    with pytest.raises(InterfaceError) as info:
        validate_provider_class(Half, ProviderType.EMBEDDING)
    text = str(info.value)
    expected_missing = shape_of(ProviderType.EMBEDDING).async_methods | shape_of(ProviderType.EMBEDDING).sync_methods
    expected_missing -= {"initialize", "embed_texts"}
    assert expected_missing  # the interface has more than the two methods given
    for name in expected_missing:
        assert name in text
    assert "embed_texts" not in text
    assert "EmbeddingProvider" in text and "embeddings" in text
    assert "Half" in text


@pytest.mark.parametrize("ptype", list(ProviderType), ids=str)
def test_empty_class_misses_every_method(ptype: ProviderType) -> None:
    class Empty:
        pass

    with pytest.raises(InterfaceError) as info:
        validate_provider_class(Empty, ptype)
    shape = shape_of(ptype)
    for name in shape.async_methods | shape.sync_methods:
        assert name in str(info.value)
    assert shape.name in str(info.value)


def _complete_embedder(**overrides: Any) -> type:
    namespace = {
        name: member for name, member in vars(sample_providers.WordCountEmbedder).items()
        if inspect.isfunction(member)
    }
    namespace.update(overrides)
    return type("Duck", (), namespace)


def test_duck_typed_complete_class_passes() -> None:
    validate_provider_class(_complete_embedder(), ProviderType.EMBEDDING)


def test_sync_method_where_async_expected_is_named() -> None:
    def embed_query(self: Any, query: str) -> Any:
        return None

    with pytest.raises(InterfaceError) as info:
        validate_provider_class(_complete_embedder(embed_query=embed_query), ProviderType.EMBEDDING)
    assert "embed_query (async expected)" in str(info.value)
    assert "missing" not in str(info.value)


def test_async_method_where_sync_expected_is_named() -> None:
    async def get_dimension(self: Any) -> int:
        return 2

    with pytest.raises(InterfaceError) as info:
        validate_provider_class(_complete_embedder(get_dimension=get_dimension), ProviderType.EMBEDDING)
    assert "get_dimension (sync expected)" in str(info.value)


def test_non_callable_attribute_counts_as_missing() -> None:
    with pytest.raises(InterfaceError, match="missing get_dimension"):
        validate_provider_class(_complete_embedder(get_dimension=384), ProviderType.EMBEDDING)


def test_abstract_subclass_is_refused() -> None:
    class Partial(EmbeddingProvider):
        async def initialize(self, config: dict[str, Any]) -> None: ...

        async def embed_texts(self, texts: list[str], batch_size: int = 32) -> list: ...

    with pytest.raises(InterfaceError) as info:
        validate_provider_class(Partial, ProviderType.EMBEDDING)
    for name in Partial.__abstractmethods__:
        assert name in str(info.value)


def test_subclass_with_its_own_abstract_method_is_refused() -> None:
    class StillAbstract(sample_providers.WordCountEmbedder):
        @abstractmethod
        def extra(self) -> None: ...

    with pytest.raises(InterfaceError, match="extra"):
        validate_provider_class(StillAbstract, ProviderType.EMBEDDING)


@pytest.mark.parametrize("cls", REAL_EMBEDDERS, ids=lambda c: c.__name__)
def test_real_embedders_implement_embedding(cls: type) -> None:
    validate_provider_class(cls, ProviderType.EMBEDDING)


@pytest.mark.parametrize("cls", REAL_EMBEDDERS, ids=lambda c: c.__name__)
def test_real_embedders_are_not_rerankers(cls: type) -> None:
    with pytest.raises(InterfaceError) as info:
        validate_provider_class(cls, ProviderType.RERANKER)
    assert "Reranker" in str(info.value)
    for name in ("rerank", "score_pair", "get_reranker_type"):
        assert name in str(info.value)


def test_load_accepts_type_by_value_string() -> None:
    cls = SentenceTransformerProvider
    assert load_provider_class(class_path(cls), "embeddings", PROJECT) is cls


# -- every provider type: interface and proxy ------------------------------------------------


@pytest.mark.parametrize("ptype", list(ProviderType), ids=str)
def test_interface_for_is_an_abc_with_lifecycle(ptype: ProviderType) -> None:
    iface = interface_for(ptype)
    assert inspect.isclass(iface) and issubclass(iface, ABC)
    assert inspect.isabstract(iface)
    for name in ("initialize", "health_check"):
        assert name in iface.__abstractmethods__
        assert inspect.iscoroutinefunction(getattr(iface, name))
    assert interface_for(ptype.value) is iface
    assert interface_for(ptype.name) is iface


@pytest.mark.parametrize("ptype", list(ProviderType), ids=str)
def test_shape_splits_async_and_sync(ptype: ProviderType) -> None:
    iface = interface_for(ptype)
    shape = shape_of(ptype)
    assert shape.name == iface.__name__
    assert shape.async_methods | shape.sync_methods == set(iface.__abstractmethods__)
    assert not shape.async_methods & shape.sync_methods
    for name in shape.async_methods:
        assert inspect.iscoroutinefunction(getattr(iface, name)), name
    assert "initialize" not in shape.callable_methods
    assert "health_check" in shape.callable_methods


@pytest.mark.parametrize("ptype", list(ProviderType), ids=str)
def test_proxy_class_is_concrete_subclass_of_interface(ptype: ProviderType) -> None:
    iface = interface_for(ptype)
    proxy = proxy_class(ptype)
    assert issubclass(proxy, iface)
    assert not inspect.isabstract(proxy)
    getters = {name: f"value of {name}" for name in shape_of(ptype).sync_methods}
    instance = proxy(None, ptype, "p", False, {"getters": getters, "interface": iface.__name__})
    assert isinstance(instance, iface)
    for name, value in getters.items():
        assert getattr(instance, name)() == value
    # The proxy itself passes the registry's own interface check.
    validate_provider_class(proxy, ptype)


@pytest.mark.parametrize("ptype", list(ProviderType), ids=str)
async def test_proxy_methods_go_through_the_registry(ptype: ProviderType) -> None:
    """A recording stand-in for ProviderRegistry: the real one needs a Ray cluster."""
    calls: list[tuple] = []

    class Recorder:
        async def call(self, *args: Any) -> str:
            calls.append(args)
            return "answer"

    shape = shape_of(ptype)
    instance = proxy_class(ptype)(Recorder(), ptype, "p", True, {"getters": {}})
    await instance.initialize({"ignored": True})
    assert calls == []  # lifecycle methods are the deployment's, never forwarded
    for name in sorted(shape.async_methods - LIFECYCLE_METHODS):
        assert await getattr(instance, name)("arg", key="kw") == "answer"
        assert calls[-1] == (ptype, "p", name, ["arg"], {"key": "kw"}, True)
    assert len(calls) == len(shape.async_methods - LIFECYCLE_METHODS)
