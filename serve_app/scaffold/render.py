"""The generated module and test file, rendered from the template files and the interface.

`render_module` and `render_test` take the interface class as an argument
(the caller passes ``interface_for(ptype)``), so what the signatures say is
whatever that class says; see `signatures`.
"""

from __future__ import annotations

import json
from typing import Any

from serve_app.scaffold.catalog import NAME_TOKEN, SPECS, TypeSpec
from serve_app.scaffold.imports import import_block
from serve_app.scaffold.model import Request
from serve_app.scaffold.signatures import import_of, render_signatures
from serve_app.scaffold.template_files import fill_blocks, fill_names, lines_of, read_sections, read_text

MODULE_SECTIONS = ("imports", "source")
PROVIDER_SECTIONS = ("imports", "state", "methods", "helpers")
TEST_SECTIONS = ("imports", "tests")


def merged_config(request: Request) -> dict[str, Any]:
    """The placeholder's built-in keys (with their defaults), then the operator's keys (which win)."""
    config = {}
    for key, builtin in SPECS[request.ptype].builtins.items():
        config[key] = request.name if builtin.default == NAME_TOKEN else builtin.default
    config.update(request.config_keys)
    return config


def render_module(request: Request, iface: type, test_rel: str, config: dict[str, Any]) -> str:
    """The provider module: a subclass of ``iface`` whose every method has a placeholder body."""
    shared = read_sections("module.py-tpl", MODULE_SECTIONS)
    where = f"{request.ptype.value}/provider.py-tpl"
    own = read_sections(where, PROVIDER_SECTIONS)
    text = fill_blocks(shared["source"], {
        "__STATE__": lines_of(own["state"]),
        "__METHODS__": lines_of(own["methods"]),
        "__HELPERS__": lines_of(own["helpers"], lead=2),
    })
    text = fill_blocks(text, {"__HEALTH_TODO__": read_text("health_todo.py-tpl").rstrip("\n").split("\n")})
    text, signature_imports = render_signatures(text, iface, where)
    # Names in one pass, the operator's config last: a default reading "__CLASS__" stays as typed.
    text = fill_names(text, {**_names(request, iface), "__TEST_PATH__": test_rel}, f"module.py-tpl or {where}",
                      keep=frozenset({"__IMPORTS__", "__FIELDS__"}))
    imports = [shared["imports"], own["imports"], *signature_imports, *_module_imports(iface)]
    return fill_blocks(text, {
        "__IMPORTS__": import_block(imports, ["providers"]),
        "__FIELDS__": _fields(SPECS[request.ptype], config),
    }) + "\n"


def render_test(request: Request, iface: type, module_name: str, config: dict[str, Any]) -> str:
    """The provider's tests: the shared ones, then the type's own."""
    shared = read_sections("test.py-tpl", TEST_SECTIONS)
    where = f"{request.ptype.value}/test.py-tpl"
    own = read_sections(where, TEST_SECTIONS)
    text = fill_blocks(shared["tests"], {"__TESTS__": lines_of(own["tests"], lead=2)})
    data = {"__MODULE__": module_name, "__CONFIG__": py_literal(config, indent=0)}
    names = {**_names(request, iface), **data}
    text = fill_names(text, names, f"test.py-tpl or {where}", keep=frozenset({"__IMPORTS__"}))
    imports = fill_names("\n".join([shared["imports"], own["imports"]]), names, f"test.py-tpl or {where}")
    first_party = ["providers", module_name.split(".")[0]]
    return fill_blocks(text, {"__IMPORTS__": import_block([imports], first_party)}) + "\n"


def _names(request: Request, iface: type) -> dict[str, str]:
    return {"__CLASS__": request.class_name, "__IFACE__": iface.__name__,
            "__PTYPE_VALUE__": request.ptype.value, "__PTYPE__": request.ptype.name}


def _module_imports(iface: type) -> list[str]:
    """The interface, and the config base class from wherever it is defined now (it is moving
    out of providers.registry.config; importing it from its home keeps the generated import right)."""
    from providers.registry.config import ProviderConfig, parse_provider_config

    return [import_of(iface, iface.__name__, iface.__module__),
            import_of(ProviderConfig, "ProviderConfig", "providers.registry.config"),
            import_of(parse_provider_config, "parse_provider_config", "providers.registry.config")]


def py_literal(value: Any, indent: int = 4) -> str:
    """A Python literal in the project's style (double quotes); dicts one key a line when long."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid Python string literal
    if isinstance(value, (bool, type(None), int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    items = [f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()]
    flat = "{" + ", ".join(items) + "}"
    if len(flat) + indent <= 100:
        return flat
    pad = " " * (indent + 4)
    return "{\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + "}"


def _fields(spec: TypeSpec, config: dict[str, Any]) -> list[str]:
    """The settings model's fields, after a blank line; none at all for an empty config."""
    lines = []
    for key, value in config.items():
        builtin = spec.builtins.get(key)
        note = builtin.comment if builtin else "TODO: say what this setting does, and use it"
        lines.append(f"    {key}: {_annotation(value, spec, key)} = {py_literal(value)}  # {note}")
    return [""] + lines if lines else []


def _annotation(value: Any, spec: TypeSpec, key: str) -> str:
    builtin = spec.builtins.get(key)
    if builtin and type(None) in builtin.types:
        return "float | None"  # the only optional built-in today: cache default_ttl_s
    for kind, text in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"),
                       (list, "list[Any]"), (dict, "dict[str, Any]")):
        if isinstance(value, kind):
            return text
    return "Any"
