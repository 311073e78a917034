"""Two hubs (in process) sharing one real Redis: what one node learns, the other node and any
plain Redis subscriber see."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import msgpack
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from tests.support.hubproc import ADMIN_HEADERS, user_token
from tests.support.inproc import InProcessHub, running_inproc_hubs
from tests.support.wsclient import TIMEOUT_S, connect_user

pytestmark = pytest.mark.redis


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def channel(key_prefix: str) -> str:
    return f"{key_prefix}presence"


@pytest.fixture
def nodes(redis_url: str, key_prefix: str, channel: str) -> Iterator[tuple[InProcessHub, ...]]:
    """Two hubs on one Redis, with this test's own key prefix and channel."""
    env = {
        "HUB_STORE": redis_url,
        "HUB_KEY_PREFIX": key_prefix,
        "HUB_CHANNEL": channel,
        "HUB_OFFLINE_GRACE_S": "0",
    }
    with running_inproc_hubs(env) as hubs:
        yield hubs


@pytest.fixture
async def feed(redis_url: str, channel: str) -> AsyncIterator[PubSub]:
    """A plain redis-py SUBSCRIBE on the presence channel, confirmed before the test runs."""
    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    try:
        await pubsub.subscribe(channel)
        confirmation = await pubsub.get_message(timeout=TIMEOUT_S)
        assert confirmation is not None and confirmation["type"] == "subscribe"
        yield pubsub
    finally:
        await pubsub.aclose()
        await redis.aclose()


async def published(
    pubsub: PubSub, predicate: Any, timeout: float = TIMEOUT_S
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first channel message with an entry matching ``predicate``: (message, entry)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: list[dict[str, Any]] = []
    while (remaining := deadline - loop.time()) > 0:
        raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining)
        if raw is None:
            continue
        message = msgpack.unpackb(raw["data"], raw=False)
        seen.append(message)
        for entry in message["users"]:
            if predicate(entry):
                return message, entry
    raise AssertionError(f"nothing matching on the channel within {timeout} s: {seen[-5:]}")


async def test_user_on_node1_is_seen_on_node2_and_on_the_redis_channel(nodes, feed):
    """A user connecting to node 1 reaches a subscriber on node 2 and a plain Redis
    SUBSCRIBE ({v: 1, cursor, users}); so do its status change and its going offline."""
    node1, node2 = nodes
    user, watcher_id = uid("u"), uid("w")
    watcher = await connect_user(node2.ws_url, user_token(watcher_id), subscribe=True)
    try:
        client = await connect_user(node1.ws_url, user_token(user, name="Una"))
        seen = await watcher.wait_status(user, "online")
        message, entry = await published(feed, lambda e: e["id"] == user)
        assert set(message) == {"v", "cursor", "users"} and message["v"] == 1
        assert entry == {
            "id": user,
            "username": user,
            "name": "Una",
            "status": "online",
            "text": "",
            "at": seen["at"],
        }
        assert message["cursor"] >= entry["at"]

        start = watcher.mark()
        await client.request({"op": "status", "status": "busy", "text": "on node 1"})
        busy = await watcher.wait_status(user, "busy", after=start)
        _, entry = await published(feed, lambda e: e["id"] == user and e["status"] == "busy")
        assert entry == busy and busy["text"] == "on node 1" and busy["at"] > seen["at"]

        await client.close()
        offline = await watcher.wait_status(user, "offline", after=start)
        _, entry = await published(feed, lambda e: e["id"] == user and e["status"] == "offline")
        assert entry == offline
    finally:
        await watcher.close()


async def test_both_nodes_answer_rest_with_the_shared_presence(nodes):
    """users.presence on either node lists users connected to either node."""
    node1, node2 = nodes
    on1, on2 = uid("on1"), uid("on2")
    c1 = await connect_user(node1.ws_url, user_token(on1))
    c2 = await connect_user(node2.ws_url, user_token(on2))
    try:
        await c2.subscribe({"users": [on1, on2]})
        await c2.wait_for(
            lambda f: c2.state.status(on1) == "online" and c2.state.status(on2) == "online",
            what="both users online",
        )
        for node in nodes:
            async with httpx.AsyncClient(base_url=node.url, trust_env=False, timeout=10) as http:
                response = await http.get(
                    "/api/v1/users.presence", params={"ids": f"{on1},{on2}"}, headers=ADMIN_HEADERS
                )
            assert response.status_code == 200
            assert sorted(u["_id"] for u in response.json()["users"]) == sorted([on1, on2])
    finally:
        await c1.close()
        await c2.close()


async def test_second_connection_on_another_node_keeps_the_user_online(nodes):
    """A user with a socket on each node stays online when one of them closes."""
    node1, node2 = nodes
    user, marker = uid("u"), uid("marker")
    watcher = await connect_user(node2.ws_url, user_token(uid("w")), subscribe=True)
    tab1 = await connect_user(node1.ws_url, user_token(user))
    tab2 = await connect_user(node2.ws_url, user_token(user))
    try:
        await watcher.wait_status(user, "online")
        start = watcher.mark()
        await tab1.close()
        late = await connect_user(node1.ws_url, user_token(marker))
        await watcher.wait_status(marker, "online", after=start)
        await late.close()
        assert list(watcher.entries(user, after=start)) == []
    finally:
        await watcher.close()
        await tab2.close()
