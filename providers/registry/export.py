"""The live route table back to a providers.yaml mapping (``provider-registry export``).

Run-time registrations live in the table, not in any file; a later ``serve
deploy`` of the file replaces the table (declarative state wins). Exporting
first keeps them. Secrets never leave: every value under a secret-looking
key, and every DSN with a password, becomes a ``${VAR}`` placeholder whose
name is returned, to be set where the registry runs.
"""

from __future__ import annotations

import re
from typing import Any

from providers.registry.redaction import is_secret_key
from providers.registry.table import RouteTable


def export_table(table: RouteTable, registry: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The live table as a providers.yaml mapping, and the placeholders it needs set.

    Every value under a secret-looking key becomes ``${<TYPE>_<NAME>_<KEY>}``
    (upper case): an export never writes a secret.
    """
    doc: dict[str, Any] = {"registry": registry}
    needed: list[str] = []
    for route in sorted(table.routes.values(), key=lambda r: r.key):
        spec = route.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        spec["class"] = route.spec.class_path
        base = re.sub(r"[^A-Za-z0-9]", "_", f"{route.type.value}_{route.name}").upper()
        spec["config"] = _placeholders(route.spec.config, base, needed)
        doc.setdefault(route.type.value, {"providers": {}})["providers"][route.name] = spec
    return doc, needed


def _placeholders(node: Any, prefix: str, needed: list[str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            var = f"{prefix}_{re.sub(r'[^A-Za-z0-9]', '_', str(k)).upper()}"
            if is_secret_key(str(k)) and v not in (None, ""):
                needed.append(var)
                out[k] = "${" + var + "}"
            else:
                out[k] = _placeholders(v, var, needed)
        return out
    if isinstance(node, list):
        return [_placeholders(v, f"{prefix}_{i}", needed) for i, v in enumerate(node)]
    if isinstance(node, str) and re.search(r"://[^/\s:@]+:[^@\s]+@", node):  # a DSN with a password
        var = f"{prefix}"
        needed.append(var)
        return "${" + var + "}"
    return node
