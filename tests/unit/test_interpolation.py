"""``${VAR}`` interpolation (providers/registry/interpolation.py).

The environment is always a plain dict handed in, never ``os.environ``, so the
results do not depend on the machine running the tests.
"""

from __future__ import annotations

import pytest

from providers.errors import ConfigError, InterpolationError
from providers.registry.config import parse_config
from providers.registry.interpolation import interpolate_string, interpolate_tree

ENV = {"HOST": "db.internal", "PORT": "5432", "EMPTY": "", "GREETING": "grüß dich ✓", "B": "from-b"}
MINILM = "providers.embeddings.sentence_transformers.SentenceTransformerProvider"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${HOST}", ENV["HOST"]),
        ("${HOST}:${PORT}", f"{ENV['HOST']}:{ENV['PORT']}"),
        ("postgresql://u@${HOST}/x", f"postgresql://u@{ENV['HOST']}/x"),
        ("no variables here", "no variables here"),
        ("", ""),
    ],
)
def test_plain_variables_are_substituted(text: str, expected: str) -> None:
    assert interpolate_string(text, ENV) == expected


def test_set_variable_wins_over_default() -> None:
    assert interpolate_string("${PORT:-9999}", ENV) == ENV["PORT"]


@pytest.mark.parametrize("name", ["UNSET_VAR", "EMPTY"], ids=["unset", "empty"])
def test_default_used_when_unset_or_empty(name: str) -> None:
    assert interpolate_string(f"${{{name}:-fallback value}}", ENV) == "fallback value"


def test_empty_default_gives_empty_string() -> None:
    assert interpolate_string("[${UNSET_VAR:-}]", ENV) == "[]"


def test_empty_variable_without_default_is_kept_empty() -> None:
    # Only ':-' treats empty as unset; a plain ${EMPTY} is the empty value.
    assert interpolate_string("[${EMPTY}]", ENV) == "[]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A:-${B:-x}}", ENV["B"]),
        ("${A:-${C:-x}}", "x"),
        ("${A:-${C:-${D:-deep}}}", "deep"),
        ("${A:-pre-${HOST}-post}", f"pre-{ENV['HOST']}-post"),
        ("${A:-{}}", "{}"),
        ("${A:-a}b}", "ab}"),
    ],
)
def test_nested_braces_in_defaults(text: str, expected: str) -> None:
    assert interpolate_string(text, ENV) == expected


def test_default_is_not_evaluated_when_variable_is_set() -> None:
    # The default names an unset variable without a default: evaluating it would raise.
    assert interpolate_string("${HOST:-${NOT_SET_ANYWHERE}}", ENV) == ENV["HOST"]


def test_unset_variable_inside_a_used_default_is_an_error() -> None:
    with pytest.raises(InterpolationError, match="NOT_SET_ANYWHERE"):
        interpolate_string("${A:-${NOT_SET_ANYWHERE}}", ENV)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$$", "$"),
        ("$${HOST}", "${HOST}"),
        ("price: $$5", "price: $5"),
        ("$$$$", "$$"),
        ("$$${HOST}", "$" + ENV["HOST"]),
        ("${A:-$$}", "$"),
    ],
)
def test_double_dollar_is_a_literal_dollar(text: str, expected: str) -> None:
    assert interpolate_string(text, ENV) == expected


@pytest.mark.parametrize("text", ["$", "a$", "$a", "cost $5", "a $ b", "${HOST}$"])
def test_lone_dollar_is_literal(text: str) -> None:
    expected = text.replace("${HOST}", ENV["HOST"])
    assert interpolate_string(text, ENV) == expected


@pytest.mark.parametrize("text", ["${", "${HOST", "abc ${HOST:-x", "${A:-${B}", "x${"])
def test_unclosed_brace_is_an_error(text: str) -> None:
    with pytest.raises(InterpolationError, match="unclosed"):
        interpolate_string(text, ENV, "registry.http_host")


@pytest.mark.parametrize("body", ["", "1ABC", "A-B", " HOST", "HO ST", "A:?err", "Ä"])
def test_invalid_variable_names_are_errors(body: str) -> None:
    with pytest.raises(InterpolationError, match="invalid variable name") as info:
        interpolate_string(f"${{{body}}}", ENV, "x.y")
    assert str(info.value).startswith("x.y: ")


def test_invalid_name_error_does_not_echo_what_may_be_a_secret() -> None:
    # '${TOKEN-sk-live-123}' is a typo for ':-': the "name" holds the secret default.
    with pytest.raises(InterpolationError) as info:
        interpolate_string("${TOKEN-sk-live-123}", ENV, "x.api_key")
    assert "sk-live-123" not in str(info.value)


def test_unicode_around_and_inside_values() -> None:
    env = {"NAME": "Zoë ☃", "EMOJI": "🚀"}
    assert interpolate_string("→${NAME}←", env) == "→Zoë ☃←"
    assert interpolate_string("${EMOJI}${EMOJI}", env) == "🚀🚀"
    assert interpolate_string("日本${MISSING:-語}", env) == "日本語"
    assert interpolate_string("${GREETING}", ENV) == ENV["GREETING"]


def test_unset_variable_error_names_variable_and_path() -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate_string("${OPENAI_KEY}", {}, "embeddings.providers.x.config.api_key")
    err = info.value
    assert "OPENAI_KEY" in str(err)
    assert err.path == "embeddings.providers.x.config.api_key"
    assert str(err).startswith("embeddings.providers.x.config.api_key: ")
    assert isinstance(err, ConfigError)


def test_tree_error_path_is_built_from_keys() -> None:
    tree = {"embeddings": {"providers": {"x": {"config": {"api_key": "${OPENAI_KEY}"}}}}}
    with pytest.raises(InterpolationError) as info:
        interpolate_tree(tree, {})
    assert info.value.path == "embeddings.providers.x.config.api_key"
    assert "OPENAI_KEY" in str(info.value)


def test_parse_config_error_names_variable_and_provider_path() -> None:
    raw = {"embeddings": {"providers": {"x": {"class": MINILM, "config": {"api_key": "${OPENAI_KEY}"}}}}}
    with pytest.raises(InterpolationError) as info:
        parse_config(raw, env={})
    assert "OPENAI_KEY" in str(info.value)
    assert "embeddings.providers.x.config.api_key" in str(info.value)


def test_interpolation_inside_lists() -> None:
    tree = {"hosts": ["${HOST}", "literal", {"port": "${PORT}"}, ["${A:-inner}"]], "n": 3, "flag": True}
    out = interpolate_tree(tree, ENV)
    assert out == {"hosts": [ENV["HOST"], "literal", {"port": ENV["PORT"]}, ["inner"]], "n": 3, "flag": True}


def test_list_error_path_has_the_index() -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate_tree({"a": {"hosts": ["ok", "${NOPE}"]}}, {})
    assert info.value.path == "a.hosts[1]"


def test_keys_are_not_interpolated() -> None:
    assert interpolate_tree({"${HOST}": "${PORT}"}, ENV) == {"${HOST}": ENV["PORT"]}


def test_tree_is_copied_not_mutated() -> None:
    tree = {"a": ["${HOST}"]}
    interpolate_tree(tree, ENV)
    assert tree == {"a": ["${HOST}"]}


def test_values_are_not_reinterpolated() -> None:
    # A value that itself looks like ${...} is data, not a second template.
    env = {"TRICK": "${HOST}", "DOLLARS": "$$"}
    assert interpolate_string("${TRICK}", env) == "${HOST}"
    assert interpolate_string("${DOLLARS}", env) == "$$"


TRICKY = [
    "", "$", "$$", "$$$", "${", "}", "{}", "${}", "${}}", "}${", "${{}}", "${A:-", "${A:-}", "${A:-}}",
    "${:-x}", "${A:-${B:-${C:-${D}}}}", "${A:-${", "$${", "$${}", "${$}", "${A$}", "${A}${B}${C:-c}",
    "\x00${B}", "${B}\n${HOST}", "🚀${", "${🚀}", "${A:-🚀}", "${A:-a:-b}", "${HOST:-${}",
    "$" * 50, "${" * 20 + "}" * 20, "${A:-" * 10 + "}" * 10, "{${B}}", "${B}" * 100,
]


def test_tricky_strings_give_str_or_interpolation_error() -> None:
    outcomes = {"str": 0, "error": 0}
    for text in TRICKY:
        try:
            result = interpolate_string(text, ENV, "p")
        except InterpolationError as exc:
            assert exc.path == "p", text
            outcomes["error"] += 1
        except Exception as exc:  # pragma: no cover - the failure this test looks for
            pytest.fail(f"{text!r} raised {type(exc).__name__}: {exc}")
        else:
            assert isinstance(result, str), text
            outcomes["str"] += 1
    # The list holds both kinds; if either count is 0 the list stopped testing what it should.
    assert outcomes["str"] > 0 and outcomes["error"] > 0
