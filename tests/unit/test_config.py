"""providers.yaml schema and loader (providers/registry/config.py).

Every config error must name the key path of the problem, and no error may
echo a value from the config (values may be secrets).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from providers.errors import ConfigError, InterpolationError
from providers.registry.config import (
    DEFAULT_ALLOWED_PREFIXES,
    ProviderSpec,
    RegistryConfig,
    fallback_chain,
    load_config,
    parse_config,
    parse_ref,
    parse_spec,
)
from providers.types import ProviderType

ROOT = Path(__file__).resolve().parents[2]
REAL_CONFIG = ROOT / "config" / "providers.yaml"
MINILM = "providers.embeddings.sentence_transformers.SentenceTransformerProvider"
SECRET = "sk-supersecret-4f9a"


def one_provider(**spec: Any) -> dict[str, Any]:
    return {"embeddings": {"providers": {"m": {"class": MINILM, **spec}}}}


def providers(**specs: dict[str, Any]) -> dict[str, Any]:
    return {"embeddings": {"providers": {n: {"class": MINILM, **s} for n, s in specs.items()}}}


def config_error(raw: Any, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, env={} if env is None else env)
    return info.value


# -- the real file ------------------------------------------------------------------


def test_real_config_is_the_embedded_memory_server() -> None:
    raw = yaml.safe_load(REAL_CONFIG.read_text(encoding="utf-8"))
    config = load_config(REAL_CONFIG, env={})
    assert isinstance(config, RegistryConfig)
    assert {(t, n) for t, n, _ in config.specs()} == {
        (ProviderType.EMBEDDING, "minilm"), (ProviderType.VECTOR_STORE, "memories"),
        (ProviderType.RERANKER, "similarity"), (ProviderType.TOOL, "memory.store"),
        (ProviderType.TOOL, "memory.search")}
    minilm = config.embeddings.providers["minilm"]
    assert minilm.class_path == raw["embeddings"]["providers"]["minilm"]["class"]
    assert config.vector_stores.providers["memories"].embedder == "minilm"
    assert config.vector_stores.providers["memories"].config["data_dir"] == ".data/pgvector"  # the default
    assert config.registry.app_name == raw["registry"]["app_name"]
    assert config.registry.http_port == raw["registry"]["http_port"]
    assert config.registry.embedding_cache.enabled


def test_real_config_interpolates_thread_default_and_override() -> None:
    default = load_config(REAL_CONFIG, env={}).embeddings.providers["minilm"].config["num_threads"]
    override = load_config(REAL_CONFIG, env={"MINILM_THREADS": "7"}).embeddings.providers["minilm"].config
    assert default == "2"  # the ${MINILM_THREADS:-2} default, still a string at this level
    assert override["num_threads"] == "7"


def test_empty_document_is_an_empty_registry() -> None:
    config = parse_config(None, env={})
    assert config.specs() == []
    assert config.registry.allowed_prefixes() == DEFAULT_ALLOWED_PREFIXES


def test_allowed_prefixes_add_to_the_default() -> None:
    config = parse_config({"registry": {"allowed_module_prefixes": ["acme.models"]}}, env={})
    assert config.registry.allowed_prefixes() == DEFAULT_ALLOWED_PREFIXES + ("acme.models",)


# -- every error names its key path -----------------------------------------------------


def test_unknown_top_level_key() -> None:
    err = config_error({"embedings": {}})
    assert "embedings: unknown key" in str(err)


def test_unknown_key_inside_provider() -> None:
    err = config_error(one_provider(deploymnt={"num_cpus": 1}))
    assert "embeddings.providers.m.deploymnt: unknown key" in str(err)


def test_unknown_key_in_deployment() -> None:
    err = config_error(one_provider(deployment={"num_cpu": 1}))
    assert "embeddings.providers.m.deployment.num_cpu: unknown key" in str(err)


def test_unknown_key_in_registry_section() -> None:
    err = config_error({"registry": {"http_prot": 8000}})
    assert "registry.http_prot: unknown key" in str(err)


def test_num_replicas_and_autoscaling_together() -> None:
    err = config_error(one_provider(deployment={"num_replicas": 2, "autoscaling_config": {"max_replicas": 3}}))
    assert "embeddings.providers.m.deployment" in str(err)
    assert "num_replicas" in str(err) and "autoscaling_config" in str(err)


def test_each_of_num_replicas_and_autoscaling_alone_is_fine() -> None:
    fixed = parse_config(one_provider(deployment={"num_replicas": 2}), env={})
    scaled = parse_config(one_provider(deployment={"autoscaling_config": {"min_replicas": 1, "max_replicas": 3}}), env={})
    assert fixed.embeddings.providers["m"].deployment.num_replicas == 2
    assert scaled.embeddings.providers["m"].deployment.autoscaling_config.max_replicas == 3


def test_autoscaling_min_above_max() -> None:
    err = config_error(one_provider(deployment={"autoscaling_config": {"min_replicas": 4, "max_replicas": 2}}))
    assert "embeddings.providers.m.deployment.autoscaling_config" in str(err)
    assert "min_replicas" in str(err)


def test_negative_num_gpus() -> None:
    err = config_error(one_provider(deployment={"num_gpus": -1}))
    assert "embeddings.providers.m.deployment.num_gpus" in str(err)


def test_fractional_num_gpus_accepted() -> None:
    config = parse_config(one_provider(deployment={"num_gpus": 0.25}), env={})
    assert config.embeddings.providers["m"].deployment.num_gpus == 0.25


def test_wrong_type_names_the_field() -> None:
    err = config_error(one_provider(call_timeout_s="soon"))
    assert "embeddings.providers.m.call_timeout_s" in str(err)


@pytest.mark.parametrize("name", ["bad name", "-leading-dash", "x" * 64, "a/b", "ünïcode"])
def test_bad_provider_name(name: str) -> None:
    err = config_error({"embeddings": {"providers": {name: {"class": MINILM}}}})
    assert "embeddings.providers" in str(err)
    assert repr(name) in str(err)


def test_longest_allowed_name_is_accepted() -> None:
    name = "a" * 63
    assert name in parse_config({"embeddings": {"providers": {name: {"class": MINILM}}}}, env={}).embeddings.providers


def test_fallback_to_unknown_name() -> None:
    err = config_error(one_provider(fallback=["ghost"]))
    assert err.path == "embeddings.providers.m.fallback"
    assert "'ghost'" in str(err)


def test_fallback_to_a_provider_of_another_type_is_unknown() -> None:
    raw = one_provider(fallback=["r"])
    raw["rerankers"] = {"providers": {"r": {"class": MINILM}}}
    err = config_error(raw)
    assert err.path == "embeddings.providers.m.fallback"


def test_fallback_to_itself() -> None:
    err = config_error(one_provider(fallback=["m"]))
    assert err.path == "embeddings.providers.m.fallback"
    assert "itself" in str(err)


def test_fallback_listed_twice() -> None:
    err = config_error(providers(a={"fallback": ["b", "b"]}, b={}))
    assert "embeddings.providers.a.fallback" in str(err)


def test_fallback_cycle_names_the_cycle() -> None:
    err = config_error(providers(a={"fallback": ["b"]}, b={"fallback": ["a"]}))
    assert "a -> b -> a" in str(err)
    assert err.path == "embeddings.providers.a.fallback"


def test_longer_fallback_cycle_names_every_step() -> None:
    err = config_error(providers(a={"fallback": ["b"]}, b={"fallback": ["c"]}, c={"fallback": ["a"]}))
    assert "a -> b -> c -> a" in str(err)


def test_depends_on_known_ref_is_accepted() -> None:
    raw = one_provider(depends_on=["rerankers/r"])
    raw["rerankers"] = {"providers": {"r": {"class": MINILM}}}
    assert parse_config(raw, env={}).embeddings.providers["m"].depends_on == ["rerankers/r"]


def test_depends_on_unknown_ref() -> None:
    err = config_error(one_provider(depends_on=["rerankers/ghost"]))
    assert err.path == "embeddings.providers.m.depends_on"
    assert "rerankers/ghost" in str(err)


@pytest.mark.parametrize("ref", ["rerankers", "rerankers/", "rerankers/bad name", "rerankers/-x"])
def test_depends_on_malformed_ref(ref: str) -> None:
    err = config_error(one_provider(depends_on=[ref]))
    assert "embeddings.providers.m.depends_on" in str(err)
    assert "type/name" in str(err)


@pytest.mark.parametrize("ref", ["nosuchtype/x", "/x"])
def test_depends_on_unknown_type_is_a_config_error_with_path(ref: str) -> None:
    err = config_error(one_provider(depends_on=[ref]))
    assert "embeddings.providers.m.depends_on" in str(err)


def test_parse_ref() -> None:
    assert parse_ref("embeddings/minilm") == (ProviderType.EMBEDDING, "minilm")
    assert parse_ref("RERANKER/x") == (ProviderType.RERANKER, "x")
    with pytest.raises(ValueError):
        parse_ref("embeddings")


def test_unset_env_var_names_variable_and_provider_path() -> None:
    err = config_error(one_provider(config={"api_key": "${MY_API_KEY}"}), env={})
    assert isinstance(err, InterpolationError)
    assert "MY_API_KEY" in str(err)
    assert err.path == "embeddings.providers.m.config.api_key"


def test_env_var_is_substituted() -> None:
    config = parse_config(one_provider(config={"api_key": "${MY_API_KEY}"}), env={"MY_API_KEY": SECRET})
    assert config.embeddings.providers["m"].config["api_key"] == SECRET


# -- secrets never reach the message ---------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        one_provider(api_key=SECRET, deploymnt={}),
        one_provider(config={"api_key": SECRET}, deploymnt={}),
        one_provider(call_timeout_s=SECRET),
        one_provider(deployment={"num_gpus": SECRET}),
        {"registry": {"http_port": SECRET}},
    ],
    ids=["unknown-sibling", "config-sibling", "bad-number", "bad-gpus", "bad-port"],
)
def test_error_does_not_echo_the_secret(raw: dict[str, Any]) -> None:
    err = config_error(raw)
    assert SECRET not in str(err)
    assert SECRET not in repr(err)


def test_error_from_env_does_not_echo_the_secret() -> None:
    raw = one_provider(config={"api_key": "${KEY}"}, call_timeout_s="${KEY}")
    err = config_error(raw, env={"KEY": SECRET})
    assert "call_timeout_s" in str(err)
    assert SECRET not in str(err)


# -- files ---------------------------------------------------------------------------


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("embeddings:\n  providers: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(path, env={})
    assert str(path) in str(info.value)


def test_yaml_syntax_error_does_not_echo_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        f"embeddings:\n  providers:\n    m:\n      class: {MINILM}\n      config:\n"
        f"        api_key: {SECRET}: [\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("document", ["- a\n- b\n", "just a string\n", "42\n"])
def test_non_mapping_top_level(tmp_path: Path, document: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(document, encoding="utf-8")
    kind = type(yaml.safe_load(document)).__name__
    with pytest.raises(ConfigError, match=f"mapping at the top level, got {kind}"):
        load_config(path, env={})


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="cannot read config file") as info:
        load_config(path, env={})
    assert str(path) in str(info.value)


def test_load_config_reports_the_file_as_source(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(one_provider(deploymnt={})), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(path) in str(info.value)
    assert "embeddings.providers.m.deploymnt: unknown key" in str(info.value)


# -- fallback_chain ---------------------------------------------------------------------------


def test_fallback_chain_is_depth_first_deduplicated() -> None:
    assert fallback_chain("a", {"a": ["b", "c"], "b": ["d"]}) == ["b", "d", "c"]


def test_fallback_chain_visits_shared_fallback_once() -> None:
    assert fallback_chain("a", {"a": ["b", "c"], "b": ["d"], "c": ["d", "e"]}) == ["b", "d", "c", "e"]


def test_fallback_chain_without_fallbacks_is_empty() -> None:
    assert fallback_chain("solo", {"solo": []}) == []
    assert fallback_chain("solo", {}) == []


def test_fallback_chain_cycle_raises_with_path() -> None:
    with pytest.raises(ConfigError, match="x -> y -> z -> x") as info:
        fallback_chain("x", {"x": ["y"], "y": ["z"], "z": ["x"]}, path="here")
    assert info.value.path == "here"


def test_config_keeps_fallback_order() -> None:
    config = parse_config(providers(a={"fallback": ["c", "b"]}, b={}, c={}), env={})
    assert config.embeddings.providers["a"].fallback == ["c", "b"]


# -- parse_spec -----------------------------------------------------------------------------


def test_parse_spec_minimal() -> None:
    spec = parse_spec({"class": MINILM})
    assert isinstance(spec, ProviderSpec)
    assert spec.class_path == MINILM
    assert spec.config == {} and spec.fallback == [] and spec.depends_on == []
    assert spec.deployment.num_gpus == 0.0
    assert spec.deployment.num_replicas is None and spec.deployment.autoscaling_config is None


def test_parse_spec_does_not_mutate_input() -> None:
    raw = {"class": MINILM, "config": {"k": [1, 2]}, "fallback": ["x"]}
    before = copy.deepcopy(raw)
    parse_spec(raw)
    assert raw == before


@pytest.mark.parametrize(
    ("raw", "key"),
    [({}, "class"), ({"class": ""}, "class"), ({"class": MINILM, "fallbak": []}, "fallbak"),
     ({"class": MINILM, "call_timeout_s": 0}, "call_timeout_s")],
)
def test_parse_spec_errors_name_path_and_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec(raw, "embeddings.providers.new")
    assert "embeddings.providers.new" in str(info.value)
    assert key in str(info.value)
