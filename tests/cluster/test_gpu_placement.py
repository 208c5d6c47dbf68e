"""The GPU placement path, without a GPU: a raylet that declares one it does not have.

Two `ray start` commands (a head with no GPU, then a node with `--num-gpus 1`)
make a real two-node cluster on this machine; the registry deploys the
packaged MiniLM with ``num_gpus: 0.5`` and two replicas, as a GPU cluster's
config would. That is the path every GPU cluster takes: the fit check counts
the node's declared GPU, Ray's scheduler puts both replicas on that node and
sets ``CUDA_VISIBLE_DEVICES`` in them, and the provider then meets a torch that
sees no CUDA device: ``device: auto`` must fall back to the CPU and say so in
its health report, ``device: cuda`` must fail at load naming what it saw.

Why `ray start` and not `ray.cluster_utils.Cluster`: Cluster writes its address
to the default ``/tmp/ray/ray_current_cluster`` (cluster_utils.py, add_node),
where another Ray user on this machine (the CI run, `make serve`'s address
resolution) would find and join it; `ray start --temp-dir` writes it under its
own directory. And `ray stop` has no address or temp-dir option (it stops every
Ray on the machine), so the fixture stops exactly the processes under its temp
dir, as tests/deploy does.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from providers.net import free_port
from tests.cluster.conftest import PROCESS_AUTH
from tests.processes import processes_under, stop_processes_under

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MINILM = "providers.embeddings.sentence_transformers.SentenceTransformerProvider"
APP = "registry"


def _ray_start(args: list[str], env: dict[str, str]) -> None:
    # Every port of its own: the dashboard agent's default (52365) and the Ray
    # client server's (10001) would clash between the two nodes, and with any
    # other Ray instance on the machine (the CI run's tests/deploy).
    ports = [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
             f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}"]
    r = subprocess.run([str(BIN / "ray"), "start", *args, *ports,
                        "--object-store-memory=100000000", "--disable-usage-stats"],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, f"ray start {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"


def _stop_everything_under(work: Path) -> None:
    # 3 s: one of Ray's processes here sits out SIGTERM for the whole grace (seen: 10 s of
    # a 10 s grace); nothing of this test needs a graceful end, the data dir is thrown away.
    stop_processes_under(str(work), term_grace_s=3)


@pytest.fixture(scope="module")
def gpu_cluster():
    """A head (2 CPUs, no GPU) and a node declaring one GPU it lacks, with the
    registry running the MiniLM on two half-GPU replicas."""
    # Token authentication, with a token of this test's own, on every node and in
    # this driver. Left to Ray, a head started where ~/.ray/auth_token exists turns
    # token auth on by itself (scripts.py `start`, maybe_enable_token_auth_if_token_available,
    # head only), and the second node, not doing so, is refused by the GCS. Set
    # before Ray is imported: its RayConfig reads RAY_AUTH_MODE once per process.
    auth = PROCESS_AUTH  # one token for the whole process (tests/cluster/conftest.py)
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)
    import ray
    from ray import serve

    from providers.registry.config import parse_config
    from serve_app.main import ensure_ray, start_registry

    work = Path(tempfile.mkdtemp(prefix="rg", dir="/tmp"))  # short: Ray's socket paths must stay < 108 bytes
    # The raylets' environment is their workers': the replicas import this
    # checkout, and stay offline (the model ships in a package). No prestarted
    # idle workers: nothing here would use them, and 2 cores are shared.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "RAY_enable_worker_prestart": "0", "RAY_prestart_worker_first_driver": "0",
           # the device: cuda case fails in the constructor: one try, not Serve's three (27 s of the test)
           "RAY_SERVE_MAX_PER_REPLICA_RETRY_COUNT": "1"}
    env.pop("RAY_ADDRESS", None)
    env.pop("CUDA_VISIBLE_DEVICES", None)  # only Ray sets it here, in the replicas given a GPU
    env.update(auth)
    port = free_port()
    try:
        _ray_start(["--head", f"--port={port}", f"--temp-dir={work}", "--num-cpus=2", "--num-gpus=0",
                    "--include-dashboard=false", f"--ray-client-server-port={free_port()}"], env)
        _ray_start([f"--address=127.0.0.1:{port}", f"--temp-dir={work}", "--num-cpus=2", "--num-gpus=1"], env)
        ensure_ray(address=f"127.0.0.1:{port}", env_vars={"PYTHONPATH": str(ROOT)})
        nodes = [n for n in ray.nodes() if n["Alive"]]
        gpu_nodes = [n["NodeID"] for n in nodes if n["Resources"].get("GPU")]
        assert len(nodes) == 2 and len(gpu_nodes) == 1, nodes
        config = parse_config({
            "registry": {"deploy_timeout_s": 120},
            "embeddings": {"providers": {"gpu": {
                "class": MINILM, "config": {"backend": "torch", "device": "auto"},
                # num_cpus small: the GPU, not the CPUs, must decide where they go.
                "deployment": {"num_gpus": 0.5, "num_replicas": 2, "num_cpus": 0.1}}}},
        })
        # check_resources is on (the default): the fit check must count the declared GPU.
        start_registry(config, http=False)
        yield {"gpu_node": gpu_nodes[0], "head_node": next(n["NodeID"] for n in nodes if n["NodeID"] != gpu_nodes[0])}
    finally:
        try:
            if ray.is_initialized():
                serve.shutdown()
        finally:
            ray.shutdown()
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
            _stop_everything_under(work)
            left = processes_under(str(work))
            shutil.rmtree(work, ignore_errors=True)
            assert not left, f"processes of the test cluster survived: {left}"


def _replicas(app_prefix: str) -> list[dict]:
    """What each replica process of the app's provider sees: run inside it.

    Serve names replica actors ``SERVE_REPLICA::<app>#<deployment>#<id>`` in the
    ``serve`` namespace; the names come from GCS (no dashboard needed, and this
    cluster runs none), and ``__ray_call__`` runs a function in the actor.
    """
    import ray

    def inside(_replica) -> dict:
        import os

        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "gpu_ids": [str(i) for i in ray.get_gpu_ids()]}

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == "serve" and a["name"].startswith(f"SERVE_REPLICA::{app_prefix}")]
    return [ray.get(ray.get_actor(n, namespace="serve").__ray_call__.remote(inside), timeout=60) for n in names]


async def test_half_gpu_replicas_land_on_the_gpu_node_and_fall_back_to_cpu(gpu_cluster):
    import ray

    from serve_app import ProviderRegistry

    replicas = _replicas(f"{APP}--embeddings--gpu--")
    assert len(replicas) == 2, replicas
    for r in replicas:
        assert r["node"] == gpu_cluster["gpu_node"], f"a half-GPU replica is not on the GPU node: {replicas}"
        # The one declared GPU is id 0; both halves share it.
        assert r["cuda_visible_devices"] == "0" and r["gpu_ids"] == ["0"], replicas
    assert replicas[0]["pid"] != replicas[1]["pid"]
    assert ray.available_resources().get("GPU", 0.0) == 0.0  # two halves: the whole GPU is taken

    registry = ProviderRegistry(APP)
    health = await registry.health_check("embeddings", "gpu")
    assert health["status"] == "healthy", health
    assert health["device"] == "cpu" and health["gpu_available"] is False, health
    print("health report of a replica given a GPU it cannot use:", health)  # shown with -rP, and on failure
    fallback = health.get("device_fallback", "")
    assert "CUDA_VISIBLE_DEVICES=0" in fallback and "device auto chose the CPU" in fallback, health
    # torch here is a CPU build; on a CUDA build on a GPU-less node it would name its device count instead.
    assert "built without CUDA" in fallback or "sees 0 CUDA device" in fallback, health
    embedder = await registry.get_provider("embeddings", "gpu")
    vector = await embedder.embed_query("a replica given a GPU it cannot use still serves")
    assert len(vector) == 384

    # The fit check sees the declared GPU taken: a third half refused at once, naming it.
    with pytest.raises(Exception) as info:
        await registry.register_provider("embeddings", "third", MINILM, {"backend": "torch"},
                                         deployment={"num_gpus": 0.5, "num_cpus": 0.1})
    assert type(info.value).__name__ == "InsufficientResourcesError", info.value
    assert "asks 0.5 GPU per replica (x1); free: 0 GPU of 1" in str(info.value)


async def test_device_cuda_fails_at_load_naming_what_torch_sees(gpu_cluster):
    import ray

    from serve_app import ProviderRegistry

    registry = ProviderRegistry(APP)
    # Free the GPU (the first test's replicas hold it), so the cuda provider is
    # placed on the GPU node and meets the same CUDA_VISIBLE_DEVICES=0.
    if "gpu" in (await registry.list_providers("embeddings"))["embeddings"]:
        await registry.delete_provider("embeddings", "gpu")
    deadline = time.monotonic() + 120
    while ray.available_resources().get("GPU", 0.0) < 1.0 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert ray.available_resources().get("GPU", 0.0) == 1.0, ray.available_resources()

    with pytest.raises(Exception) as info:
        await registry.register_provider("embeddings", "cuda", MINILM, {"backend": "torch", "device": "cuda"},
                                         deployment={"num_gpus": 1, "num_cpus": 0.1})
    message = str(info.value)
    print("device: cuda on the GPU node:", type(info.value).__name__, message)
    assert "device is 'cuda' but torch" in message, message
    assert "CUDA_VISIBLE_DEVICES=0" in message, message  # it was placed on the GPU node and given GPU 0
    assert "config.device" in message, message
    assert "cuda" not in (await registry.list_providers("embeddings"))["embeddings"]
    # The failed version was removed: its GPU is free again.
    deadline = time.monotonic() + 120
    while ray.available_resources().get("GPU", 0.0) < 1.0 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert ray.available_resources().get("GPU", 0.0) == 1.0, json.dumps(ray.available_resources())
