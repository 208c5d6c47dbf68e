"""The providers.yaml reference of docs/configuration.md, rendered from the config's JSON Schema.

    python -m serve_app.config_reference                                # print the Markdown
    python -m serve_app.config_reference --write docs/configuration.md  # replace the block between the markers
    python -m serve_app.config_reference --check docs/configuration.md  # exit 1 when the block is stale

The schema (``providers.registry.config.json_schema``, also what
``provider-registry schema`` gives editors) is the single source: a key's
type, default, bounds and description are written once, on its pydantic
field, so the manual cannot document a key the loader does not know or miss
one it does. No Ray import: ``make readme`` runs in a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"
REGENERATE = "make readme"
# Where the reference lives (`make readme` writes it there; tests/unit/test_readme.py checks it).
TARGET = "docs/configuration.md"
# Several keys of one object sharing a definition (embeddings, vector_stores,
# ... are all a ProviderGroup) are documented once, under this placeholder;
# a map's keys (provider names) under MAP_KEY.
SHARED_KEY = "<type>"
MAP_KEY = "<name>"


def render(schema: dict[str, Any]) -> str:
    """Markdown for ``schema``: one table per object, in document order."""
    sections: list[str] = []
    _render_object(schema, schema, "", sections)
    notice = (f"<!-- Generated from the JSON Schema of providers.yaml by `{REGENERATE}`: "
              "edit the pydantic fields' descriptions (providers/registry/config.py, breaker.py), not here. -->")
    return "\n\n".join([notice, *sections]) + "\n"


def _render_object(schema: dict[str, Any], node: dict[str, Any], path: str, out: list[str]) -> None:
    """One section for ``node`` (an object schema at ``path``), then its nested objects'."""
    props = node.get("properties", {})
    children = _children(schema, props, path)
    heading = f"#### `{path}`" if path else "#### Top level"
    required = set(node.get("required", []))
    rows = [_row(schema, key, prop, children.get(key), key in required) for key, prop in props.items()]
    table = "| key | type | default | description |\n| --- | --- | --- | --- |\n" + "\n".join(rows)
    out.append("\n\n".join(p for p in (heading, _cell(node.get("description", "")), table) if p))
    done: set[str] = set()
    for child_path, child in children.values():
        if child_path not in done:  # keys sharing a definition share its section
            done.add(child_path)
            _render_object(schema, child, child_path, out)


def _children(schema: dict[str, Any], props: dict[str, Any], path: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Key -> (section path, object schema) for the keys holding nested objects."""
    found = {key: child for key, prop in props.items() if (child := _object_child(schema, prop))}
    refs = [ref for ref, _, _ in found.values()]
    children = {}
    for key, (ref, map_key, node) in found.items():
        segment = SHARED_KEY if ref and refs.count(ref) > 1 else key  # inline objects are never shared
        children[key] = (".".join(p for p in (path, segment, map_key) if p), node)
    return children


def _object_child(schema: dict[str, Any], prop: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]] | None:
    """(its definition's ``$ref``, the map-key segment for a map of objects,
    the object schema) for a property holding objects; None for a leaf."""
    inner = _non_null(prop)
    if "properties" in _deref(schema, inner):
        return inner.get("$ref", ""), None, _deref(schema, inner)
    values = _deref(schema, inner).get("additionalProperties")
    if isinstance(values, dict) and "properties" in _deref(schema, values):
        return values.get("$ref", ""), MAP_KEY, _deref(schema, values)
    return None


def _row(schema: dict[str, Any], key: str, prop: dict[str, Any], child: tuple[str, Any] | None,
         required: bool) -> str:
    description = prop.get("description") or _deref(schema, _non_null(prop)).get("description", "")
    kind = _type(schema, prop) if child is None else _object_type(schema, prop, child[0])
    cells = [f"`{key}`", kind, "required" if required else _default(prop), description]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _object_type(schema: dict[str, Any], prop: dict[str, Any], section: str) -> str:
    """``object (`section`)``: a nested object points at its own section."""
    is_map = "properties" not in _deref(schema, _non_null(prop))
    kind = ("map of string to " if is_map else "") + f"object (`{section}`)"
    return kind + (" or null" if _non_null(prop) is not prop else "")


def _type(schema: dict[str, Any], prop: dict[str, Any]) -> str:
    """A short type: ``integer ≥ 1``, ``list of string``, ``object``, ``one of `a`, `b```..."""
    if "anyOf" in prop:
        return " or ".join(_type(schema, option) for option in prop["anyOf"])
    if "$ref" in prop:
        return _type(schema, _deref(schema, prop))
    if "enum" in prop:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    kind = prop.get("type", "any")
    if kind == "array":
        return "list of " + _type(schema, prop.get("items", {}))
    if kind == "object" and "properties" not in prop:
        values = prop.get("additionalProperties", True)
        return "mapping" if values is True else "map of string to " + _type(schema, values)
    return " ".join([kind, *_bounds(prop)])


def _bounds(prop: dict[str, Any]) -> list[str]:
    """Validation bounds, as the loader enforces them."""
    marks = [("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")]
    bounds = [f"{sign} {json.dumps(prop[k])}" for k, sign in marks if k in prop]
    if "minLength" in prop:
        n = prop["minLength"]
        bounds.append(f"of at least {n} character{'s' if n != 1 else ''}")
    if "pattern" in prop:
        bounds.append(f"matching `{prop['pattern']}`")
    return [", ".join(bounds)] if bounds else []


def _default(prop: dict[str, Any]) -> str:
    if "default" in prop:
        return f"`{json.dumps(prop['default'])}`"
    # Nested objects default to their keys' defaults (pydantic writes none).
    return "see its keys" if "$ref" in _non_null(prop) else ""


def _non_null(prop: dict[str, Any]) -> dict[str, Any]:
    """``X`` of an ``X or null`` property (an optional nested object)."""
    options = [o for o in prop.get("anyOf", []) if o.get("type") != "null"]
    return options[0] if len(options) == 1 else prop


def _deref(schema: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
    ref = prop.get("$ref")
    if not ref:
        return prop
    node: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _cell(text: str) -> str:
    """Text safe in a table cell (and in a paragraph): one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def reference() -> str:
    from providers.registry.config import json_schema

    return render(json_schema())


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the markers replaced by ``block``."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {START} ... {END} are missing or out of order")
    # Blank lines around the block: a table runs on into a following line
    # unless one ends it.
    return text[:start + len(START)] + "\n" + block + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app.config_reference", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", metavar="FILE", help="replace the block between the markers in FILE")
    mode.add_argument("--check", metavar="FILE", help="exit 1 when FILE's block differs from the schema's")
    args = parser.parse_args(argv)
    block = reference()
    if not (args.write or args.check):
        sys.stdout.write(block)
        return 0
    path = Path(args.write or args.check)
    text = path.read_text(encoding="utf-8")
    new = replace_block(text, block)
    if args.check:
        if new != text:
            print(f"{path}: the providers.yaml reference is stale; regenerate it with `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    if new != text:
        path.write_text(new, encoding="utf-8")
    print(f"{path}: providers.yaml reference {'updated' if new != text else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
