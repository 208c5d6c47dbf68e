"""The template files under ``templates/``, read as package data and filled in.

Layout (as Django's ``app_template/*.py-tpl``, kept beside the generator):

* ``module.py-tpl``, ``test.py-tpl``: the generated module and test file every
  type shares;
* ``<type>/provider.py-tpl``, ``<type>/test.py-tpl``: one type's parts;
* ``health_todo.py-tpl``: the TODO every ``health_check`` starts with.

A file is split into sections by lines ``#% <name>`` (``imports``, ``source``,
``state``, ``methods``, ``helpers``, ``tests``). An ``imports`` section is
parsed as Python, so it may hold comments; the generator merges the sections'
imports with those the interface's signatures need.

In the text, ``__TOKEN__`` (capitals) marks what the generator fills in. A
token alone on its line is a block: it is replaced by whole lines, and by
nothing (the line goes) when the block is empty. Any other token is replaced
as text. Tokens are replaced with ``str.replace`` rather than ``str.format`` or
``string.Template``: the generated code is full of braces (dicts) and dollars
(Cypher parameters) that would need escaping.

An interface method's signature is never written in a template: a line
``    def <method>(...):`` stands for it, and `signatures` renders it from the
interface itself (``async`` included).
"""

from __future__ import annotations

import re
from importlib import resources

from serve_app.scaffold.model import EXIT_FAILED, ScaffoldError

_SECTION_RE = re.compile(r"^#% (\w+)[ \t]*$", re.MULTILINE)
TOKEN_RE = re.compile(r"__[A-Z][A-Z_]*__")


def read_text(relpath: str) -> str:
    """A template file's text; through importlib.resources, so it reads the same from an installed wheel."""
    return resources.files(__package__).joinpath("templates", *relpath.split("/")).read_text(encoding="utf-8")


def read_sections(relpath: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """``relpath``'s sections by name (blank lines around each removed); missing sections read as ""."""
    parts = _SECTION_RE.split(read_text(relpath))
    if parts[0].strip():
        raise _template_error(relpath, f"text before its first '#% <section>' line: {parts[0].strip()[:40]!r}")
    sections = dict.fromkeys(allowed, "")
    seen: set[str] = set()
    for name, body in zip(parts[1::2], parts[2::2]):
        if name not in allowed or name in seen:
            problem = "twice" if name in seen else f"unknown; sections are {', '.join(allowed)}"
            raise _template_error(relpath, f"section '#% {name}' is {problem}")
        seen.add(name)
        sections[name] = body.strip("\n")
    return sections


def fill_blocks(text: str, blocks: dict[str, list[str]]) -> str:
    """Replace each line that is exactly a block token with the block's lines."""
    lines: list[str] = []
    for line in text.split("\n"):
        lines.extend(blocks[line] if line in blocks else [line])
    return "\n".join(lines)


def fill_names(text: str, names: dict[str, str], relpath: str, keep: frozenset[str] = frozenset()) -> str:
    """Replace every token in one pass, so a value put in (an operator's config default
    reading ``__CLASS__``) is never itself replaced. Tokens in ``keep`` stay for a later
    `fill_blocks`; any other unknown token is a template typo, refused rather than written."""
    unknown = sorted({t for t in TOKEN_RE.findall(text) if t not in names and t not in keep})
    if unknown:
        raise _template_error(relpath, f"unknown tokens {unknown}")
    return TOKEN_RE.sub(lambda m: names.get(m.group(), m.group()), text)


def lines_of(text: str, lead: int = 0) -> list[str]:
    """A section as a block: its lines after ``lead`` blank lines; empty text, no lines at all."""
    return [""] * lead + text.split("\n") if text else []


def _template_error(relpath: str, problem: str) -> ScaffoldError:
    return ScaffoldError(f"the template serve_app/scaffold/templates/{relpath} is broken: {problem}",
                         code=EXIT_FAILED)
