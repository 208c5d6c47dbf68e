"""``provider-registry add-provider`` (the serve_app/scaffold package), without Ray.

The generated tests are run for real, by pytest in a subprocess, once for the
whole module (a fixture): one provider of every type as generated, which must
pass, and one copy per interface method with that method's placeholder body
replaced by ``raise NotImplementedError``, which must fail. One pytest run
for ~100 generated files keeps this fast on two cores.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import inspect
import io
import os
import re
import select
import shutil
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from abc import abstractmethod
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import yaml

from providers.interfaces import interface_for
from providers.interfaces.embeddings import EmbeddingProvider
from providers.registry.config import load_config
from providers.types import ProviderType
from serve_app import scaffold
from serve_app.cli import main
from serve_app.scaffold import Request, ScaffoldError
from serve_app.scaffold.render import merged_config, render_module

REPO = Path(__file__).resolve().parents[2]
REPO_CONFIG = REPO / "config" / "providers.yaml"


def request_for(ptype: ProviderType, root: Path, tag: str, config_path: Path | None = None, **kw) -> Request:
    return Request(ptype=ptype, name=f"my-{ptype.value}", class_name=f"My{ptype.name.title().replace('_', '')}",
                   package_dir=Path(f"pkg_{tag}") / "custom", tests_dir=Path(f"tests_{tag}"),
                   config_path=config_path, root=root, **kw)


def todo_methods(source: str, class_name: str) -> dict[str, ast.AST]:
    """The class's methods whose body starts with a ``# TODO:`` comment."""
    lines = source.splitlines()
    cls = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == class_name)
    found = {}
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            head = "\n".join(lines[node.lineno - 1 : node.body[0].lineno - 1])
            if "# TODO:" in head:
                found[node.name] = node
    return found


def without_body(source: str, node: ast.AST) -> str:
    """``source`` with ``node``'s placeholder body replaced by ``raise NotImplementedError``
    (its signature and TODO comment kept)."""
    lines = source.splitlines()
    first = node.body[0]
    return "\n".join(lines[: first.lineno - 1] + [" " * first.col_offset + "raise NotImplementedError"]
                     + lines[node.end_lineno :]) + "\n"


def run_pytest(root: Path, targets: list[str]) -> dict[str, dict[str, int]]:
    """Run pytest on ``targets`` under ``root``; per test module: passed and failed counts."""
    report = root / "report.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(REPO)])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           f"--junitxml={report}", *targets], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert report.exists(), proc.stdout + proc.stderr
    counts: dict[str, dict[str, int]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        module = case.get("classname") or case.get("file") or "?"
        outcome = "failed" if case.find("failure") is not None or case.find("error") is not None else "passed"
        counts.setdefault(module, {"passed": 0, "failed": 0})[outcome] += 1
    counts["_output"] = proc.stdout[-4000:] + proc.stderr[-2000:]  # type: ignore[assignment]
    return counts


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Every type generated into one root (their entries in one copy of the repo's providers.yaml),
    plus one mutant per TODO method; all their tests run by one pytest subprocess."""
    root = tmp_path_factory.mktemp("scaffold")
    config = root / "providers.yaml"
    shutil.copy(REPO_CONFIG, config)
    originals, mutants = {}, {}
    for ptype in ProviderType:
        result, _ = scaffold.generate(request_for(ptype, root, ptype.value, config,
                                                  config_keys={"threshold": 0.5, "label": "x y"}), verify=False)
        originals[ptype] = result
        source = result.module_path.read_text()
        for i, method in enumerate(todo_methods(source, result.request.class_name)):
            mutant, _ = scaffold.generate(request_for(ptype, root, f"{ptype.value}_m{i}"), verify=False)
            text = mutant.module_path.read_text()
            node = todo_methods(text, mutant.request.class_name)[method]
            mutant.module_path.write_text(without_body(text, node))
            mutants[(ptype, method)] = mutant
    targets = [str(r.test_path.parent.relative_to(root)) for r in [*originals.values(), *mutants.values()]]
    counts = run_pytest(root, targets)
    return root, config, originals, mutants, counts


def module_key(result) -> str:
    return result.module_name.split(".")[0].replace("pkg_", "tests_", 1) + "." + result.test_path.stem


def test_generated_tests_pass_for_every_type(generated):
    _, _, originals, _, counts = generated
    for ptype, result in originals.items():
        got = counts.get(module_key(result))
        assert got, f"{ptype.value}: no tests ran\n{counts['_output']}"
        assert got["failed"] == 0 and got["passed"] >= 5, f"{ptype.value}: {got}\n{counts['_output']}"


def test_every_interface_method_has_a_todo_placeholder(generated):
    _, _, originals, _, _ = generated
    for ptype, result in originals.items():
        methods = set(todo_methods(result.module_path.read_text(), result.request.class_name))
        assert methods == set(interface_for(ptype).__abstractmethods__), ptype.value


def test_generated_tests_fail_when_any_placeholder_is_missing(generated):
    _, _, _, mutants, counts = generated
    missed = [f"{ptype.value}.{method}" for (ptype, method), result in mutants.items()
              if counts.get(module_key(result), {}).get("failed", 0) == 0]
    assert len(mutants) >= 80
    assert not missed, f"no generated test failed without: {missed}"


def test_generated_code_is_lint_clean(generated):
    api = pytest.importorskip("pyflakes.api")
    from pyflakes.reporter import Reporter

    _, _, originals, _, _ = generated
    for result in originals.values():
        for path in (result.module_path, result.test_path):
            out = io.StringIO()
            assert api.check(path.read_text(), str(path), Reporter(out, out)) == 0, out.getvalue()


def test_config_entries_land_in_their_sections_and_load(generated):
    _, config, originals, _, _ = generated
    cfg = load_config(config)  # the registry's own loader
    for ptype, result in originals.items():
        spec = cfg.group(ptype).providers[result.request.name]
        assert spec.class_path == result.class_path
        assert spec.config == result.config and spec.config["threshold"] == 0.5
        assert spec.deployment.num_cpus == 0.1
    # The repo's providers stay, and the original text (comments included) is all still there, in order.
    assert "minilm" in cfg.embeddings.providers and "memory.search" in cfg.tools.providers
    new_lines = iter(config.read_text().splitlines())
    assert all(line in new_lines for line in REPO_CONFIG.read_text().splitlines())


def test_generated_module_loads_through_the_allowlist(generated):
    """What `provider-registry check` does, once the package's prefix is allowlisted."""
    from providers.registry.loading import load_provider_class

    root, _, originals, _, _ = generated
    result = originals[ProviderType.RERANKER]
    sys.path.insert(0, str(root))
    try:
        with pytest.raises(Exception, match="allowed module prefixes"):
            load_provider_class(result.class_path, ProviderType.RERANKER, ["providers."])
        cls = load_provider_class(result.class_path, ProviderType.RERANKER, ["providers.", "pkg_rerankers."])
        assert cls.__name__ == result.request.class_name
    finally:
        sys.path.remove(str(root))


def same_signatures(cls: type, iface: type) -> list[str]:
    """Methods of ``iface`` that ``cls`` declares differently (parameters, annotations, defaults, async)."""
    return [name for name in sorted(iface.__abstractmethods__)
            if inspect.signature(getattr(cls, name)) != inspect.signature(getattr(iface, name))
            or inspect.iscoroutinefunction(getattr(cls, name)) != inspect.iscoroutinefunction(getattr(iface, name))]


def imported(root: Path, module: str):
    sys.path.insert(0, str(root))
    try:
        importlib.invalidate_caches()
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(root))


def test_generated_signatures_are_the_interfaces(generated):
    root, _, originals, _, _ = generated
    for ptype, result in originals.items():
        cls = getattr(imported(root, result.module_name), result.request.class_name)
        assert same_signatures(cls, interface_for(ptype)) == [], ptype.value


def declared(source: str, name: str) -> str:
    """How ``source`` declares method ``name``, layout aside: ``async def f(self, x: int=1)``."""
    node = next(n for n in ast.walk(ast.parse(source))
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name)
    return f"{'async def' if isinstance(node, ast.AsyncFunctionDef) else 'def'} {name}({ast.unparse(node.args)})"


class ChangedEmbeddingProvider(EmbeddingProvider):
    """EmbeddingProvider as it might change: a new keyword-only parameter whose annotation
    needs an import the templates never mention, a new default, and a getter turned async."""

    @abstractmethod
    async def embed_texts(self, texts: list[str], batch_size: int = 64, *,
                          scale: Decimal | None = None) -> list[np.ndarray]: ...

    @abstractmethod
    async def get_model_name(self) -> str: ...


class GrownEmbeddingProvider(EmbeddingProvider):
    @abstractmethod
    async def warm_up(self) -> None: ...


def test_rendering_follows_the_interface(tmp_path):
    """The same template rendered against a changed interface: the generated class declares
    the changed signatures (and imports what they name), and it still imports and subclasses."""
    request = request_for(ProviderType.EMBEDDING, tmp_path, "changed")
    config = merged_config(request)
    before = render_module(request, EmbeddingProvider, "t.py", config)
    after = render_module(request, ChangedEmbeddingProvider, "t.py", config)
    assert declared(before, "embed_texts") == "async def embed_texts(self, texts: list[str], batch_size: int=32)"
    assert declared(after, "embed_texts") == ("async def embed_texts(self, texts: list[str], batch_size: int=64, *, "
                                              "scale: Decimal | None=None)")
    assert declared(before, "get_model_name") == "def get_model_name(self)"
    assert declared(after, "get_model_name") == "async def get_model_name(self)"
    assert "from decimal import Decimal" in after.splitlines() and "Decimal" not in before
    package = tmp_path / "pkg_changed"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "my_embedding.py").write_text(after)
    cls = imported(tmp_path, "pkg_changed.my_embedding").MyEmbedding
    assert issubclass(cls, ChangedEmbeddingProvider) and not inspect.isabstract(cls)
    assert same_signatures(cls, ChangedEmbeddingProvider) == []
    assert same_signatures(cls, EmbeddingProvider) == ["embed_texts", "get_model_name"]


def test_a_template_behind_its_interface_fails_naming_the_method(tmp_path):
    request = request_for(ProviderType.EMBEDDING, tmp_path, "grown")
    with pytest.raises(ScaffoldError, match=r"embeddings/provider\.py-tpl.*warm_up.*GrownEmbeddingProvider"):
        render_module(request, GrownEmbeddingProvider, "t.py", merged_config(request))


def test_a_config_default_that_looks_like_a_token_is_kept_as_typed(tmp_path):
    request = request_for(ProviderType.TOOL, tmp_path, "token", config_keys={"label": "__CLASS__ and __IFACE__"})
    module = render_module(request, interface_for(ProviderType.TOOL), "t.py", merged_config(request))
    assert 'label: str = "__CLASS__ and __IFACE__"' in module


def test_every_template_file_ships_in_the_wheel():
    """pyproject's package-data globs cover every template: a file they miss would be absent
    from an installed wheel while every test here (run from the source tree) still passed."""
    tomllib = pytest.importorskip("tomllib")
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = REPO / "serve_app" / "scaffold"
    files = [p.relative_to(package).as_posix() for p in (package / "templates").rglob("*") if p.is_file()]
    assert len(files) == 2 + 2 * len(ProviderType) + 1
    assert [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs["serve_app.scaffold"])] == []


# -- appending to providers.yaml ----------------------------------------------------------------------

ENTRY = scaffold.entry_lines("new", "providers.custom.x.X", {"k": 1}, "providers/custom/x.py")
EXPECTED = scaffold.entry_spec("providers.custom.x.X", {"k": 1})


@pytest.mark.parametrize("text, section", [
    ("registry:\n  http_port: 8000\n", "rerankers"),  # no such section: appended at the end
    ("rerankers: {}\n", "rerankers"),
    ("rerankers:\n  providers: {}   # none yet\n", "rerankers"),
    ("rerankers:\n  providers:\n    old:\n      class: a.B\n\n# about tools\ntools:\n  providers: {}\n", "rerankers"),
    ("rerankers:\n    providers:\n        old:\n            class: a.B\n", "rerankers"),  # four spaces
    ("rerankers:\r\n  providers:\r\n    old:\r\n      class: a.B\r\n", "rerankers"),  # CRLF
    ("rerankers:\n  providers:\n    old:\n      class: a.B\n# old2:\n#   class: c.D\n    old3:\n      class: e.F\n",
     "rerankers"),  # a commented-out entry at column 0 inside the section
])
def test_append_entry_keeps_the_rest_of_the_file(text, section):
    new = scaffold.append_entry(text, section, ENTRY)
    before, after = yaml.safe_load(text) or {}, yaml.safe_load(new)
    assert after[section]["providers"]["new"] == EXPECTED
    after[section]["providers"].pop("new")
    before.setdefault(section, {})
    before[section] = before[section] or {}
    before[section]["providers"] = before[section].get("providers") or {}
    assert after == before
    kept = iter(new.splitlines())
    assert all(line in kept for line in text.splitlines() if not re.search(r":\s*\{\}", line))


def test_crlf_files_stay_crlf_and_comments_stay(tmp_path):
    config = tmp_path / "providers.yaml"
    scaffold.write_exact(config, "# top\r\nrerankers: {}  # none yet\r\n")
    result, _ = scaffold.generate(request_for(ProviderType.RERANKER, tmp_path, "crlf", config), verify=False)
    text = scaffold.read_exact(config)
    assert text.startswith("# top\r\nrerankers:  # none yet\r\n  providers:\r\n")
    assert "\n" not in text.replace("\r\n", "")
    assert load_config(config).rerankers.providers["my-rerankers"].class_path == result.class_path


def test_a_flow_style_section_is_refused_not_mangled():
    with pytest.raises(ScaffoldError, match="flow style"):
        scaffold.append_entry("rerankers: {providers: {old: {class: a.B}}}\n", "rerankers", ENTRY)


# -- the command line ---------------------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project root with its own providers.yaml; the CWD, as for an operator."""
    shutil.copy(REPO_CONFIG, tmp_path / "providers.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(*flags: str, package: str | None = None) -> int:
    package = package or f"p{uuid.uuid4().hex[:8]}"  # generated packages are imported: keep names unique
    return main(["add-provider", "--package-dir", f"{package}/custom", "--tests-dir", f"{package}_tests",
                 "--config", "providers.yaml", *flags])


def test_cli_writes_files_and_entry(project, capsys):
    assert cli("--type", "cache", "--name", "fast", "--config-key", "max_size=1000", package="shop") == 0
    out = capsys.readouterr().out
    assert "shop/custom/fast_cache.py" in out and "shop_tests/test_fast_cache.py" in out
    assert "allowed_module_prefixes" in out  # 'shop.' is not allowlisted: say what to add
    assert (project / "shop" / "custom" / "__init__.py").exists()
    spec = load_config(project / "providers.yaml").cache.providers["fast"]
    assert spec.class_path == "shop.custom.fast_cache.FastCache"
    assert spec.config == {"default_ttl_s": None, "max_size": 1000}


@pytest.mark.parametrize("flags, flag", [
    (["--name", "x"], "--type"),
    (["--type", "nonsense", "--name", "x"], "--type"),
    (["--type", "cache", "--name", "bad name"], "--name"),
    (["--type", "cache", "--name", "x", "--class-name", "1Bad"], "--class-name"),
    (["--type", "cache", "--name", "x", "--class-name", "class"], "--class-name"),
    (["--type", "cache", "--name", "x", "--config-key", "novalue"], "--config-key"),
    (["--type", "cache", "--name", "x", "--config-key", "json=1"], "--config-key"),  # shadows a pydantic method
    (["--type", "embeddings", "--name", "x", "--config-key", "dimension=abc"], "--config-key"),
    (["--type", "cache", "--name", "x", "--config-key", "a=1", "--config-key", "a=2"], "--config-key"),
    (["--type", "embeddings", "--name", "minilm"], "--name"),  # already in providers.yaml
    (["--type", "cache", "--name", "x", "--config", "missing.yaml"], "--config"),
])
def test_cli_errors_name_the_flag(project, capsys, flags, flag):
    before = (project / "providers.yaml").read_text()
    assert cli(*flags) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag}:"), err
    assert (project / "providers.yaml").read_text() == before
    assert not list(project.glob("p*/custom/*.py"))  # nothing written


def test_cli_refuses_a_package_the_import_system_resolves_elsewhere(project, capsys):
    # `providers` is this repository's package: files under another root's providers/ would never import.
    assert main(["add-provider", "--type", "cache", "--name", "x", "--config", "providers.yaml"]) == 2
    assert "error: --package-dir:" in capsys.readouterr().err


def test_cli_refuses_to_overwrite_without_force(project, capsys):
    assert cli("--type", "tools", "--name", "echo", "--no-config", package="kit") == 0
    module = project / "kit" / "custom" / "echo_tool.py"
    module.write_text("# edited by hand\n")
    assert cli("--type", "tools", "--name", "echo", "--no-config", package="kit") == 2
    assert "error: --force:" in capsys.readouterr().err and module.read_text() == "# edited by hand\n"
    assert cli("--type", "tools", "--name", "echo", "--no-config", "--force", package="kit2") == 0


def test_cli_force_rerun_keeps_the_same_config_entry(project, capsys):
    assert cli("--type", "tools", "--name", "echo", package="kit3") == 0
    text = (project / "providers.yaml").read_text()
    assert cli("--type", "tools", "--name", "echo", "--force", package="kit3") == 0
    assert "left it as it is" in capsys.readouterr().out
    assert (project / "providers.yaml").read_text() == text


def test_cli_restores_providers_yaml_when_the_loader_rejects_the_edit(project, capsys, monkeypatch):
    monkeypatch.delenv("SCAFFOLD_UNSET_VARIABLE", raising=False)
    before = (project / "providers.yaml").read_text()
    assert cli("--type", "cache", "--name", "x", "--config-key", "url=${SCAFFOLD_UNSET_VARIABLE}") == 1
    err = capsys.readouterr().err
    assert "SCAFFOLD_UNSET_VARIABLE" in err and "restored" in err
    assert (project / "providers.yaml").read_text() == before
    assert not list(project.glob("p*/custom/*.py"))


def test_prompts_answered_no_write_nothing(project, capsys):
    answers = iter(["graph_clients", "bolt", "", "", "n"])
    args = scaffold_args("--interactive", "--package-dir", "gc/custom", "--tests-dir", "gc_tests")
    assert scaffold.run(args, ask=lambda prompt: next(answers)) == 1
    assert "nothing written" in capsys.readouterr().err and not (project / "gc").exists()


def scaffold_args(*flags: str):
    import argparse

    parser = argparse.ArgumentParser()
    scaffold.add_arguments(parser)
    return parser.parse_args(["--config", "providers.yaml", *flags])


# -- a real terminal --------------------------------------------------------------------------------------

class Terminal:
    """A child process on a pseudo-terminal: what it prints is read, answers are typed."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
        os.close(slave)
        self.text, self.pos = "", 0

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        self.text += data.decode(errors="replace")
        return bool(data)

    def expect(self, wanted: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while wanted not in self.text[self.pos :]:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"never saw {wanted!r}; the terminal showed:\n{self.text}")
        self.pos = self.text.index(wanted, self.pos) + len(wanted)

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(0.2) and self.proc.poll() is None:
            pass
        try:
            return self.proc.wait(max(deadline - time.monotonic(), 1))
        finally:
            os.close(self.master)


def test_interactive_prompts_on_a_terminal(project):
    console_script = Path(sys.executable).parent / "provider-registry"
    argv = [str(console_script)] if console_script.exists() else [sys.executable, "-m", "serve_app"]
    term = Terminal(argv + ["add-provider", "--package-dir", "acme/custom", "--tests-dir", "acme_tests",
                            "--config", "providers.yaml"], project)
    try:
        term.expect("1) embeddings")
        term.expect("Type (1-8 or a name): ")
        term.type("bogus")
        term.expect("is not a provider type")
        term.expect("Type (1-8 or a name): ")  # asked again
        term.type("rerankers")
        term.expect("Provider name (its key in providers.yaml): ")
        term.type("similarity")  # taken in providers.yaml
        term.expect("already in providers.yaml")
        term.expect("Provider name (its key in providers.yaml): ")
        term.type("keyword-overlap")
        term.expect("Class name [KeywordOverlapReranker]: ")
        term.type("")  # the suggestion
        term.expect("key> ")
        term.type("max_candidates=lots")  # read by the placeholder: must be an int
        term.expect("must be int")
        term.expect("key> ")
        term.type("threshold=0.25")
        term.expect("key> ")
        term.type("")
        term.expect("--config-key threshold=0.25")  # the same command without prompts
        term.expect("[Y/n]: ")
        term.type("y")
        term.expect("wrote acme/custom/keyword_overlap_reranker.py")
        assert term.close() == 0, term.text
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    spec = load_config(project / "providers.yaml").rerankers.providers["keyword-overlap"]
    assert spec.class_path == "acme.custom.keyword_overlap_reranker.KeywordOverlapReranker"
    assert spec.config == {"max_candidates": 100, "threshold": 0.25}
    assert (project / "acme_tests" / "test_keyword_overlap_reranker.py").exists()
