"""Every Python block of README.md and docs/*.md, run against the session's registry.

The README and the manual in docs/ are the contract users copy from;
running their examples here means a renamed method, provider or return
shape fails a test instead of leaving the documentation quietly wrong. The
blocks of one file run in document order and share one namespace, as a
reader pasting them into one session would (``embedder`` from a page's
first block is used later on that page); each file has a namespace of its
own, so a page cannot lean on names another page defined. A block marked
with ``<!-- not-run: reason -->`` on the line before its fence is skipped
with that reason.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# README first (the front door), then the manual's pages in name order.
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
# The examples speak to `make serve`'s address; the session serves on a free
# port, so that address (and only it) is replaced by the session's.
README_ADDRESS = "http://127.0.0.1:8000"
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.+?)\s*-->$")


@dataclass(frozen=True)
class Block:
    path: Path  # the Markdown file
    line: int  # line of the block's first code line in that file
    code: str
    not_run: str | None  # the reason, for a block marked not to run

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:line{self.line}"


def python_blocks(text: str, path: Path = README) -> list[Block]:
    """The ```python blocks of ``text``, with their line numbers and markers."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```python":
            i += 1
            continue
        end = lines.index("```", i + 1)  # an unclosed block is a broken page: let it raise
        blocks.append(Block(path, i + 2, "\n".join(lines[i + 1:end]) + "\n", _marker_before(lines, i)))
        i = end + 1
    return blocks


def _marker_before(lines: list[str], fence: int) -> str | None:
    """The not-run reason on the nearest non-blank line above the fence, if any."""
    for line in reversed(lines[:fence]):
        if line.strip():
            match = NOT_RUN.match(line.strip())
            return match.group(1) if match else None
    return None


BLOCKS = [b for path in DOCUMENTS for b in python_blocks(path.read_text(encoding="utf-8"), path)]
_namespaces: dict[Path, dict] = {}
_attempted: set[tuple[Path, int]] = set()


def compile_block(block: Block, address: str):
    """Code object whose tracebacks name the Markdown file and the block's real lines."""
    source = "\n" * (block.line - 1) + block.code.replace(README_ADDRESS, address)
    return compile(source, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


async def run_block(block: Block, address: str) -> None:
    _attempted.add((block.path, block.line))
    code = compile_block(block, address)
    namespace = _namespaces.setdefault(block.path, {"__name__": block.path.stem.replace("-", "_")})
    # With top-level await the code object is a coroutine function body:
    # eval returns the coroutine, which must run in this test's event loop
    # (the session loop the registry client's handles were made in).
    result = eval(code, namespace)
    if code.co_flags & inspect.CO_COROUTINE:
        await result


def test_the_documentation_has_runnable_examples():
    # Guards the parser and the file list: an edit that hid every block, or
    # a docs/ the glob no longer finds, would pass vacuously.
    runnable = [b for b in BLOCKS if b.not_run is None]
    assert len(DOCUMENTS) > 1, "no docs/*.md found"
    assert sum(b.path == README for b in runnable) >= 2, [b.name for b in BLOCKS]
    assert len(runnable) >= 8, [b.name for b in BLOCKS]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_fence_is_one_the_runner_reads(path: Path):
    # A ```py or ```python3 fence would be skipped without a word.
    fences = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
              if line.strip().startswith("```py")]
    assert set(fences) <= {"```python"}, fences


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
async def test_readme_example(registry, block: Block):
    if block.not_run:
        pytest.skip(f"{block.name} not run: {block.not_run}")
    # Run alone (-k "python-api.md and line84"), a block still gets the names
    # earlier blocks of its file define; in a full run every earlier block
    # was attempted already.
    for earlier in BLOCKS:
        if (earlier.path == block.path and earlier.line < block.line and earlier.not_run is None
                and (earlier.path, earlier.line) not in _attempted):
            await run_block(earlier, registry["http"])
    await run_block(block, registry["http"])
