"""Two hub nodes for the room tests: one memory hub seen twice, or two hubs on one Redis
(or one Redis Cluster), all served in process (tests/support/inproc.py).

With the memory store both "nodes" are the same hub (the unit tier); with Redis they are
two hubs, each with its own store client and feed, sharing one real redis-server or cluster
(this test's own key prefix and channels), so a membership change made on one node must
reach room subscribers on the other (the integration tier). ``backend_name`` comes from the
tier (tests/conftest.py); each tier's conftest brings these fixtures to the suites in
tests/backends/rooms_*.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from tests.support.hubproc import user_token
from tests.support.inproc import Hub, InProcessHub
from tests.support.wsclient import WsClient, connect_user


def start_nodes(env: dict[str, str], count: int) -> list[InProcessHub]:
    hubs: list[InProcessHub] = []
    try:
        for _ in range(count):
            hubs.append(InProcessHub(env).start())
    except BaseException:
        for hub in hubs:
            hub.stop()
        raise
    return hubs


def store_env(request: pytest.FixtureRequest, backend_name: str, key_prefix: str
              ) -> dict[str, str]:  # fmt: skip
    """The store of this run's backend, under this test's key prefix and channel."""
    if backend_name == "memory":
        return {}
    fixture = "redis_url" if backend_name == "redis" else "cluster_url"
    redis_url: str = request.getfixturevalue(fixture)
    return {"HUB_STORE": redis_url, "HUB_KEY_PREFIX": key_prefix,
            "HUB_CHANNEL": f"{key_prefix}presence"}  # fmt: skip


@pytest.fixture
def nodes(
    request: pytest.FixtureRequest, backend_name: str, key_prefix: str
) -> Iterator[tuple[InProcessHub, InProcessHub]]:
    """(node1, node2): the same memory hub twice, or two hubs on one Redis."""
    env = {"HUB_OFFLINE_GRACE_S": "0", "HUB_NODE_TTL_S": "1",
           **store_env(request, backend_name, key_prefix)}  # fmt: skip
    hubs = start_nodes(env, 2) if backend_name != "memory" else start_nodes(env, 1) * 2
    try:
        yield hubs[0], hubs[1]
    finally:
        for hub in {id(h): h for h in hubs}.values():
            hub.stop()
            hub.assert_no_tracebacks()


@pytest.fixture
async def clients() -> AsyncIterator[list[WsClient]]:
    """Websocket clients a test opened, closed at its end."""
    opened: list[WsClient] = []
    yield opened
    for client in opened:
        await client.close()


Connect = Callable[[Hub, str], Awaitable[WsClient]]


@pytest.fixture
def connect(clients: list[WsClient]) -> Connect:
    """``await connect(hub, user)``: a client that said hello as ``user``."""

    async def open_one(hub: Hub, user: str) -> WsClient:
        client = await connect_user(hub.ws_url, user_token(user, name=user.title()))
        clients.append(client)
        return client

    return open_one
