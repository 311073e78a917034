"""Two hub nodes for the room tests: one memory hub seen twice, or two hubs on one Redis
(or one Redis Cluster).

With the memory store both "nodes" are the same process; with Redis they are two
processes sharing one real redis-server or cluster (this test's own key prefix and
channels), so a membership change made on one node must reach room subscribers on the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.support.hubproc import HubProcess, start_hub, user_token
from tests.support.wsclient import WsClient, connect_user

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("redis-cluster", id="redis-cluster", marks=[pytest.mark.redis,
                                                              pytest.mark.cluster]),
]  # fmt: skip


def start_nodes(tmp: Path, env: dict[str, str], count: int) -> list[HubProcess]:
    hubs: list[HubProcess] = []
    try:
        for n in range(count):
            hubs.append(start_hub(tmp, env, name=f"node{n + 1}"))
    except BaseException:
        for hub in hubs:
            hub.stop()
        raise
    return hubs


@pytest.fixture(params=BACKENDS)
def nodes(
    request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str
) -> Iterator[tuple[HubProcess, HubProcess]]:
    """(node1, node2): the same memory hub twice, or two hubs on one Redis."""
    env = {"HUB_OFFLINE_GRACE_S": "0", "HUB_NODE_TTL_S": "1"}
    if request.param != "memory":
        fixture = "redis_url" if request.param == "redis" else "cluster_url"
        redis_url: str = request.getfixturevalue(fixture)
        env |= {
            "HUB_STORE": redis_url,
            "HUB_KEY_PREFIX": key_prefix,
            "HUB_CHANNEL": f"{key_prefix}presence",
        }
        hubs = start_nodes(tmp_path, env, 2)
    else:
        hubs = start_nodes(tmp_path, env, 1) * 2
    try:
        yield hubs[0], hubs[1]
    finally:
        for hub in {id(h): h for h in hubs}.values():
            if hub.process is not None:
                hub.stop()
                hub.assert_no_tracebacks()


@pytest.fixture
async def clients() -> AsyncIterator[list[WsClient]]:
    """Websocket clients a test opened, closed at its end."""
    opened: list[WsClient] = []
    yield opened
    for client in opened:
        await client.close()


Connect = Callable[[HubProcess, str], Awaitable[WsClient]]


@pytest.fixture
def connect(clients: list[WsClient]) -> Connect:
    """``await connect(hub, user)``: a client that said hello as ``user``."""

    async def open_one(hub: HubProcess, user: str) -> WsClient:
        client = await connect_user(hub.ws_url, user_token(user, name=user.title()))
        clients.append(client)
        return client

    return open_one
