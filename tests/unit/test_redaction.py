"""Secret masking (providers/registry/redaction.py)."""

from __future__ import annotations

import copy

import pytest

from providers.registry.redaction import REDACTED, is_secret_key, redact, redact_urls, scrub_text, secret_values

SECRET_KEYS = [
    "password", "api_key", "hf_token", "clientSecret", "db-password", "Authorization",
    "PASSWORD", "apiKey", "x-api-key", "accessToken", "private_key", "AWS_SECRET_ACCESS_KEY",
    "connection_string", "dsn", "bearer", "passwd", "pwd", "credentials", "cookie",
]
PLAIN_KEYS = [
    "max_tokens", "author", "tokenizer_name", "model_name", "batch_size", "compass",
    "passenger", "description", "num_tokens", "base_url", "host", "user", "authority_url",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys_are_recognised(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_plain_keys_are_not_secret(key: str) -> None:
    assert not is_secret_key(key)


@pytest.mark.parametrize("key", ["HFToken", "GHToken", "JWTBearer"])
def test_acronym_prefixed_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_values_are_masked(key: str) -> None:
    out = redact({key: "hunter2-value", "model_name": "minilm"})
    assert out == {key: REDACTED, "model_name": "minilm"}


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_plain_values_are_kept(key: str) -> None:
    assert redact({key: "visible-value"}) == {key: "visible-value"}


def test_numbers_under_secret_keys_are_masked_and_empty_kept() -> None:
    assert redact({"pin_password": 1234, "token": "", "max_tokens": 512}) == {
        "pin_password": REDACTED, "token": "", "max_tokens": 512,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://user:pw@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user:s3cr%40t@db.internal:5432/app?sslmode=require",
         "postgresql://user:***@db.internal:5432/app?sslmode=require"),
        ("redis://:onlypass@cache:6379/0", "redis://:***@cache:6379/0"),
        ("connect to mysql+pymysql://root:toor@127.0.0.1/x now", "connect to mysql+pymysql://root:***@127.0.0.1/x now"),
        ("host=db port=5432 password=pw user=u", "host=db port=5432 password=*** user=u"),
        ("host=db password = 'pw with space' user=u", "host=db password = *** user=u"),
        ("PASSWORD=Abc123", "PASSWORD=***"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("http://host:8000/v1", "http://host:8000/v1"),
        ("no secrets here", "no secrets here"),
    ],
)
def test_dsn_passwords_are_masked(text: str, expected: str) -> None:
    assert redact_urls(text) == expected


def test_dsn_under_plain_key_keeps_host() -> None:
    out = redact({"url": "postgresql://app:pw123@db.internal/app"})
    assert out == {"url": "postgresql://app:***@db.internal/app"}


def test_dsn_under_secret_key_keeps_host() -> None:
    out = redact({"dsn": "postgresql://app:pw123@db.internal/app"})
    assert out == {"dsn": "postgresql://app:***@db.internal/app"}


def test_nested_lists_and_dicts() -> None:
    tree = {
        "embeddings": {
            "providers": {
                "x": {
                    "config": {"api_key": "sk-abc123", "model": "m", "max_tokens": 5},
                    "replicas": [{"password": "p4ss", "host": "h1"}, {"host": "h2", "url": "pg://u:pw99@h2/x"}],
                }
            }
        },
        "tags": ["a", ("b", "mysql://u:tuplepw@h/x")],
    }
    original = copy.deepcopy(tree)
    out = redact(tree)
    assert out["embeddings"]["providers"]["x"]["config"] == {"api_key": REDACTED, "model": "m", "max_tokens": 5}
    assert out["embeddings"]["providers"]["x"]["replicas"] == [
        {"password": REDACTED, "host": "h1"},
        {"host": "h2", "url": "pg://u:***@h2/x"},
    ]
    assert out["tags"] == ["a", ["b", "mysql://u:***@h/x"]]
    assert tree == original  # a copy, not in place
    for secret in ("sk-abc123", "p4ss", "pw99", "tuplepw"):
        assert secret not in repr(out)


@pytest.mark.parametrize(
    "tree",
    [{"api_keys": ["sk-live-aaaa", "sk-live-bbbb"]}, {"credentials": {"user": "svc", "key": "sk-live-aaaa"}}],
    ids=["list", "dict"],
)
def test_containers_under_secret_keys_are_masked(tree: dict) -> None:
    assert "sk-live-aaaa" not in repr(redact(tree))


def test_secret_values_collects_keys_and_dsn_passwords() -> None:
    tree = {
        "a": {"api_key": "sk-abc123", "model": "m"},
        "b": [{"hf_token": "hf_xyz789"}],
        "c": {"url": "postgresql://u:dsnpass1@h/db", "libpq": "host=h password=kvpass22"},
        "d": {"password": "abc"},  # shorter than the scrub minimum: not collected
        "credentials": {"key": "nested-under-secret"},
    }
    assert secret_values(tree) == {"sk-abc123", "hf_xyz789", "dsnpass1", "kvpass22", "nested-under-secret"}


def test_secret_values_of_plain_tree_is_empty() -> None:
    assert secret_values({"model": "minilm", "batch_size": 32, "tags": ["x", "y"]}) == set()


def test_scrub_text_removes_secrets_from_free_text() -> None:
    tree = {"api_key": "sk-abc123", "dsn": "postgresql://u:dsnpass1@h/db"}
    secrets = secret_values(tree)
    message = "auth failed with key sk-abc123 while the pool used dsnpass1 (sk-abc123 again)"
    scrubbed = scrub_text(message, secrets)
    assert "sk-abc123" not in scrubbed and "dsnpass1" not in scrubbed
    assert scrubbed == f"auth failed with key {REDACTED} while the pool used {REDACTED} ({REDACTED} again)"


def test_scrub_text_masks_dsn_passwords_without_a_secret_list() -> None:
    assert scrub_text("cannot connect to postgresql://u:pw@host/db") == "cannot connect to postgresql://u:***@host/db"


def test_scrub_text_replaces_longest_secret_first() -> None:
    # If "abcd" were replaced first, the tail "efgh" of the longer secret would stay visible.
    assert scrub_text("value=abcdefgh", {"abcd", "abcdefgh"}) == f"value={REDACTED}"


def test_scrub_text_ignores_empty_secret() -> None:
    assert scrub_text("unchanged", {""}) == "unchanged"
