"""Config fuzzing (hypothesis): any providers.yaml document, random or a mutation
of a real one, ends in a valid config or a ``RegistryError`` that says where,
never another exception type. Interpolation gets the same treatment with ``$``,
``${``, nested braces and unicode.

The number of examples is bounded so that ``make test`` stays quick; the seed
is derandomized so a failure reproduces. ``FUZZ_EXAMPLES`` raises the bound for
a longer local run.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers.errors import ConfigError, RegistryError
from providers.registry.config import RegistryConfig, load_config, parse_config
from providers.registry.interpolation import interpolate_string

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ENV = {"HOST": "db", "PORT": "5432", "TOKEN": "s3cr3t", "UNI": "grüß ✓"}

# The real documents every mutation starts from.
SEEDS = [yaml.safe_load((ROOT / "config" / "providers.yaml").read_text()),
         yaml.safe_load((ROOT / "config" / "examples" / "gpu_cluster.yaml").read_text())]

# Interpolation's alphabet: the characters it gives meaning to, plus ordinary and unicode ones.
tricky_text = st.lists(st.sampled_from(list("${}:-?_ABCaz09 ✓ü\n\\\"'") + ["${HOST}", "${UNI}", "$$", "${", "}}",
                                                                           "${X:-", "${TOKEN:?gone}"]),
                       max_size=20).map("".join)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), tricky_text, st.text(max_size=20))
keys = st.one_of(st.sampled_from(["providers", "class", "config", "deployment", "fallback", "default",
                                  "registry", "embeddings", "vector_stores", "num_replicas", "num_gpus",
                                  "autoscaling_config", "enabled", "depends_on", "embedder"]),
                 st.text(max_size=12))
trees = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(keys, inner, max_size=5)), max_leaves=30)


def check_outcome(run) -> None:
    """``run()`` returns a config or raises a RegistryError whose message places the fault."""
    try:
        result = run()
    except RegistryError as exc:
        message = str(exc)
        assert message.strip(), "a RegistryError without a message"
        assert "Traceback" not in message
        if isinstance(exc, ConfigError):
            # A key path ("a.b.c:" or "a[0]:"), a line and column, or the top level named.
            assert exc.path or re.search(r"\S+: |line \d+|top level|must be a mapping", message), message
        return
    assert isinstance(result, RegistryConfig)


def paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a tree (dict keys and list indexes)."""
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += paths(v, prefix + (i,))
    return out


def mutate(tree: Any, path: tuple, action: str, value: Any) -> Any:
    doc = copy.deepcopy(tree)
    if not path:
        return value if action == "replace" else doc
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif action == "add" and isinstance(parent[last], dict):
        parent[last]["fuzzed_key"] = value
    elif action == "add" and isinstance(parent[last], list):
        parent[last].append(value)
    return doc


@FUZZ
@given(tree=st.one_of(trees, st.dictionaries(keys, trees, max_size=6)))
def test_random_documents_are_valid_or_a_registry_error(tree):
    check_outcome(lambda: parse_config(tree, ENV))


@FUZZ
@given(data=st.data(), seed=st.sampled_from(range(len(SEEDS))),
       action=st.sampled_from(["delete", "replace", "add"]), value=trees)
def test_mutated_real_configs_are_valid_or_name_the_key(data, seed, action, value):
    doc = SEEDS[seed]
    path = data.draw(st.sampled_from(paths(doc)))
    check_outcome(lambda: parse_config(mutate(doc, path, action, value), ENV))


@FUZZ
@given(text=st.one_of(st.text(max_size=300), tricky_text))
def test_any_file_text_loads_or_fails_as_a_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "providers.yaml"
    path.write_text(text, encoding="utf-8")
    check_outcome(lambda: load_config(path, ENV))


@FUZZ
@given(text=tricky_text)
def test_interpolation_returns_text_or_a_config_error(text):
    try:
        out = interpolate_string(text, ENV, "registry.x")
    except ConfigError as exc:
        assert "registry.x" in str(exc)
        return
    assert isinstance(out, str)
    if "$" not in text:
        assert out == text  # nothing to interpolate, nothing changed


def test_the_fuzzer_reaches_both_outcomes():
    """The mutations are not all rejected (nor all accepted): the suite tests something."""
    outcomes = {"ok": 0, "error": 0}
    for path in paths(SEEDS[0])[:60]:
        for action in ("delete", "add"):
            try:
                parse_config(mutate(SEEDS[0], path, action, 12), ENV)
                outcomes["ok"] += 1
            except RegistryError:
                outcomes["error"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0, outcomes
