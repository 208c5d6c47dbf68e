"""The embedder's torch-free warm path (providers/inference_backends/light_text.py) on the packaged MiniLM.

A cold cache exports with torch; the next load finds that entry from the
model's files alone and serves the vectors the torch-loaded exported path
serves, with the same report; a fresh process doing it never imports torch,
transformers or sentence-transformers. What the light path cannot reproduce
sends the provider back to torch, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from providers.embeddings.sentence_transformers import SentenceTransformerProvider, packaged_model_path
from providers.inference_backends import export_cache
from providers.inference_backends.light_text import Unavailable, read_sentence_model

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    "The cat sits on the mat.",
    "",  # [CLS] [SEP] only
    " ",
    "  Héllo Wörld, naïve café — ÇA VA? 日本語のテキスト 🙂  ",
    " ".join(f"token{i} and more words" for i in range(200)),  # ~1,400 word pieces: truncated at 256
    "Quarterly revenue grew by twelve percent.",
]
# What differs by design between the two loads of one cached graph.
REPORT_VARIES = {"light_path", "light_path_reason", "load_s", "response_time"}


async def provider(**config: Any) -> SentenceTransformerProvider:
    p = SentenceTransformerProvider()
    await p.initialize({"device": "cpu", "num_threads": 2, **config})
    return p


@pytest_asyncio.fixture(scope="module")
async def warm_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A cache this module exports into (cold: torch), and what that first load reported."""
    cache = str(tmp_path_factory.mktemp("light-exports"))
    cold = await provider(backend="onnx", export_cache_dir=cache)
    try:
        return {"dir": cache, "report": await cold.health_check(), "vectors": cold.encode(TEXTS)}
    finally:
        await cold.close()


def test_a_cold_cache_exports_with_torch_and_says_so(warm_cache: dict[str, Any]) -> None:
    report = warm_cache["report"]
    assert report["status"] == "healthy" and report["exported_now"] is True
    assert report["light_path"] is False and "not in the export cache" in report["light_path_reason"]
    meta = export_cache.read_meta(Path(report["graph"]))
    assert meta["format"] == export_cache.FORMAT_VERSION == 2
    assert meta["light"]["tokenizer"] == "same" and meta["light"]["dimension"] == 384, meta["light"]


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
async def test_light_path_serves_the_torch_loaded_vectors(backend: str, warm_cache: dict[str, Any]) -> None:
    light = await provider(backend=backend, export_cache_dir=warm_cache["dir"])
    heavy = await provider(backend=backend, export_cache_dir=warm_cache["dir"], light_load=False)
    try:
        assert light.model is None and heavy.model is not None  # the light one never loaded torch's model
        got, want = light.encode(TEXTS), heavy.encode(TEXTS)
        small_batches = light.encode(TEXTS, batch_size=2)  # other padding: the same vectors
        query = await light.embed_query(TEXTS[0])
        light_report, heavy_report = await light.health_check(), await heavy.health_check()
    finally:
        await light.close()
        await heavy.close()
    diff = float(np.abs(got - want).max())
    print(f"{backend}: light vs torch-loaded path, max |diff| {diff:.2e} over {len(TEXTS)} texts")
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    assert diff <= 1e-6  # one graph, one runtime: only the tokenizer differs, and it must not
    assert float(np.abs(small_batches - got).max()) <= 1e-5
    np.testing.assert_allclose(query, got[0], atol=1e-6)
    if backend == "onnx":  # the same runtime as the cold export's own vectors
        assert float(np.abs(got - warm_cache["vectors"]).max()) <= 1e-6
    assert light_report["light_path"] is True and "light_path_reason" not in light_report
    assert heavy_report["light_path"] is False and heavy_report["light_path_reason"] == "light_load: false"
    assert light_report["exported_now"] is heavy_report["exported_now"] is False
    assert light_report["graph"] == heavy_report["graph"] == warm_cache["report"]["graph"]  # one key, both paths
    same = {k: v for k, v in light_report.items() if k not in REPORT_VARIES}
    assert same == {k: v for k, v in heavy_report.items() if k not in REPORT_VARIES}
    assert same["dimension"] == 384 and same["max_seq_length"] == 256 and same["model_loaded"] is True


async def test_max_seq_length_of_the_config_truncates_alike(warm_cache: dict[str, Any]) -> None:
    light = await provider(backend="onnx", export_cache_dir=warm_cache["dir"], max_seq_length=16)
    heavy = await provider(backend="onnx", export_cache_dir=warm_cache["dir"], max_seq_length=16, light_load=False)
    try:
        got, want = light.encode(TEXTS), heavy.encode(TEXTS)
        assert (await light.health_check())["max_seq_length"] == 16 == (await heavy.health_check())["max_seq_length"]
        assert light.exported.info.get("exported_now") is False and light.light["light_path"] is True
    finally:
        await light.close()
        await heavy.close()
    assert float(np.abs(got - want).max()) <= 1e-6
    assert float(np.abs(got[4] - warm_cache["vectors"][4]).max()) > 1e-3  # 16 tokens is another vector


LIGHT_PROCESS = r"""
import asyncio, json, sys
from providers.embeddings.sentence_transformers import SentenceTransformerProvider

async def main():
    out = {}
    for backend in ("onnx", "openvino"):
        p = SentenceTransformerProvider()
        await p.initialize({"backend": backend, "device": "cpu", "num_threads": 2, "export_cache_dir": sys.argv[1]})
        vector = (await p.embed_texts(["a text to embed"]))[0]
        out[backend] = {"light_path": p.light.get("light_path"), "reason": p.light.get("light_path_reason"),
                        "norm": float((vector ** 2).sum() ** 0.5)}
        await p.close()
    rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS"))
    heavy = [m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules]
    print(json.dumps({**out, "heavy_modules": heavy, "rss_mib": rss // 1024}))

asyncio.run(main())
"""


def test_a_fresh_process_on_a_warm_cache_never_imports_torch(warm_cache: dict[str, Any]) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", LIGHT_PROCESS, warm_cache["dir"]], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"fresh process, warm cache, onnx then openvino loaded and embedding: VmRSS {result['rss_mib']} MiB")
    for backend in ("onnx", "openvino"):
        assert result[backend]["light_path"] is True, result[backend]
        assert abs(result[backend]["norm"] - 1.0) < 1e-4
    assert result["heavy_modules"] == [], result


async def test_an_entry_whose_tokenizer_check_failed_sends_the_load_to_torch(warm_cache: dict[str, Any],
                                                                             tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(warm_cache["dir"], cache)
    entry = Path(warm_cache["report"]["graph"]).parent.name
    meta_file = cache / entry / export_cache.META_FILE
    meta = json.loads(meta_file.read_text())
    meta["light"] = {"tokenizer": "not used: input_ids differ"}  # what verify records on a mismatch
    meta_file.write_text(json.dumps(meta))
    p = await provider(backend="onnx", export_cache_dir=str(cache))
    try:
        report = await p.health_check()
    finally:
        await p.close()
    assert report["status"] == "healthy" and report["exported_now"] is False  # the same entry, loaded by torch
    assert report["light_path"] is False and "input_ids differ" in report["light_path_reason"]


# -- what the light path refuses (the model directory alone; no model load) ------------------------

@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """The packaged MiniLM as links to its files, which a test may then replace."""
    source = Path(packaged_model_path())
    copy = tmp_path / "minilm"
    shutil.copytree(source, copy, copy_function=os.symlink)
    return copy


def test_the_packaged_model_reads_as_plain(model_copy: Path) -> None:
    files = read_sentence_model(model_copy)
    assert files.max_seq_length == 256 and files.transformer == model_copy


@pytest.mark.parametrize(("change", "reason"), [
    ("custom-module", "my_package.Rotate"),
    ("no-tokenizer-json", "no tokenizer.json"),
    ("default-prompt", "default prompt 'query'"),
    ("lower-case", "do_lower_case=True"),
])
def test_what_the_light_path_cannot_reproduce_names_the_reason(model_copy: Path, change: str, reason: str) -> None:
    if change == "custom-module":
        modules = json.loads((model_copy / "modules.json").read_text())
        (model_copy / "modules.json").unlink()
        modules.append({"idx": 3, "name": "3", "path": "", "type": "my_package.Rotate"})
        (model_copy / "modules.json").write_text(json.dumps(modules))
    elif change == "no-tokenizer-json":
        (model_copy / "tokenizer.json").unlink()
    elif change == "default-prompt":
        (model_copy / "config_sentence_transformers.json").unlink()
        (model_copy / "config_sentence_transformers.json").write_text(
            json.dumps({"prompts": {"query": "query: "}, "default_prompt_name": "query"}))
    else:
        (model_copy / "sentence_bert_config.json").unlink()
        (model_copy / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 256, "do_lower_case": True}))
    with pytest.raises(Unavailable, match=reason):
        read_sentence_model(model_copy)


def test_the_key_follows_every_file_that_shapes_the_graph(model_copy: Path) -> None:
    before = export_cache.files_digest(model_copy)
    assert export_cache.files_digest(packaged_model_path()) == before  # the bytes, not the place
    (model_copy / "README.md").unlink()
    (model_copy / "README.md").write_text("edited")  # not part of the model
    assert export_cache.files_digest(model_copy) == before
    pooling = json.loads((model_copy / "1_Pooling" / "config.json").read_text())
    (model_copy / "1_Pooling" / "config.json").unlink()
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)  # another graph
    (model_copy / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    assert export_cache.files_digest(model_copy) != before


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
async def test_streams_run_a_calls_batches_side_by_side_with_the_same_vectors(backend: str,
                                                                              warm_cache: dict[str, Any]) -> None:
    """``streams: 2``: a call is cut into batches that run on two forward passes at once, each in a
    thread of the stream pool; a call of one batch is a lone pass; the vectors are those of one stream."""
    import threading

    one = await provider(backend=backend, export_cache_dir=warm_cache["dir"])
    two = await provider(backend=backend, export_cache_dir=warm_cache["dir"], streams=2)
    runs: list[tuple[int, int]] = []  # (thread id, batch rows) of every forward pass
    run_stream = two.exported.runtime.run_stream

    def recording_run(feeds):
        runs.append((threading.get_ident(), len(next(iter(feeds.values())))))
        return run_stream(feeds)

    two.exported.runtime.run_stream = recording_run
    try:
        want, got = one.encode(TEXTS), two.encode(TEXTS)
        lone = two.encode(TEXTS[:1])  # one batch: a lone pass on every thread, not a stream
        encode_runs = list(runs)
        report = await two.health_check()
    finally:
        await one.close()
        await two.close()
    assert report["streams"] == 2 and report["threads"] == 2, report
    assert sorted(rows for _, rows in encode_runs) == [len(TEXTS) - 4, 4]  # cut in two (4 rows at least)
    threads = {tid for tid, _ in encode_runs}
    assert threads and threading.get_ident() not in threads  # on the stream pool's threads, not the caller's
    assert float(np.abs(got - want).max()) <= 1e-5
    assert float(np.abs(lone - want[:1]).max()) <= 1e-5
