"""Raw Cypher as the engines take it: one statement per call, and whether it only reads.

A small lexer (comments dropped, string and backtick contents opaque) splits
statements and finds writing clauses and procedure calls. It is
conservative: what it cannot read for certain counts as a write.
"""

from __future__ import annotations

import re
from typing import Any

from providers.errors import InvalidRequestError

_TOKEN_RE = re.compile(
    r"""(?P<comment>//[^\n]*|/\*.*?(?:\*/|\Z))"""
    r"""|(?P<string>'(?:[^'\\]|\\.)*(?:'|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z))"""
    r"""|(?P<quoted>`(?:[^`]|``)*(?:`|\Z))"""
    r"""|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"""
    r"""|(?P<other>[^\sA-Za-z_'"`/]+|/)""",
    re.DOTALL,
)
WRITE_KEYWORDS = frozenset({
    "CREATE", "MERGE", "DELETE", "DETACH", "SET", "REMOVE", "DROP", "ALTER", "COPY", "LOAD", "INSTALL",
    "UNINSTALL", "ATTACH", "IMPORT", "EXPORT", "CHECKPOINT", "FOREACH", "UPDATE", "USE", "BEGIN", "COMMIT",
    "ROLLBACK", "GRANT", "REVOKE", "DENY", "TRUNCATE", "INSERT", "FREE", "DUMP", "LOCK", "UNLOCK",
    "REGISTER", "STORAGE", "TRIGGER", "STREAM", "START", "STOP", "ANALYZE", "SNAPSHOT", "RECOVER",
})
# Procedures known to only read (Ladybug's catalog functions, Memgraph's introspection).
READ_ONLY_PROCEDURES = frozenset({
    "show_tables", "table_info", "show_connection", "db_version", "show_functions", "show_indexes",
    "show_sequences", "show_warnings", "current_setting",
    "mg.procedures", "mg.functions", "db.labels", "db.relationshiptypes", "db.propertykeys",
    "schema.node_type_properties", "schema.rel_type_properties",
})
_FIRST_WORDS = frozenset({"MATCH", "OPTIONAL", "WITH", "UNWIND", "RETURN", "CALL", "EXPLAIN", "PROFILE"})


def _tokens(query: str) -> list[tuple[str, str]]:
    """(kind, text) pairs; comments dropped, string and backtick contents opaque."""
    out = []
    for m in _TOKEN_RE.finditer(query):
        kind = m.lastgroup
        if kind != "comment":
            out.append((kind, m.group()))
    return out


def split_statements(query: str) -> list[list[tuple[str, str]]]:
    """The tokens of each ``;``-separated statement (a ``;`` inside a string does not split)."""
    statements: list[list[tuple[str, str]]] = [[]]
    for kind, text in _tokens(query):
        if kind == "other" and ";" in text:
            parts = text.split(";")
            for n, part in enumerate(parts):
                if n:
                    statements.append([])
                if part:
                    statements[-1].append(("other", part))
        else:
            statements[-1].append((kind, text))
    return [s for s in statements if s]


def _statement_reads_only(tokens: list[tuple[str, str]]) -> bool:
    words = [(n, text) for n, (kind, text) in enumerate(tokens) if kind == "word"]
    if not words or words[0][1].upper() not in _FIRST_WORDS:
        return False
    for n, text in words:
        prev = tokens[n - 1][1] if n else ""
        if prev.endswith((".", "$")):  # a property key or a parameter name, not a clause
            continue
        upper = text.upper()
        if upper in WRITE_KEYWORDS:
            return False
        if upper == "CALL":
            name = _procedure_name(tokens, n + 1)
            if name is None or name.lower() not in READ_ONLY_PROCEDURES:
                return False  # unknown procedures may write: only the known readers pass
    return True


def _procedure_name(tokens: list[tuple[str, str]], start: int) -> str | None:
    parts, n = [], start
    while n < len(tokens):
        kind, text = tokens[n]
        if kind == "word":
            parts.append(text)
        elif kind == "quoted":
            parts.append(text[1:-1])
        elif text == ".":
            parts.append(".")
        else:
            break
        n += 1
    name = "".join(parts)
    return name or None  # "CALL {" (a subquery) has no name: refused, it may hold writes


def is_read_only(query: str) -> bool:
    """Whether raw Cypher only reads: every statement starts like a query and holds no
    writing clause or unknown procedure call. Conservative: when unsure, ``False``."""
    if not isinstance(query, str):
        return False
    if _unterminated(query):
        return False  # the engine would read it differently from this lexer: refuse
    statements = split_statements(query)
    return bool(statements) and all(_statement_reads_only(s) for s in statements)


def _unterminated(query: str) -> bool:
    for m in _TOKEN_RE.finditer(query):
        text, kind = m.group(), m.lastgroup
        if kind == "comment" and text.startswith("/*") and (len(text) < 4 or not text.endswith("*/")):
            return True
        if kind in ("string", "quoted") and (len(text) < 2 or text[-1] != text[0]
                                             or (kind == "string" and _escaped_end(text))):
            return True
    return False


def _escaped_end(text: str) -> bool:
    """Whether a string token's last quote is escaped (so the string never closed)."""
    body = text[1:-1]
    return (len(body) - len(body.rstrip("\\"))) % 2 == 1


def check_query(query: Any) -> str:
    """One non-empty statement (a trailing ``;`` is fine)."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequestError("must be a non-empty string", "query")
    if len(split_statements(query)) > 1:
        raise InvalidRequestError("holds several statements; send one per call", "query")
    return query


def check_parameters(parameters: Any) -> dict[str, Any]:
    if parameters is None:
        return {}
    if not isinstance(parameters, dict) or any(not isinstance(k, str) for k in parameters):
        raise InvalidRequestError("must be an object with string keys", "parameters")
    return parameters
