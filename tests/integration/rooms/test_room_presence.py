"""Rooms across two nodes (tests/backends/rooms_presence.py): two hubs on one Redis (or
Cluster); and room subscribers recover when Redis drops every pub/sub connection."""

from __future__ import annotations

import pytest

from tests.backends.rooms import Connect, start_nodes
from tests.backends.rooms_presence import *  # noqa: F403
from tests.backends.rooms_presence import name, room_entries
from tests.support import eventually


@pytest.mark.redis
async def test_room_subscribers_recover_after_the_feeds_drop(
    redis_url: str, key_prefix: str, connect: Connect
) -> None:
    """When Redis drops every pub/sub connection, room subscribers get a fresh snapshot
    and membership changes flow again."""
    from redis.asyncio import Redis

    env = {"HUB_STORE": redis_url, "HUB_KEY_PREFIX": key_prefix,
           "HUB_CHANNEL": f"{key_prefix}presence", "HUB_OFFLINE_GRACE_S": "0"}  # fmt: skip
    one, two = start_nodes(env, 2)
    admin = Redis.from_url(redis_url)
    try:
        room, alice, carol = name("r"), name("alice"), name("carol")
        a = await connect(one, alice)
        await a.request({"op": "join", "room": room})
        watcher = await connect(two, name("w"))
        await watcher.subscribe({"room": room})
        mark = watcher.mark()
        await admin.client_kill_filter(_type="pubsub")
        await watcher.wait_for(
            lambda f: f.get("op") == "snapshot" and f.get("scope") == {"room": room},
            after=mark, what="a fresh room snapshot after the gap",
        )  # fmt: skip
        c = await connect(one, carol)

        async def joined() -> bool:
            # The feeds may still be resubscribing: join, leave and join again until the
            # watcher hears a join (pub/sub has no replay; the snapshot covered the rest).
            await c.request({"op": "join", "room": room})
            if any(e["member"] for e in room_entries(watcher, room, carol, after=mark)):
                return True
            await c.request({"op": "leave", "room": room})
            return False

        await eventually(joined, interval=0.2)
    finally:
        await admin.aclose()
        one.stop()
        two.stop()
    one.assert_no_tracebacks()
    two.assert_no_tracebacks()
