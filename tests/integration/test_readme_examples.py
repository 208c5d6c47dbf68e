"""Every Python block of README.md, run against the session's registry.

The README is the contract users copy from; running its examples here means
a renamed method, provider or return shape fails a test instead of leaving
the README quietly wrong. Blocks run in document order and share one
namespace, as a reader pasting them into one session would (``embedder``
from the first block is used later). A block the README marks with
``<!-- not-run: reason -->`` on the line before its fence is skipped with
that reason.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
# The README's examples speak to `make serve`'s address; the session serves on
# a free port, so that address (and only it) is replaced by the session's.
README_ADDRESS = "http://127.0.0.1:8000"
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.+?)\s*-->$")


@dataclass(frozen=True)
class Block:
    line: int  # README line of the block's first code line
    code: str
    not_run: str | None  # the reason, for a block marked not to run


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of ``text``, with their line numbers and markers."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```python":
            i += 1
            continue
        end = lines.index("```", i + 1)  # an unclosed block is a broken README: let it raise
        blocks.append(Block(i + 2, "\n".join(lines[i + 1:end]) + "\n", _marker_before(lines, i)))
        i = end + 1
    return blocks


def _marker_before(lines: list[str], fence: int) -> str | None:
    """The not-run reason on the nearest non-blank line above the fence, if any."""
    for line in reversed(lines[:fence]):
        if line.strip():
            match = NOT_RUN.match(line.strip())
            return match.group(1) if match else None
    return None


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))
_namespace: dict = {"__name__": "readme"}
_attempted: set[int] = set()


def compile_block(block: Block, address: str):
    """Code object whose tracebacks name README.md and the block's real lines."""
    source = "\n" * (block.line - 1) + block.code.replace(README_ADDRESS, address)
    return compile(source, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


async def run_block(block: Block, address: str) -> None:
    _attempted.add(block.line)
    code = compile_block(block, address)
    # With top-level await the code object is a coroutine function body:
    # eval returns the coroutine, which must run in this test's event loop
    # (the session loop the registry client's handles were made in).
    result = eval(code, _namespace)
    if code.co_flags & inspect.CO_COROUTINE:
        await result


def test_the_readme_has_runnable_examples():
    # Guards the parser: a README edit that hid every block would pass vacuously.
    assert sum(b.not_run is None for b in BLOCKS) >= 5, [b.line for b in BLOCKS]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"line{b.line}" for b in BLOCKS])
async def test_readme_example(registry, block: Block):
    if block.not_run:
        pytest.skip(f"README.md:{block.line} not run: {block.not_run}")
    # Run alone (-k line120), a block still gets the names earlier blocks
    # define; in a full run every earlier block was attempted already.
    for earlier in BLOCKS:
        if earlier.line < block.line and earlier.not_run is None and earlier.line not in _attempted:
            await run_block(earlier, registry["http"])
    await run_block(block, registry["http"])
