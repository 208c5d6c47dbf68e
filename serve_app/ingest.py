"""``provider-registry ingest STORE FILE``: bulk-load documents into a vector
store over HTTP, in batches, with a progress bar.

Input, by file suffix (or ``--format``):

* ``.jsonl``: one JSON object per line with ``content`` and optionally ``id``,
  ``metadata``, ``embedding``, ``created_at`` (the fields of
  ``POST /v1/vector_stores/{name}/documents``);
* ``.csv``: a header row; ``content`` (or the column named by ``--text-column``)
  is the text, ``id`` the id when present, every other column goes into
  ``metadata``;
* anything else: one document per non-empty line.

Loses nothing quietly: the first refused batch stops the load and says which
input lines it held and why; every earlier batch is stored. Rerunning with
``--start-line`` resumes, and since ids make writes upserts, a rerun of
stored lines is harmless when the input gives ids.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class IngestError(Exception):
    """A line that is not a document, or a batch the registry refused."""


def read_documents(path: Path, fmt: str | None, text_column: str = "content",
                   start_line: int = 1) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, document) for every document from ``start_line`` on."""
    fmt = fmt or {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}.get(path.suffix.lower(), "lines")
    with path.open(encoding="utf-8", newline="") as f:
        if fmt == "csv":
            reader = csv.DictReader(f)
            if not reader.fieldnames or text_column not in reader.fieldnames:
                raise IngestError(f"{path}: the CSV header has no {text_column!r} column (--text-column)")
            for row in reader:
                line = reader.line_num
                if line < start_line:
                    continue
                doc: dict[str, Any] = {"content": row.pop(text_column) or ""}
                if row.get("id"):
                    doc["id"] = row.pop("id")
                doc["metadata"] = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
                yield line, doc
            return
        for line, text in enumerate(f, 1):
            if line < start_line or not text.strip():
                continue
            if fmt == "lines":
                yield line, {"content": text.rstrip("\r\n")}
                continue
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise IngestError(f"{path}:{line}: not JSON ({exc.msg})") from None
            if not isinstance(doc, dict):
                raise IngestError(f"{path}:{line}: must be a JSON object, got {type(doc).__name__}")
            yield line, doc


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def ingest(url: str, store: str, path: Path, fmt: str | None = None, batch_size: int = 256,
           text_column: str = "content", start_line: int = 1, progress: bool = True) -> dict[str, Any]:
    """Post the documents of ``path`` to ``store`` in batches; a summary dict.

    Raises IngestError for a bad line or a refused batch (after the batches before it were stored).
    """
    import httpx
    from tqdm import tqdm

    endpoint = f"{url.rstrip('/')}/v1/vector_stores/{store}/documents"
    stored, first_line, batch, lines = 0, None, [], []
    start = time.monotonic()
    bar = tqdm(total=count_lines(path), initial=start_line - 1, unit="line", desc=f"ingest {store}",
               disable=not progress, file=sys.stderr)

    def flush(client: httpx.Client) -> None:
        nonlocal stored
        r = client.post(endpoint, json={"documents": batch})
        if not r.is_success:
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text[:300]
            raise IngestError(f"lines {lines[0]}-{lines[-1]} refused ({r.status_code}): {message}; "
                              f"{stored} documents before them are stored (resume with --start-line {lines[0]})")
        stored += len(batch)
        bar.update(lines[-1] - bar.n)
        batch.clear()
        lines.clear()

    try:
        with httpx.Client(timeout=900) as client:
            for line, doc in read_documents(path, fmt, text_column, start_line):
                first_line = first_line or line
                batch.append(doc)
                lines.append(line)
                if len(batch) >= batch_size:
                    flush(client)
            if batch:
                flush(client)
    finally:
        bar.close()
    seconds = time.monotonic() - start
    return {"store": store, "stored": stored, "first_line": first_line, "seconds": round(seconds, 2),
            "docs_per_s": round(stored / seconds, 1) if seconds > 0 else None}
