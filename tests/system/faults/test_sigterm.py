"""SIGTERM drains a node: its sockets close with 1012, it removes its connections from the
store and exits 0 promptly; clients that reconnect elsewhere inside the grace cause no
offline flap for a subscriber on a third node, and those that do not come back go offline
after the grace."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from redis.asyncio import Redis

from hub.stores.presence.keys import Keys
from tests.support import eventually
from tests.support.faults import ChannelWatcher, close_all, open_clients
from tests.support.hubproc import user_token
from tests.support.wsclient import WsClient, connect_user
from tests.system.faults.conftest import Spawn

pytestmark = [pytest.mark.redis, pytest.mark.slow]

GRACE_S = 3.0
#: Longer than the test: only the drain can remove node 1's connections, never a reap.
NODE_TTL_S = 60.0
#: SIGTERM to exit: the drain is a handful of round trips, whatever the machine's load.
EXIT_WITHIN_S = 10.0


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def test_sigterm_drains_with_1012_and_reconnects_elsewhere_do_not_flap(
    spawn: Spawn, redis_url: str, channel: str, key_prefix: str
) -> None:
    """20 users move from a SIGTERM'd node to another: no offline entry for them reaches a
    subscriber on a third node (up to a later marker); the node exits 0 within the bound,
    leaves no connection in the store, and the 3 users who did not come back go offline
    after the grace."""
    env = {"HUB_OFFLINE_GRACE_S": str(GRACE_S), "HUB_NODE_TTL_S": str(NODE_TTL_S)}
    node_id = uid("draining")
    node1 = spawn("node1", redis_url, HUB_NODE_ID=node_id, **env)
    node2 = spawn("node2", redis_url, **env)
    node3 = spawn("node3", redis_url, **env)
    movers = [uid(f"m{i}") for i in range(20)]
    leavers = [uid(f"l{i}") for i in range(3)]
    marker = uid("marker")
    feed = await ChannelWatcher(redis_url, channel).start()
    watcher = await connect_user(node3.ws_url, user_token(uid("w")), subscribe=True)
    on_node1 = await open_clients(node1.ws_url, [user_token(u) for u in [*movers, *leavers]])
    moved: list[WsClient] = []
    late: WsClient | None = None
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        for user in [*movers, *leavers]:
            await watcher.wait_status(user, "online")
        start, feed_start = watcher.mark(), len(feed.messages)

        async def move(client: WsClient, user: str) -> WsClient:
            assert await client.wait_closed() == 1012
            return await connect_user(node2.ws_url, user_token(user))

        stopped_at = time.monotonic()
        stop = asyncio.create_task(asyncio.to_thread(node1.stop))
        moved = list(
            await asyncio.gather(*(move(c, u) for c, u in zip(on_node1, movers, strict=False)))
        )
        for client in on_node1[len(movers) :]:
            assert await client.wait_closed() == 1012
        code = await stop
        took = time.monotonic() - stopped_at
        print(f"SIGTERM -> exit {code} in {took:.2f} s")
        assert code == 0
        assert took < EXIT_WITHIN_S

        # The drain removed every connection of node 1 and the node itself.
        keys = Keys(key_prefix, 1)
        assert await redis.exists(keys.buckets[0].node + node_id) == 0
        assert await redis.zscore(keys.nodes, node_id) is None

        late = await connect_user(node2.ws_url, user_token(marker))
        await watcher.wait_status(marker, "online", after=start)

        async def feed_has_marker() -> bool:
            return bool(feed.entries(marker, after=feed_start))

        await eventually(feed_has_marker)
        for user in movers:
            assert list(watcher.entries(user, after=start)) == [], f"{user} flapped"
            assert feed.entries(user, after=feed_start) == [], f"{user} flapped on the channel"
            assert watcher.state.status(user) == "online"

        # Those who did not come back: offline once the grace ends (swept by nodes 2 and 3).
        for user in leavers:
            await watcher.wait_status(user, "offline", timeout=GRACE_S + 10, after=start)
    finally:
        await redis.aclose()
        await feed.close()
        await close_all([watcher, late, *moved, *on_node1])
