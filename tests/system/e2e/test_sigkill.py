"""No ghosts: kill -9 one of two hubs sharing Redis, and the survivor turns its users offline
within the node TTL plus a sweep; a SIGTERM'd hub instead hands its users to the grace."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import eventually
from tests.support.hubproc import ADMIN_HEADERS, HubProcess, start_hub, user_token
from tests.support.wsclient import WsClient, connect_user

pytestmark = pytest.mark.redis

NODE_TTL_S = 1.0
#: Longer than the deadline: an offline that waited for the grace would miss it.
GRACE_S = 30.0
DEADLINE_S = 10.0


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def nodes(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> Iterator[tuple[HubProcess, HubProcess]]:
    env = {
        "HUB_STORE": redis_url,
        "HUB_KEY_PREFIX": key_prefix,
        "HUB_CHANNEL": f"{key_prefix}presence",
        "HUB_NODE_TTL_S": str(NODE_TTL_S),
        "HUB_OFFLINE_GRACE_S": str(GRACE_S),
    }
    first = start_hub(tmp_path, env, name="node1")
    try:
        second = start_hub(tmp_path, env, name="node2")
    except BaseException:
        first.kill()
        raise
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()
    second.assert_no_tracebacks()


async def test_killed_node_users_go_offline_on_the_survivor(nodes):
    """After kill -9 of node 1, each of its users is offline on node 2, in the REST snapshot
    and for a websocket subscriber, within the TTL plus a sweep; a user also connected to
    node 2 stays online."""
    node1, node2 = nodes
    victims = [uid(f"v{i}") for i in range(5)]
    both = uid("both")
    watcher = await connect_user(node2.ws_url, user_token(uid("w")), subscribe=True)
    clients: list[WsClient] = []
    try:
        for user in victims:
            clients.append(await connect_user(node1.ws_url, user_token(user)))
        clients.append(await connect_user(node1.ws_url, user_token(victims[0])))  # 2nd tab
        clients.append(await connect_user(node1.ws_url, user_token(both)))
        clients.append(await connect_user(node2.ws_url, user_token(both)))
        for user in [*victims, both]:
            await watcher.wait_status(user, "online")
        start = watcher.mark()

        node1.kill()
        killed_at = time.monotonic()

        async with httpx.AsyncClient(base_url=node2.url, trust_env=False, timeout=10) as http:

            async def snapshot_without_victims() -> dict[str, dict]:
                response = await http.get("/api/v1/users.presence", headers=ADMIN_HEADERS)
                assert response.status_code == 200
                body = response.json()
                assert body["full"] is True
                listed = {u["_id"]: u for u in body["users"]}
                assert not set(victims) & set(listed), sorted(set(victims) & set(listed))
                return listed

            listed = await eventually(snapshot_without_victims, timeout=DEADLINE_S, interval=0.05)
        reaped_in = time.monotonic() - killed_at
        assert listed[both]["status"] == "online"
        for user in victims:
            await watcher.wait_status(user, "offline", after=start)
        assert reaped_in < DEADLINE_S
        assert list(watcher.entries(both, after=start)) == [], "the user on node 2 flapped"
    finally:
        await watcher.close()
        for client in clients:
            await client.close()


async def test_sigterm_closes_sockets_with_1012_and_a_reconnect_elsewhere_does_not_flap(nodes):
    """SIGTERM on node 1 closes its sockets with 1012; the user reconnecting to node 2
    inside the grace publishes no offline (checked up to a later marker event)."""
    node1, node2 = nodes
    user, marker = uid("u"), uid("marker")
    watcher = await connect_user(node2.ws_url, user_token(uid("w")), subscribe=True)
    moved = late = None
    try:
        client = await connect_user(node1.ws_url, user_token(user))
        await watcher.wait_status(user, "online")
        start = watcher.mark()
        await asyncio.to_thread(node1.stop)  # the loop keeps answering the close handshake
        assert await client.wait_closed() == 1012
        moved = await connect_user(node2.ws_url, user_token(user))
        late = await connect_user(node2.ws_url, user_token(marker))
        await watcher.wait_status(marker, "online", after=start)
        assert list(watcher.entries(user, after=start)) == []
    finally:
        for c in (watcher, moved, late):
            if c is not None:
                await c.close()
