"""The export cache, the runtimes' threads and the errors a user sees, on the tiny cross-encoder
(exports in well under a second) and the packaged MiniLM's real location."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from providers.errors import ConfigError, ProviderLoadError
from providers.inference_backends import export_cache
from providers.inference_backends.runtimes import open_runtime
from providers.rerankers.cross_encoder import CrossEncoderReranker

PAIRS = [("what is the capital of france", "paris is the capital of france"), ("who", "the cat sits on the mat")]


async def load(model_dir: str, **config: Any) -> CrossEncoderReranker:
    r = CrossEncoderReranker()
    await r.initialize({"model_name": model_dir, "device": "cpu", "num_threads": 1, **config})
    return r


async def test_second_load_uses_the_cached_graph(tiny_model_dir: str, tmp_path: Path) -> None:
    first = await load(tiny_model_dir, backend="onnx", export_cache_dir=str(tmp_path))
    graph = Path(first.exported.info["graph"])
    written = graph.stat().st_mtime_ns
    again = await load(tiny_model_dir, backend="openvino", export_cache_dir=str(tmp_path))
    int8 = await load(tiny_model_dir, backend="onnx", quantize="dynamic", export_cache_dir=str(tmp_path))
    try:
        assert first.exported.info["exported_now"] is True
        # OpenVINO reads the same ONNX file: no second export
        assert again.exported.info["exported_now"] is False and Path(again.exported.info["graph"]) == graph
        assert graph.stat().st_mtime_ns == written
        assert int8.exported.info["exported_now"] is True and Path(int8.exported.info["graph"]) != graph
        entries = sorted(p.name for p in tmp_path.iterdir())
        assert len(entries) == 2 and not any(e.startswith(".tmp-") for e in entries), entries
        assert first.predict_pairs(PAIRS) == pytest.approx(again.predict_pairs(PAIRS), abs=1e-4)
    finally:
        for r in (first, again, int8):
            await r.close()


def test_racing_exporters_publish_one_entry(tiny_model_dir: str, tmp_path: Path) -> None:
    """Two writers inside ``publish`` at the same moment (a barrier holds each until both are in):
    one rename wins, the other drops its copy and returns the winner's graph."""
    source = tmp_path / "source.onnx"
    source.write_bytes(b"graph bytes")
    root = tmp_path / "cache"
    root.mkdir()
    both_in = threading.Barrier(2, timeout=30)
    results: list[tuple[Path, bool]] = []

    def write(directory: Path) -> dict:
        shutil.copy(source, directory / export_cache.GRAPH_FILE)
        both_in.wait()
        return {"writer": threading.current_thread().name}

    threads = [threading.Thread(target=lambda: results.append(export_cache.publish(root, "key", write)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(won for _, won in results) == [False, True]
    assert {path for path, _ in results} == {root / "key" / export_cache.GRAPH_FILE}
    assert [p.name for p in root.iterdir()] == ["key"]  # no temporary directory left behind
    assert (root / "key" / export_cache.GRAPH_FILE).read_bytes() == b"graph bytes"


def test_the_cache_sits_beside_the_packaged_model() -> None:
    from providers.embeddings.sentence_transformers import packaged_model_path

    model_dir = packaged_model_path()
    assert export_cache.cache_root(model_dir, None) == Path(model_dir).resolve().parent / "onnx-exports"


def test_an_unwritable_model_dir_falls_back_to_the_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # /proc refuses new directories even to root (a chmod'ed tmp dir would not stop root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert export_cache.cache_root("/proc/self", None) == tmp_path / "provider-registry" / "exports"
    with pytest.raises(OSError, match="export_cache_dir"):
        export_cache.cache_root("/proc/self", "/proc/self/exports")


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
async def test_threads_follow_num_threads_or_omp(backend: str, tiny_model_dir: str, export_cache: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    one = await load(tiny_model_dir, backend=backend, num_threads=1, export_cache_dir=export_cache)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # what Ray sets in a replica with num_cpus: 2
    omp = await load(tiny_model_dir, backend=backend, num_threads=None, export_cache_dir=export_cache)
    try:
        assert one.exported.info["threads"] == 1  # read back from the session / compiled model
        assert omp.exported.info["threads"] == 2
    finally:
        await one.close()
        await omp.close()


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
async def test_streams_share_the_threads_and_rank_as_one_stream(backend: str, tiny_model_dir: str,
                                                                export_cache: str) -> None:
    one = await load(tiny_model_dir, backend=backend, num_threads=2, export_cache_dir=export_cache)
    two = await load(tiny_model_dir, backend=backend, num_threads=2, streams=2, export_cache_dir=export_cache)
    capped = await load(tiny_model_dir, backend=backend, num_threads=2, streams=4, export_cache_dir=export_cache)
    try:
        pairs = PAIRS * 8  # 16 pairs: two batches of 8, one on each stream
        want, got = one.predict_pairs(pairs), two.predict_pairs(pairs)
        assert (one.exported.info["streams"], two.exported.info["streams"]) == (1, 2)
        assert two.exported.info["threads"] == 2
        assert capped.exported.info["streams"] == 2  # never more streams than threads
    finally:
        for r in (one, two, capped):
            await r.close()
    assert [round(s, 4) for s in got] == [round(s, 4) for s in want]


@pytest.mark.parametrize(("package", "backend"), [("onnxruntime", "onnx"), ("openvino", "openvino")])
def test_a_missing_runtime_names_the_extra(package: str, backend: str, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # `import package` now raises ImportError, as when absent
    with pytest.raises(ProviderLoadError, match=r"provider-registry\[cpu-fast\]") as err:
        open_runtime(backend, tmp_path / "model.onnx", 1)
    assert package in str(err.value) and backend in str(err.value)


async def test_a_failed_export_names_the_model_and_the_step(tiny_model_dir: str, tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    from providers.inference_backends import BackendFields
    from providers.inference_backends.exported_model import ExportedModel

    model = CrossEncoder(tiny_model_dir, device="cpu")
    with pytest.raises(ProviderLoadError, match=r"'tiny-model'.*'trace' step failed.*no_such_output"):
        ExportedModel.load(model, label="tiny-model", model_dir=tiny_model_dir, output="no_such_output",
                           pairs=True, settings=BackendFields(backend="onnx", export_cache_dir=str(tmp_path)),
                           threads=1)
    assert os.listdir(tmp_path) == []  # nothing half-written is left


@pytest.mark.parametrize(("config", "key"), [
    ({"backend": "openvino", "quantize": "dynamic"}, "quantize"),
    ({"backend": "torch", "quantize": "dynamic"}, "quantize"),
    ({"backend": "onnx", "precision": "bf16"}, "precision"),
    ({"backend": "torch", "streams": 2}, "streams"),
])
def test_options_that_do_not_fit_the_backend_are_refused(config: dict, key: str) -> None:
    from providers.config_base import parse_provider_config
    from providers.embeddings.sentence_transformers import SentenceTransformerConfig
    from providers.rerankers.cross_encoder import CrossEncoderConfig

    with pytest.raises(ConfigError, match=f"config.{key}"):
        parse_provider_config(SentenceTransformerConfig, config)
    with pytest.raises(ConfigError, match=f"config.{key}"):
        parse_provider_config(CrossEncoderConfig, {"model_name": "m", **config})


async def test_a_gpu_device_with_a_cpu_backend_is_refused(tiny_model_dir: str) -> None:
    with pytest.raises(ConfigError, match="config.device"):
        await load(tiny_model_dir, backend="onnx", device="cuda")
