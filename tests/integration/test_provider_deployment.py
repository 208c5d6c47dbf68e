"""ProviderDeployment's own logic, exercised as a plain object (no cluster needed).

Serve calls ``reconfigure`` with the deployment's ``user_config``: on start,
and in place when only the user_config changes (``serve deploy`` of an edited
config). These tests call it the same way Serve does.
"""

from __future__ import annotations

import pytest

from deployments.provider_deployment import ProviderDeployment
from providers.errors import ConfigError, InvalidRequestError
from tests.integration.conftest import SAMPLE

pytestmark = [
    pytest.mark.integration,
    # Serve awaits the async __del__ at replica shutdown; here the garbage
    # collector calls it instead, which only warns.
    pytest.mark.filterwarnings("ignore:coroutine 'ProviderDeployment.__del__' was never awaited"),
]


async def _deployment(config: dict) -> ProviderDeployment:
    d = ProviderDeployment("embeddings", "t", f"{SAMPLE}.HashEmbedder", [SAMPLE])
    # @serve.batch needs a replica context; the batched path is tested on the
    # cluster (test_http: merged requests, STS through HTTP).
    await d.reconfigure({"config": config, "batching": {"enabled": False}})
    return d


async def test_reconfigure_swaps_the_provider_in_place():
    d = await _deployment({"dimension": 8, "label": "one"})
    assert (await d.describe())["getters"]["get_dimension"] == 8
    await d.reconfigure({"config": {"dimension": 12, "label": "two"}, "batching": {"enabled": False}})
    info = await d.describe()
    assert info["getters"] == {"get_dimension": 12, "get_model_name": "two", "supports_gpu": False}
    vectors = await d.invoke("embed_texts", [["a", "b"]])
    assert len(vectors) == 2 and vectors[0].shape == (12,)


async def test_a_bad_new_config_leaves_the_old_provider_serving():
    d = await _deployment({"dimension": 8})
    with pytest.raises(ConfigError):
        await d.reconfigure({"config": {}, "batching": {"max_batch_size": 0}})
    with pytest.raises(ValueError):  # HashEmbedder's own initialize rejects it
        await d.reconfigure({"config": {"dimension": "not a number"}})
    assert (await d.invoke("embed_query", ["x"])).shape == (8,)


async def test_only_interface_methods_can_be_invoked():
    d = await _deployment({})
    for method in ("initialize", "__init__", "_vector", "nonexistent"):
        with pytest.raises(InvalidRequestError, match="no method"):
            await d.invoke(method, [])
