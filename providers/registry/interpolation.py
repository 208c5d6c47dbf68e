"""``${VAR}`` and ``${VAR:-default}`` in config strings.

Grammar (applied to every string in the YAML tree, keys excluded):

* ``$$`` is a literal ``$``; a ``$`` not followed by ``{`` is literal too.
* ``${NAME}`` is the variable's value; unset is an error naming the variable.
* ``${NAME:-default}`` is the value, or ``default`` when unset or empty (as
  POSIX shells do). The default may itself hold ``${...}`` (nested braces are
  matched, not cut at the first ``}``).
* An unclosed ``${`` or an invalid name is an error, never passed through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from providers.errors import InterpolationError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def interpolate_tree(node: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Return a copy of a YAML tree with every string interpolated."""
    if isinstance(node, str):
        return interpolate_string(node, env, path)
    if isinstance(node, Mapping):
        return {k: interpolate_tree(v, env, _join(path, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, env, f"{path}[{i}]") for i, v in enumerate(node)]
    return node


def interpolate_string(text: str, env: Mapping[str, str], path: str = "") -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "$" or i + 1 >= len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _matching_brace(text, i + 1, path)
            out.append(_resolve(text[i + 2 : end], env, path))
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _matching_brace(text: str, open_at: int, path: str) -> int:
    depth = 0
    for j in range(open_at, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    raise InterpolationError("unclosed '${' (use '$$' for a literal '$')", path or None)


def _resolve(body: str, env: Mapping[str, str], path: str) -> str:
    name, sep, default = body.partition(":-")
    if not _NAME.match(name):
        # Not echoed: '${TOKEN-sk-live...}' (a typo for ':-') would print the secret.
        raise InterpolationError(
            "invalid variable name in '${...}' (letters, digits and _; a default needs ':-')",
            path or None,
        )
    value = env.get(name)
    if sep:
        return value if value else interpolate_string(default, env, path)
    if value is None:
        raise InterpolationError(
            f"environment variable {name} is not set and has no default "
            f"(write ${{{name}:-default}} to give one)",
            path or None,
        )
    return value


def _join(path: str, key: Any) -> str:
    key = str(key) or "''"  # an empty key still shows in the path (found by fuzzing)
    return f"{path}.{key}" if path else key
