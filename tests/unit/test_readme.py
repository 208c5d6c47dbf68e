"""The manual's providers.yaml reference (docs/configuration.md) is the schema's, as of now."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from providers.registry.config import json_schema
from serve_app import config_reference
from serve_app.config_reference import END, REGENERATE, START, TARGET, render, replace_block

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / TARGET


def generated_block(text: str) -> str:
    start, end = text.index(START) + len(START), text.index(END)
    return text[start:end]


def test_the_reference_matches_the_schema():
    text = REFERENCE.read_text(encoding="utf-8")
    assert START in text and END in text, f"{TARGET} lost its {START} / {END} markers"
    expected = generated_block(replace_block(text, render(json_schema())))
    assert generated_block(text) == expected, (
        f"{TARGET}'s providers.yaml reference is stale; regenerate it with `{REGENERATE}`")


def test_make_readme_writes_the_checked_file():
    # The Makefile target and this test must name the same file, or a
    # regenerated reference would land where nothing checks it.
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nreadme:", 1)[1].split("\n\n", 1)[0]
    assert f"serve_app.config_reference --write {TARGET}" in recipe, recipe


def test_the_readme_has_no_stale_copy():
    # The reference moved out of README.md; a second copy there would go stale unchecked.
    assert START not in (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_key_has_a_description():
    # A key without one would show as an empty cell: document it on its field.
    schema = json_schema()
    missing = [f"{name}.{key}" for name, node in [("(top level)", schema), *schema["$defs"].items()]
               for key, prop in node.get("properties", {}).items()
               if not prop.get("description")]
    assert not missing, f"keys without a description in the schema: {missing}"


def test_every_key_of_every_section_is_rendered():
    schema = json_schema()
    text = render(schema)
    for node in [schema, *schema["$defs"].values()]:
        for key in node.get("properties", {}):
            assert f"| `{key}` |" in text, key


def test_types_bounds_defaults_and_enums():
    schema = {
        "title": "t", "description": "Top.",
        "properties": {
            "mode": {"enum": ["a", "b"], "default": "a", "description": "Pick | one."},
            "n": {"type": "integer", "minimum": 1, "maximum": 9, "description": "Count."},
            "opt": {"anyOf": [{"$ref": "#/$defs/Sub"}, {"type": "null"}], "default": None, "description": "Maybe."},
            "many": {"type": "object", "additionalProperties": {"$ref": "#/$defs/Item"}, "default": {},
                     "description": "By name."},
        },
        "required": ["n"],
        "$defs": {"Sub": {"type": "object", "description": "A sub-object.",
                          "properties": {"x": {"type": "array", "items": {"type": "string"}, "default": [],
                                               "description": "Xs."}}},
                  "Item": {"type": "object", "properties": {"y": {"type": "boolean", "description": "Y."}}}},
    }
    text = render(schema)
    assert '| `mode` | one of `"a"`, `"b"` | `"a"` | Pick \\| one. |' in text
    assert "| `n` | integer ≥ 1, ≤ 9 | required | Count. |" in text
    assert "| `opt` | object (`opt`) or null | `null` | Maybe. |" in text
    assert "| `many` | map of string to object (`many.<name>`) | `{}` | By name. |" in text
    assert "#### `opt`\n\nA sub-object." in text and "#### `many.<name>`" in text
    assert "| `x` | list of string | `[]` | Xs. |" in text
    assert "| `y` | boolean |  | Y. |" in text  # no default, not required: an empty cell


def test_write_replaces_only_between_the_markers(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{START}\nstale text\n{END}\nafter\n", encoding="utf-8")
    assert config_reference.main(["--check", str(readme)]) == 1
    assert REGENERATE in capsys.readouterr().err
    assert config_reference.main(["--write", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith(f"before\n{START}\n<!-- Generated") and text.endswith(f"\n\n{END}\nafter\n")
    assert "stale text" not in text and "#### `registry.router`" in text
    assert config_reference.main(["--check", str(readme)]) == 0


def test_missing_markers_are_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="config-reference:start"):
        config_reference.main(["--write", str(readme)])


def test_no_ray_import():
    # `make readme` must stay quick and work without a cluster.
    import subprocess
    import sys

    code = "import sys, serve_app.config_reference as c; c.reference(); print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_keys_sharing_a_definition_share_one_section():
    schema = {"properties": {k: {"$ref": "#/$defs/Group", "description": k} for k in ("a", "b")},
              "$defs": {"Group": {"type": "object", "properties": {"z": {"type": "string", "description": "Z."}}}}}
    text = render(schema)
    assert "| `a` | object (`<type>`) |" in text and "| `b` | object (`<type>`) |" in text
    assert text.count("#### `<type>`") == 1


# -- links of README.md and docs/*.md ------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    found: set[str] = set()
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.+)", line)):
            base = slug(match.group(1))
            name, n = base, 0
            while name in found:  # GitHub numbers repeated headings
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def test_slugs_are_githubs():
    assert slug("On a cluster: `serve deploy`") == "on-a-cluster-serve-deploy"
    assert slug("The seed's Python API") == "the-seeds-python-api"
    assert slug("`<type>.providers.<name>`") == "typeprovidersname"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_reach_a_file_and_heading(page: Path):
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, mailto: ...: not ours to check
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists():
            broken.append(f"{target}: no file {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert not broken, broken
