"""The store scripts append every published batch to the durable change stream.

Real Redis and a real three-master cluster: one stream ``<prefix>changes`` on one Redis,
one stream per bucket, in the bucket's slot, on a cluster. Each entry's ``d`` is the same
msgpack map the pub/sub channel carries, and the stream is trimmed to the window.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgpack
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from hub.delivery.stream import decode_entries, stream_client, stream_keys
from hub.ops.config import Settings
from hub.stores.presence.base import Profile
from hub.stores.presence.redis import RedisStore
from tests.support import eventually
from tests.support.faults import ChannelWatcher

pytestmark = pytest.mark.redis


async def _store(url: str, key_prefix: str, window_s: float = 600.0) -> RedisStore:
    store = RedisStore.from_settings(
        Settings(store=url, key_prefix=key_prefix, channel=f"{key_prefix}presence",
                 window_s=window_s, offline_grace_s=0)
    )  # fmt: skip
    await store.start()
    return store


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis | RedisCluster]:
    r = stream_client(redis_url)
    yield r
    await r.aclose()


async def test_every_batch_is_appended_as_published(
    redis_url: str, key_prefix: str, client: Redis
) -> None:
    watcher = await ChannelWatcher(redis_url, f"{key_prefix}presence").start()
    store = await _store(redis_url, key_prefix)
    try:
        assert stream_keys(key_prefix) == (f"{key_prefix}changes",)
        await store.connect("n1", "c1", Profile("alice", "alice", "Alice"), "online")
        await store.set_status("alice", status="busy", text="Lunch")
        await store.set_status("alice", status="busy", text="Lunch")  # no change: no entry
        await store.disconnect("n1", "c1", "alice", grace=False)
        raw = await client.xrange(f"{key_prefix}changes")
        entries = decode_entries(f"{key_prefix}changes", raw)
        assert [e.users[0]["status"] for e in entries] == ["online", "busy", "offline"]
        assert entries[1].users[0]["text"] == "Lunch"
        assert list(raw[0][1]) == [b"d"]
        payload = msgpack.unpackb(raw[0][1][b"d"], raw=False)
        assert payload["v"] == 1 and payload["cursor"] == entries[0].cursor
        # The same map as the pub/sub message.
        await eventually(lambda: _count(watcher, 3))
        assert [msgpack.unpackb(m[b"d"], raw=False) for _, m in raw] == watcher.messages
    finally:
        await store.close()
        await watcher.close()


async def _count(watcher: ChannelWatcher, n: int) -> bool:
    return len(watcher.messages) >= n


async def test_the_stream_is_trimmed_to_the_window(
    redis_url: str, key_prefix: str, client: Redis
) -> None:
    key = f"{key_prefix}changes"
    # Entries from long before the window: the next append trims them. MINID ~ drops whole
    # macro nodes only (stream-node-max-entries, 100 by default), so of 250 old entries the
    # last node's 50 may stay, the 200 before must go.
    for n in range(1, 251):
        await client.xadd(key, {"d": b"old"}, id=f"{n}-0")
    store = await _store(redis_url, key_prefix, window_s=1.0)
    try:
        await store.connect("n1", "c1", Profile("bob"), "online")
        raw = await client.xrange(key)
        old = [e[1][b"d"] for e in raw].count(b"old")
        assert old <= 100, old
        assert raw[-1][1][b"d"] != b"old"
    finally:
        await store.close()


@pytest.mark.cluster
async def test_cluster_has_one_stream_per_bucket(cluster_url: str, key_prefix: str) -> None:
    store = await _store(cluster_url, key_prefix)
    client = stream_client(cluster_url)
    try:
        keys = stream_keys(key_prefix, cluster=True)
        assert len(keys) == 16 and keys[3] == f"{{{key_prefix}b3}}:changes"
        users = [f"user{n}" for n in range(40)]
        for uid in users:
            await store.connect("n1", f"c-{uid}", Profile(uid), "online")
        seen: dict[str, str] = {}
        for key in keys:
            for e in decode_entries(key, await client.xrange(key)):
                for u in e.users:
                    seen[u["id"]] = key
        assert sorted(seen) == sorted(users)
        for uid, key in seen.items():
            assert key == store.keys.bucket_of(uid).stream
        assert len(set(seen.values())) > 1
    finally:
        await client.aclose()
        await store.close()
