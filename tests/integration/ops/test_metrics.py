"""Cluster-wide figures on /metrics: two hubs (in process) on one Redis each count every
node alive and every user online."""

from __future__ import annotations

import httpx
import pytest

from hub.clients.ws import connect
from hub.ops.metrics import parse
from tests.support.hubproc import user_token
from tests.support.inproc import InProcessHub


async def scrape(url: str) -> tuple[str, dict[str, float]]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.text, parse(response.text)


@pytest.mark.redis
async def test_nodes_alive_and_online_users_are_cluster_wide(
    redis_url: str, key_prefix: str
) -> None:
    """Two hubs on one Redis each report 2 nodes alive and the users connected to either."""
    env = {"HUB_STORE": redis_url, "HUB_KEY_PREFIX": key_prefix,
           "HUB_CHANNEL": f"{key_prefix}presence"}  # fmt: skip
    first = InProcessHub(env).start()
    second = InProcessHub(env).start()
    try:
        async with connect(first.url, user_token("c-one")), \
                connect(second.url, user_token("c-two")):  # fmt: skip
            for node in (first, second):
                text, samples = await scrape(node.url)
                assert 'store="redis"' in text
                assert samples["hub_nodes_alive"] == 2
                assert samples["hub_connections"] == 1
                assert samples['hub_online_users{status="online"}'] == 2
    finally:
        first.stop()
        second.stop()
