"""Where exported graphs are kept, what their key is, and how one is published atomically.

An entry is a directory ``<root>/<key>/`` holding ``model.onnx`` and
``export.json`` (what made it). The key names the model (its directory's name
and a digest of its files, so a retrained model in the same place is a new
entry), the graph (embeddings or scores), the quantization, and the exporter
(torch's version and this module's format number): change any and the entry
is another one, never a stale one.

The digest of a local model is taken from its files (`files_digest`), not
from the loaded weights, so the embedder's torch-free warm path
(`light_text`) finds the entry the torch path exported without loading the
model; a model from a hub (no directory here) keeps the digest of its loaded
tensors (`weights_digest`).

The root is, in order: the ``export_cache_dir`` the config names; beside the
model's own directory (``<model dir>/../onnx-exports``; for the packaged
MiniLM that is inside site-packages, next to its data); and where that is not
writable (a read-only install), ``$XDG_CACHE_HOME/provider-registry/exports``
(``~/.cache/...``). A model from a hub, not a local directory, goes to the
last.

Publishing: the exporter writes into a temporary directory in the same root
and renames it to the key in one ``os.rename``. Replicas that export at once
(several starting together) each write their own temporary directory; the
first rename wins, a later one fails because the key exists, and the loser
deletes its copy and uses the winner's. A reader therefore sees a complete
entry or none.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# Raise when what is written changes (graph inputs, the wrapper, the files) or how the key is made: old
# entries are then ignored (not deleted). 2: the digest of a local model is of its files (files_digest), and
# export.json records the light tokenizer's check (light_text.verify).
FORMAT_VERSION = 2
# What files_digest reads of each module directory: weights, configs, tokenizer files, a model's own code.
# Not READMEs, and not the onnx/ or openvino/ subdirectories hub repositories often carry (hundreds of MB).
DIGEST_SUFFIXES = (".json", ".txt", ".safetensors", ".bin", ".model", ".py")
GRAPH_FILE = "model.onnx"
META_FILE = "export.json"
ROOT_BESIDE_MODEL = "onnx-exports"


def user_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "provider-registry" / "exports"


def _writable_dir(path: Path) -> bool:
    """Whether files can be created in ``path`` (made if missing). Tried, not guessed from
    ``os.access``: root passes ``os.access`` on a read-only mount."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=".probe-", dir=path)
        os.rmdir(probe)
        return True
    except OSError:
        return False


def cache_root(model_dir: str | None, override: str | None) -> Path:
    """The directory the entries of this model live in (see the module docstring)."""
    if override:
        root = Path(override).expanduser()
        if not _writable_dir(root):
            raise OSError(f"export_cache_dir {str(root)!r} is not a writable directory")
        return root
    if model_dir and os.path.isdir(model_dir):
        beside = Path(model_dir).resolve().parent / ROOT_BESIDE_MODEL
        if _writable_dir(beside):
            return beside
    root = user_cache_root()
    if not _writable_dir(root):
        raise OSError(f"neither beside the model nor {str(root)!r} is writable; set export_cache_dir")
    return root


def weights_digest(tensors: Iterable[tuple[str, Any]]) -> str:
    """blake2b of every named tensor's bytes (a torch state dict's items): 0.1 s for MiniLM's 90 MB."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in tensors:
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def files_digest(model_dir: str | Path) -> str:
    """blake2b of a model directory's files that make the graph and its tokenization: in the directory
    and in each module directory of ``modules.json`` (Pooling's config, a Dense layer's weights), those
    ending in DIGEST_SUFFIXES, each with its relative name. Measured on MiniLM (91 MB, 2 busy cores):
    0.2 s, against 0.1 s for the state dict it replaces, which needed torch and the loaded model."""
    from providers.inference_backends.light_text import module_dirs

    root = Path(model_dir)
    h = hashlib.blake2b(digest_size=16)
    for directory in module_dirs(root):
        for path in sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith(DIGEST_SUFFIXES)):
            h.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0".encode())
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):  # streamed: a whole weights file in memory would raise the peak RSS
                    h.update(chunk)
    return h.hexdigest()


def entry_key(label: str, digest: str, graph: str, quantize: str, exporter: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._")[:60] or "model"
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", exporter)
    return f"{safe}-{digest[:16]}-{graph}-{quantize}-{tag}-f{FORMAT_VERSION}"


def find(root: Path, key: str) -> Path | None:
    """The published entry's graph file, or None."""
    graph = root / key / GRAPH_FILE
    return graph if (root / key / META_FILE).is_file() and graph.is_file() else None


def read_meta(graph: Path) -> dict[str, Any]:
    """The ``export.json`` beside a published graph."""
    return json.loads((graph.parent / META_FILE).read_text(encoding="utf-8"))


def publish(root: Path, key: str, write: Callable[[Path], dict]) -> tuple[Path, bool]:
    """The entry's graph file, written by ``write(tmp_dir)`` (which returns the metadata to
    record) unless it is there already. Returns (graph path, whether this call wrote it)."""
    found = find(root, key)
    if found:
        return found, False
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:40]}-", dir=root))
    try:
        meta = write(tmp)
        (tmp / META_FILE).write_text(json.dumps({"key": key, "format": FORMAT_VERSION, **meta}, indent=1))
        try:
            os.rename(tmp, root / key)  # atomic on one filesystem; fails if the key exists
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not find(root, key):
                raise
            return root / key / GRAPH_FILE, False  # another exporter won the race: use its entry
        return root / key / GRAPH_FILE, True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
