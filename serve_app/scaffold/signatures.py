"""Method signatures rendered from the interface itself, so an interface change reaches
the generated code by construction rather than by someone remembering a template.

A template writes ``    def <method>(...):`` where an interface method goes.
`render_signatures` replaces each such line with the method's signature from
``inspect.signature`` (parameter kinds, annotations, defaults and ``async``, as
the interface declares them) and returns the import lines the annotations need,
resolved in the interface module's namespace.

The interfaces use ``from __future__ import annotations``, so every annotation
is the interface's own source text (``list[np.ndarray]``); rendering it needs
no knowledge of the types and keeps the interface's spelling.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import json
import math
import re
import sys
from typing import Any

from serve_app.scaffold.model import EXIT_FAILED, ScaffoldError

# A signature longer than this is written one parameter a line, as the interfaces do.
LINE_LIMIT = 110
_MARKER_RE = re.compile(r"^(?P<indent> +)def (?P<name>\w+)\(\.\.\.\):$")
_PLAIN_DEFAULTS = (str, int, float, bool, type(None))


def render_signatures(text: str, iface: type, where: str) -> tuple[str, list[str]]:
    """``text`` with every marker replaced by ``iface``'s signature; and the imports they need.

    Every abstract method of ``iface`` must have a marker, and every marker must name a
    method of ``iface``: a template that lags its interface fails here, naming the method.
    """
    lines, imports, seen = [], [], set()
    for line in text.split("\n"):
        marker = _MARKER_RE.match(line)
        if marker is None:
            lines.append(line)
            continue
        name = marker["name"]
        func = getattr(iface, name, None)
        if not inspect.isfunction(func):
            raise _error(where, f"'def {name}(...)' names no method of {_qualname(iface)}")
        seen.add(name)
        lines += signature_lines(func, name, marker["indent"], f"{_qualname(iface)}.{name}")
        imports += annotation_imports(func, f"{_qualname(iface)}.{name}")
    missing = sorted(set(getattr(iface, "__abstractmethods__", ())) - seen)
    if missing:
        raise _error(where, f"no 'def <method>(...):' line for {', '.join(missing)} of {_qualname(iface)}; "
                            "add one with a working placeholder body and a '# TODO:'")
    return "\n".join(lines), imports


def signature_lines(func: Any, name: str, indent: str, what: str) -> list[str]:
    """``func``'s ``def`` line(s): on one line when it fits in `LINE_LIMIT`, else one parameter a line."""
    sig = inspect.signature(func)
    params = _parameter_texts(sig, what)
    ret = "" if sig.return_annotation is sig.empty else f" -> {_annotation(sig.return_annotation, what)}"
    head = f"{indent}{'async ' if inspect.iscoroutinefunction(func) else ''}def {name}("
    one_line = f"{head}{', '.join(params)}){ret}:"
    if len(one_line) <= LINE_LIMIT:
        return [one_line]
    return [head, *(f"{indent}    {p}," for p in params), f"{indent}){ret}:"]


def _parameter_texts(sig: inspect.Signature, what: str) -> list[str]:
    """Each parameter as source, with the ``/`` and ``*`` separators its kind implies."""
    kinds = inspect.Parameter
    texts: list[str] = []
    star_written = False
    params = list(sig.parameters.values())
    for i, param in enumerate(params):
        if param.kind is kinds.KEYWORD_ONLY and not star_written:
            texts.append("*")
        star_written |= param.kind in (kinds.KEYWORD_ONLY, kinds.VAR_POSITIONAL)
        texts.append(_parameter_text(param, what))
        last_positional_only = i + 1 == len(params) or params[i + 1].kind is not kinds.POSITIONAL_ONLY
        if param.kind is kinds.POSITIONAL_ONLY and last_positional_only:
            texts.append("/")
    return texts


def _parameter_text(param: inspect.Parameter, what: str) -> str:
    prefix = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(param.kind, "")
    text = prefix + param.name
    annotated = param.annotation is not param.empty
    if annotated:
        text += f": {_annotation(param.annotation, what)}"
    if param.default is not param.empty:
        text += (" = " if annotated else "=") + _default(param, what)
    return text


def _annotation(annotation: Any, what: str) -> str:
    if not isinstance(annotation, str):
        # An evaluated annotation has lost its source text (np.ndarray reads back as numpy.ndarray).
        raise ScaffoldError(f"{what} has an evaluated annotation {annotation!r}: its module needs "
                            "'from __future__ import annotations' for the scaffold to copy it", code=EXIT_FAILED)
    return annotation


def _default(param: inspect.Parameter, what: str) -> str:
    value = param.default
    if not isinstance(value, _PLAIN_DEFAULTS) or (isinstance(value, float) and not math.isfinite(value)):
        raise ScaffoldError(f"{what}: the default of {param.name!r} ({value!r}) is not a plain literal "
                            "the scaffold can copy; use None and fill it in the body", code=EXIT_FAILED)
    # repr, except that strings take the project's double quotes (a JSON string is a Python literal).
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def annotation_imports(func: Any, what: str) -> list[str]:
    """Import lines for the names ``func``'s annotations use, found where the annotations
    would be evaluated: the namespace of the module that defines ``func``."""
    sig = inspect.signature(func)
    texts = [p.annotation for p in sig.parameters.values() if p.annotation is not p.empty]
    texts += [] if sig.return_annotation is sig.empty else [sig.return_annotation]
    names = {node.id for text in texts if isinstance(text, str)
             for node in ast.walk(ast.parse(text, mode="eval")) if isinstance(node, ast.Name)}
    namespace, home = func.__globals__, func.__module__
    lines = []
    for name in sorted(names):
        if name in namespace:
            lines.append(import_of(namespace[name], name, home))
        elif not hasattr(builtins, name):
            raise ScaffoldError(f"{what}'s annotations use {name!r}, which {home} does not define when run "
                                "(imported only under TYPE_CHECKING?); the generated module could not import it",
                                code=EXIT_FAILED)
    return lines


def import_of(obj: Any, name: str, home: str) -> str:
    """The import line binding ``name`` to ``obj``: from the module that defines it where that module
    has it under this name (``from typing import Any``), else from ``home``, the module it was found in."""
    if inspect.ismodule(obj):
        return f"import {obj.__name__}" if obj.__name__ == name else f"import {obj.__name__} as {name}"
    owner = getattr(obj, "__module__", None)
    if owner and getattr(sys.modules.get(owner), name, None) is obj:
        return f"from {owner} import {name}"
    return f"from {home} import {name}"


def _qualname(iface: type) -> str:
    return f"{iface.__module__}.{iface.__qualname__}"


def _error(where: str, problem: str) -> ScaffoldError:
    return ScaffoldError(f"the template serve_app/scaffold/templates/{where} does not match its interface: "
                         f"{problem}", code=EXIT_FAILED)
