"""The registry contract for rooms (tests/backends/registry_rooms.py) on Redis and Redis
Cluster, and the room feed reporting a gap after its connection came back."""

from __future__ import annotations

import pytest

from hub.stores.registry.base import (
    RoomGap,
)
from tests.backends.registry_rooms import *  # noqa: F403
from tests.backends.registry_rooms import FeedReader
from tests.support import eventually


@pytest.mark.redis
async def test_room_feed_reports_a_gap_after_reconnecting(
    redis_url: str, key_prefix: str, reader: type[FeedReader]
) -> None:
    """When the feed's connection drops, it resubscribes and reports a RoomGap."""
    from redis.asyncio import Redis

    from hub.stores.registry.redis import RedisRegistry

    registry = RedisRegistry(redis_url, key_prefix=key_prefix, channel=f"{key_prefix}p")
    await registry.start()
    feed = reader(registry)
    admin = Redis.from_url(redis_url)
    try:

        async def subscribed() -> bool:
            return int((await admin.pubsub_numsub(registry.channel))[0][1]) > 0

        await eventually(subscribed)
        await admin.client_kill_filter(_type="pubsub")

        async def gap() -> bool:
            return any(isinstance(e, RoomGap) for e in feed.events)

        await eventually(gap)
    finally:
        await admin.aclose()
        await feed.close()
        await registry.close()
