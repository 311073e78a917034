"""Three hubs on a real three-master Redis Cluster: clients spread over them, a subscriber on
each sees everyone's changes, a plain SUBSCRIBE on any cluster node sees them too, and a
kill -9 of one hub makes its users offline everywhere within the node TTL plus a sweep."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.support import eventually
from tests.support.faults import ChannelWatcher, close_all, open_clients, rest_presence
from tests.support.hubproc import user_token
from tests.support.redis_server import ClusterServers
from tests.support.wsclient import WsClient, connect_user
from tests.system.faults.conftest import Spawn

pytestmark = [pytest.mark.redis, pytest.mark.cluster, pytest.mark.slow]

NODE_TTL_S = 1.0
SWEEP_S = min(1.0, NODE_TTL_S / 3)
MARGIN_S = 3.0


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def test_three_hubs_on_a_cluster_share_presence_and_reap_a_killed_hub(
    spawn: Spawn, redis_cluster: ClusterServers, cluster_url: str, channel: str
) -> None:
    """10 users per hub; each hub's subscriber sees all 30 online and a status change made
    on another hub; kill -9 of hub 3: its 10 users are offline for the other subscribers, in
    REST and on the channel within TTL + sweep + margin, the 20 others untouched."""
    env = {"HUB_NODE_TTL_S": str(NODE_TTL_S), "HUB_OFFLINE_GRACE_S": "60"}
    hubs = [spawn(f"hub{i}", cluster_url, **env) for i in (1, 2, 3)]
    users = [[uid(f"h{h}u{i}") for i in range(10)] for h in range(3)]
    everyone = [u for group in users for u in group]
    # Any node of the cluster hears every PUBLISH: watch the last one.
    feed = await ChannelWatcher(redis_cluster.nodes[-1].url, channel).start()
    watchers: list[WsClient] = []
    clients: list[WsClient] = []
    https = [httpx.AsyncClient(base_url=h.url, trust_env=False, timeout=5) for h in hubs[:2]]
    try:
        for h, hub in enumerate(hubs):
            watchers.append(await connect_user(hub.ws_url, user_token(uid("w")), subscribe=True))
            clients += await open_clients(hub.ws_url, [user_token(u) for u in users[h]])

        async def all_online() -> bool:
            for state in [w.state for w in watchers] + [feed.state]:
                missing = [u for u in everyone if state.status(u) != "online"]
                assert not missing, f"{len(missing)} not online yet"
            return True

        await eventually(all_online, timeout=15)

        # A change made through hub 1 reaches the subscribers of hubs 2 and 3.
        await clients[0].request({"op": "status", "status": "busy", "text": "cluster"})
        for watcher in watchers:
            entry = await watcher.wait_status(users[0][0], "busy")
            assert entry["text"] == "cluster"

        marks = [w.mark() for w in watchers[:2]]
        feed_mark = len(feed.messages)
        hubs[2].kill()
        killed_at = time.monotonic()
        victims, survivors = users[2], users[0] + users[1]

        async def offline_everywhere() -> bool:
            for http in https:
                listed = {u["_id"] for u in (await rest_presence(http))["users"]}
                assert not listed & set(victims), "victims still listed"
                assert set(survivors) <= listed
            for state in [w.state for w in watchers[:2]] + [feed.state]:
                online = [u for u in victims if state.status(u) != "offline"]
                assert not online, f"{len(online)} victims not offline for a subscriber"
            return True

        deadline = NODE_TTL_S + SWEEP_S + MARGIN_S
        await eventually(offline_everywhere, timeout=deadline + 10, interval=0.05)
        took = time.monotonic() - killed_at
        print(f"\ncluster: kill -9 -> 10 users offline everywhere in {took:.2f} s")
        assert took <= deadline
        for watcher, mark in zip(watchers[:2], marks, strict=True):
            for user in survivors:
                assert list(watcher.entries(user, after=mark)) == [], f"{user} flapped"
        for user in survivors:
            assert feed.entries(user, after=feed_mark) == []
    finally:
        for http in https:
            await http.aclose()
        await feed.close()
        await close_all([*watchers, *clients])
