"""serve_app/ingest.py: reading documents from JSONL, CSV and plain text (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve_app.ingest import IngestError, read_documents


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_documents_keep_their_fields_and_line_numbers(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"id": "a", "content": "x", "metadata": {"k": 1}}\n\n{"content": "ü ✓"}\n')
    assert list(read_documents(path, None)) == [(1, {"id": "a", "content": "x", "metadata": {"k": 1}}),
                                                (3, {"content": "ü ✓"})]
    assert [n for n, _ in read_documents(path, None, start_line=2)] == [3]


@pytest.mark.parametrize(("text", "says"), [("{not json}\n", "d.jsonl:1: not JSON"),
                                            ('{"content": "ok"}\n[1, 2]\n', "d.jsonl:2: must be a JSON object")])
def test_bad_jsonl_lines_name_file_and_line(tmp_path, text, says):
    with pytest.raises(IngestError, match=says):
        list(read_documents(write(tmp_path, "d.jsonl", text), None))


def test_csv_text_column_id_and_metadata(tmp_path):
    path = write(tmp_path, "d.csv", 'id,body,lang,empty\nr1,"hello, world",en,\nr2,bonjour,fr,\n')
    assert list(read_documents(path, None, text_column="body")) == [
        (2, {"content": "hello, world", "id": "r1", "metadata": {"lang": "en"}}),
        (3, {"content": "bonjour", "id": "r2", "metadata": {"lang": "fr"}})]
    with pytest.raises(IngestError, match="no 'content' column"):
        list(read_documents(path, None))


def test_plain_text_is_one_document_per_line(tmp_path):
    path = write(tmp_path, "notes.txt", "first\r\n\nsecond\n")
    assert list(read_documents(path, None)) == [(1, {"content": "first"}), (3, {"content": "second"})]
    assert list(read_documents(path, "jsonl", start_line=99)) == []
