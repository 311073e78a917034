"""Admin actions reach every node: two hubs (in process) on one real Redis (and on a Redis
Cluster), with a 30 s offline grace.

The grace is long on purpose: a user who shows offline within seconds of a deactivation,
a force-offline or a kick proves those skip the grace.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.support.hubproc import (
    ADMIN_HEADERS,
    TEST_ADMIN_KEY,
    rc_headers,
    user_token,
)
from tests.support.inproc import InProcessHub, running_inproc_hubs
from tests.support.wsclient import WsClient, connect_user

pytestmark = pytest.mark.redis

#: Far below the 30 s grace: seeing offline this fast means no grace was waited.
AT_ONCE_S = 5.0


def name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=[
    pytest.param("redis_url", id="redis"),
    pytest.param("cluster_url", id="redis-cluster", marks=pytest.mark.cluster),
])  # fmt: skip
def nodes(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[tuple[InProcessHub, ...]]:
    """Two hubs on one Redis (or one Redis Cluster) with a 30 s offline grace."""
    redis_url: str = request.getfixturevalue(request.param)
    env = {"HUB_STORE": redis_url, "HUB_KEY_PREFIX": key_prefix,
           "HUB_CHANNEL": f"{key_prefix}presence", "HUB_OFFLINE_GRACE_S": "30"}  # fmt: skip
    with running_inproc_hubs(env) as hubs:
        yield hubs


@pytest.fixture
async def clients() -> AsyncIterator[list[WsClient]]:
    opened: list[WsClient] = []
    yield opened
    for client in opened:
        await client.close()


async def connect(clients: list[WsClient], hub: InProcessHub, user: str, *,
                  subscribe: bool = False) -> WsClient:  # fmt: skip
    client = await connect_user(hub.ws_url, user_token(user), subscribe=subscribe)
    clients.append(client)
    return client


async def refused_hello(hub: InProcessHub, user: str) -> int | None:
    """Open a socket, say hello as ``user``; the close code the hub answered with."""
    client = await WsClient.open(hub.ws_url)
    try:
        await client.send({"op": "hello", "token": user_token(user)})
        code = await client.wait_closed()
        assert client.ready is None and not any(f.get("op") == "ready" for f in client.frames)
        return code
    finally:
        await client.close()


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user_token(user)}"}


async def test_deactivate_closes_sockets_everywhere_and_refuses_the_user(
    nodes: tuple[InProcessHub, InProcessHub], clients: list[WsClient]
) -> None:
    """Deactivated on node 1: its sockets on both nodes close 4003, it is offline at once,
    a new hello and its REST calls are refused; activating lifts all that."""
    one, two = nodes
    user = name("mallory")
    watcher = await connect(clients, one, name("watcher"), subscribe=True)
    on_two = await connect(clients, two, user)
    on_one = await connect(clients, one, user)
    await watcher.wait_status(user, "online")
    mark = watcher.mark()
    async with httpx.AsyncClient(base_url=one.url) as http:
        response = await http.post(f"/o/a/users/{user}/deactivate", headers=ADMIN_HEADERS)
        assert response.status_code == 200, response.text
    assert await on_two.wait_closed() == 4003
    assert await on_one.wait_closed() == 4003
    await watcher.wait_status(user, "offline", timeout=AT_ONCE_S, after=mark)
    assert await refused_hello(two, user) == 4003
    assert await refused_hello(one, user) == 4003
    async with httpx.AsyncClient(base_url=two.url) as http:
        presence = await http.get("/api/v1/users.presence", headers=rc_headers(user))
        assert presence.status_code == 401 and "deactivated" in presence.json()["message"]
        agora = await http.get(f"/o/a/users/{user}", headers=bearer(user))
        assert agora.status_code == 401 and agora.json()["error"] == "unauthorized"
        lifted = await http.post(f"/o/a/users/{user}/activate", headers=ADMIN_HEADERS)
        assert lifted.status_code == 200
        back = await connect(clients, one, user)
        assert back.ready is not None
        allowed = await http.get("/api/v1/users.presence", headers=rc_headers(user))
        assert allowed.status_code == 200


async def test_force_offline_closes_with_4004_without_grace(
    nodes: tuple[InProcessHub, InProcessHub], clients: list[WsClient]
) -> None:
    """Agora's force offline on node 1 closes the user's node-2 socket with 4004, offline at
    once; the user may connect again right away."""
    one, two = nodes
    user = name("neo")
    watcher = await connect(clients, one, name("watcher"), subscribe=True)
    socket = await connect(clients, two, user)
    await watcher.wait_status(user, "online")
    mark = watcher.mark()
    async with httpx.AsyncClient(base_url=one.url) as http:
        response = await http.get(f"/o/a/users/{user}/disconnect", headers=ADMIN_HEADERS)
        assert response.json()["data"] == {"result": True}
    assert await socket.wait_closed() == 4004
    await watcher.wait_status(user, "offline", timeout=AT_ONCE_S, after=mark)
    mark = watcher.mark()
    again = await connect(clients, two, user)
    assert again.ready is not None
    await watcher.wait_status(user, "online", after=mark)


async def test_iflychat_kick_closes_with_4004_everywhere(
    nodes: tuple[InProcessHub, InProcessHub], clients: list[WsClient]
) -> None:
    """iFlyChat's kick on node 2 closes the user's sockets on both nodes with 4004."""
    one, two = nodes
    user = name("kicked")
    watcher = await connect(clients, two, name("watcher"), subscribe=True)
    sockets = [await connect(clients, one, user), await connect(clients, two, user)]
    await watcher.wait_status(user, "online")
    mark = watcher.mark()
    async with httpx.AsyncClient(base_url=two.url) as http:
        response = await http.post(f"/api/1.1/user/{user}/kick",
                                   json={"api_key": TEST_ADMIN_KEY})  # fmt: skip
        assert response.json() == {"success": True}
    assert [await s.wait_closed() for s in sockets] == [4004, 4004]
    await watcher.wait_status(user, "offline", timeout=AT_ONCE_S, after=mark)


async def test_a_normal_close_still_waits_for_the_grace(
    nodes: tuple[InProcessHub, InProcessHub], clients: list[WsClient]
) -> None:
    """Control: a user who just closes its socket stays online inside the 30 s grace."""
    one, two = nodes
    user = name("reload")
    socket = await connect(clients, two, user)
    await socket.close()
    async with httpx.AsyncClient(base_url=one.url) as http:
        status = await http.get(f"/o/a/users/{user}/status", headers=ADMIN_HEADERS)
    assert status.json()["data"] == {user: "online"}


async def test_deactivating_an_unknown_user_is_a_404(
    nodes: tuple[InProcessHub, InProcessHub],
) -> None:
    """Nothing happens to a user nobody registered: Agora answers 404."""
    one, _ = nodes
    async with httpx.AsyncClient(base_url=one.url) as http:
        response = await http.post(f"/o/a/users/{name('ghost')}/deactivate",
                                   headers=ADMIN_HEADERS)  # fmt: skip
    assert response.status_code == 404
