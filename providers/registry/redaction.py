"""Keep secrets out of every output: listings, stats, HTTP bodies, logs, errors.

Two rules. A value whose *key* looks secret (password, token, api_key, ...) is
replaced whole. A string that holds a URL with credentials (a DSN such as
``postgresql://user:pw@host/db``) keeps everything but the password. Errors and
log lines are free text, so `scrub_text` also removes the exact secret values
the registry was configured with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"

# A key is secret when one of its words is (``hf_token``, ``clientSecret``,
# ``db-password``) or it contains one of the compound names. Words, not
# substrings: ``max_tokens`` and ``author`` are not secrets.
_SECRET_WORDS = frozenset(
    {"password", "passwd", "pass", "passphrase", "pwd", "secret", "token", "apikey",
     "credential", "credentials", "auth", "authorization", "dsn", "bearer", "cookie"}
)
_SECRET_COMPOUNDS = ("api_key", "apikey", "private_key", "access_key", "secret_key",
                     "connection_string", "password", "secret")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")  # clientSecret, HFToken
# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?=@)")
# libpq key=value DSNs: ``host=db password=pw`` -> ``host=db password=***``
_KV_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'[^']*'|[^\s']+)", re.IGNORECASE)
# Secrets shorter than this are not scrubbed from free text: replacing every
# "a" or "1" in a message would destroy it and protects nothing.
_MIN_SCRUB_LEN = 4


def is_secret_key(key: str) -> bool:
    snake = _CAMEL.sub("_", str(key)).lower().replace("-", "_")
    if any(c in snake for c in _SECRET_COMPOUNDS):
        return True
    return any(w in _SECRET_WORDS for w in _WORD_SPLIT.split(snake))


def redact(node: Any) -> Any:
    """A copy of ``node`` with secret-looking keys and DSN passwords masked."""
    if isinstance(node, Mapping):
        return {k: _redact_item(k, v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [redact(v) for v in node]
    if isinstance(node, str):
        return redact_urls(node)
    return node


def _redact_item(key: Any, value: Any) -> Any:
    if is_secret_key(str(key)) and isinstance(value, (Mapping, list, tuple)):
        return REDACTED if value else value  # a list of keys is as secret as one key
    if is_secret_key(str(key)) and isinstance(value, (str, int, float, bytes)):
        # A DSN under a secret-looking key keeps its host for debugging.
        if isinstance(value, str) and _URL_PASSWORD.search(value):
            return redact_urls(value)
        return REDACTED if value not in ("", None) else value
    return redact(value)


def redact_urls(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)
    return _KV_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)


def secret_values(node: Any) -> set[str]:
    """Every secret string in a config tree, for scrubbing free text."""
    found: set[str] = set()
    _collect(node, found, under_secret_key=False)
    return {s for s in found if len(s) >= _MIN_SCRUB_LEN}


def _collect(node: Any, found: set[str], under_secret_key: bool) -> None:
    if isinstance(node, Mapping):
        for k, v in node.items():
            _collect(v, found, under_secret_key or is_secret_key(str(k)))
    elif isinstance(node, (list, tuple)):
        for v in node:
            _collect(v, found, under_secret_key)
    elif isinstance(node, str):
        for pattern in (_URL_PASSWORD, _KV_PASSWORD):
            for m in pattern.finditer(node):
                found.add(m.group("pw").strip("'"))
        if under_secret_key and not _URL_PASSWORD.search(node):
            found.add(node)


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Free text with DSN passwords and the given secret values masked."""
    text = redact_urls(text)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text
