"""The SDK's change-stream consumer against a real Redis (and a hub served in process for
recovery by snapshot):

- batches come in stream order with their entry ids, and acked ones are gone for good;
- a consumer behind the stream's retention gets a snapshot and says so; a stream trimmed
  under a slow group, or lost by Redis, is reported as a gap, and a quiet one is not;
- on a Redis Cluster the consumer merges every bucket.

(A consumer killed mid-batch is tests/system/clients/test_stream_kill.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from hub.clients.stream import StreamBatch, StreamConsumer
from hub.stores.presence.base import Profile
from hub.stores.presence.redis import RedisStore
from tests.support.hubproc import TEST_ADMIN_KEY
from tests.support.inproc import InProcessHub

pytestmark = pytest.mark.redis


WAIT_S = 20.0


@pytest.fixture
async def store(redis_url: str, key_prefix: str) -> AsyncIterator[RedisStore]:
    s = RedisStore(redis_url, key_prefix=key_prefix, channel=f"{key_prefix}presence",
                   grace_ms=0)  # fmt: skip
    await s.start()
    yield s
    await s.close()


async def _take(it: AsyncIterator[StreamBatch], n: int) -> list[StreamBatch]:
    async def run() -> list[StreamBatch]:
        return [await anext(it) for _ in range(n)]

    return await asyncio.wait_for(run(), WAIT_S)


async def _pending(redis_url: str, key: str, group: str) -> int:
    r = Redis.from_url(redis_url)
    try:
        info = await r.xpending(key, group)
        return int(info["pending"])
    finally:
        await r.aclose()


async def test_batches_in_order_with_ids_and_ack(
    redis_url: str, key_prefix: str, store: RedisStore
) -> None:
    c = StreamConsumer(redis_url, "svc", "w1", key_prefix=key_prefix, block_ms=200)
    async with c:
        await c.start()  # the group starts at "$": what happens from now on
        for n in range(5):
            await store.connect("n1", f"c{n}", Profile(f"u{n}"), "online")
        it = aiter(c)
        got = await _take(it, 5)
        assert [b.users[0]["id"] for b in got] == [f"u{n}" for n in range(5)]
        assert all(b.id and not b.gap for b in got)
        assert got == sorted(got, key=lambda b: tuple(map(int, b.id.split("-"))))
        assert await _pending(redis_url, f"{key_prefix}changes", "svc") == 5
        for b in got:
            await c.ack(b)
        assert await _pending(redis_url, f"{key_prefix}changes", "svc") == 0


@pytest.fixture
def hub(redis_url: str, key_prefix: str) -> Iterator[InProcessHub]:
    process = InProcessHub({"HUB_STORE": redis_url, "HUB_KEY_PREFIX": key_prefix,
                            "HUB_CHANNEL": f"{key_prefix}presence"}).start()  # fmt: skip
    try:
        yield process
    finally:
        process.stop()
    process.assert_no_tracebacks()


async def test_consumer_behind_retention_gets_a_snapshot_and_says_so(
    redis_url: str, key_prefix: str, store: RedisStore, hub: InProcessHub
) -> None:
    key = f"{key_prefix}changes"
    c = StreamConsumer(redis_url, "late", "w1", key_prefix=key_prefix, block_ms=200,
                       api_url=hub.url, api_key=TEST_ADMIN_KEY)  # fmt: skip
    async with c:
        await c.start()
        await store.connect("n1", "c1", Profile("alice"), "online")
        it = aiter(c)
        (first,) = await _take(it, 1)
        await c.ack(first)
        # The consumer is away while more happens than the stream keeps: carol's change is
        # trimmed before the group reads it (retention, here applied at once with XTRIM).
        await store.connect("n1", "c2", Profile("carol"), "online")
        await store.connect("n1", "c3", Profile("bob"), "online")
        await store.disconnect("n1", "c1", "alice", grace=False)
        r = Redis.from_url(redis_url)
        try:
            last = (await r.xrevrange(key, count=1))[0][0].decode()
            await r.execute_command("XTRIM", key, "MINID", last)
            assert await r.xlen(key) == 1
        finally:
            await r.aclose()
        (gap,) = await _take(it, 1)
        assert gap.gap and gap.full and gap.id == ""
        assert sorted(u["id"] for u in gap.users) == ["bob", "carol"]
        assert c.gaps == 1
        (after,) = await _take(it, 1)
        assert not after.gap and after.id == last
        assert after.users[0]["id"] == "alice" and after.users[0]["status"] == "offline"
        await c.ack(after)


async def test_gap_without_api_url_is_reported_empty(
    redis_url: str, key_prefix: str, store: RedisStore
) -> None:
    key = f"{key_prefix}changes"
    c = StreamConsumer(redis_url, "late", "w1", key_prefix=key_prefix, block_ms=200)
    async with c:
        await c.start()
        await store.connect("n1", "c1", Profile("alice"), "online")
        await store.connect("n1", "c2", Profile("bob"), "online")
        r = Redis.from_url(redis_url)
        try:
            await r.execute_command("XTRIM", key, "MAXLEN", "1")
        finally:
            await r.aclose()
        it = aiter(c)
        (gap,) = await _take(it, 1)
        assert gap.gap and not gap.full and gap.users == []
        (after,) = await _take(it, 1)
        assert after.users[0]["id"] == "bob"


@pytest.mark.cluster
async def test_cluster_consumer_merges_every_bucket(cluster_url: str, key_prefix: str) -> None:
    s = RedisStore(cluster_url, key_prefix=key_prefix, channel=f"{key_prefix}presence")
    await s.start()
    c = StreamConsumer(cluster_url, "svc", "w1", key_prefix=key_prefix, block_ms=200)
    try:
        async with c:
            await c.start()
            users = [f"user{n}" for n in range(30)]
            for uid in users:
                await s.connect("n1", f"c-{uid}", Profile(uid), "online")
            it = aiter(c)
            got = await _take(it, 30)
            assert sorted(b.users[0]["id"] for b in got) == sorted(users)
            assert len({b.stream for b in got}) > 1
            for b in got:
                await c.ack(b)
    finally:
        await s.close()


async def test_real_retention_trims_a_slow_group_and_the_gap_is_reported(
    redis_url: str, key_prefix: str
) -> None:
    """No XTRIM by hand: a store with a 1 s window trims the stream itself as it appends."""
    key = f"{key_prefix}changes"
    s = RedisStore(redis_url, key_prefix=key_prefix, channel=f"{key_prefix}presence",
                   window_ms=1000, grace_ms=0)  # fmt: skip
    await s.start()
    c = StreamConsumer(redis_url, "slow", "w1", key_prefix=key_prefix, block_ms=200)
    r = Redis.from_url(redis_url)
    try:
        async with c:
            await c.start()
            await s.connect("n1", "c1", Profile("alice"), "online")
            it = aiter(c)
            (first,) = await _take(it, 1)
            await c.ack(first)
            # The consumer reads nothing while changes go on, until the stream's own trim
            # passed the group's position (polled against a deadline).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            n = 0
            while True:
                await s.set_status("alice", status="busy" if n % 2 else "away")
                n += 1
                if n % 50 == 0:
                    info = await r.xinfo_stream(key)
                    if (
                        tuple(map(int, info["first-entry"][0].split(b"-")))
                        > tuple(map(int, first.id.split("-")))
                        and info["entries-added"] - 1 > info["length"]
                    ):
                        break
                assert loop.time() < deadline, "the stream was never trimmed"
            (gap,) = await _take(it, 1)
            assert gap.gap and c.gaps == 1
            (after,) = await _take(it, 1)
            assert not after.gap and after.users[0]["id"] == "alice"
    finally:
        await r.aclose()
        await s.close()


async def test_a_new_group_on_a_quiet_stream_sees_no_false_gap(
    redis_url: str, key_prefix: str
) -> None:
    """Entries from before the group existed being trimmed is no gap: the group starts
    after them ("$"), whatever the trim removes later."""
    key = f"{key_prefix}changes"
    r = Redis.from_url(redis_url)
    for n in range(1, 101):
        await r.xadd(key, {"d": b"old"}, id=f"{n}-0")  # long before the window
    s = RedisStore(redis_url, key_prefix=key_prefix, channel=f"{key_prefix}presence",
                   window_ms=1000, grace_ms=0)  # fmt: skip
    await s.start()
    c = StreamConsumer(redis_url, "new", "w1", key_prefix=key_prefix, block_ms=200)
    try:
        async with c:
            await c.start()
            n = 0
            while True:  # appends trim the old entries, before the group reads anything
                await s.connect("n1", f"c{n}", Profile(f"u{n}"), "online")
                n += 1
                info = await r.xinfo_stream(key)
                if info["first-entry"][1] != {b"d": b"old"}:
                    break
                assert n < 5000, "the old entries were never trimmed"
            got = await _take(aiter(c), n)
            assert not any(b.gap for b in got) and c.gaps == 0
            assert sorted(b.users[0]["id"] for b in got) == sorted(f"u{i}" for i in range(n))
    finally:
        await r.aclose()
        await s.close()


async def test_a_stream_lost_by_redis_is_reported_as_a_gap(
    redis_url: str, key_prefix: str, store: RedisStore
) -> None:
    """The stream and its groups vanish (as after a restart without persistence): the
    consumer makes its group again and says that changes were lost."""
    key = f"{key_prefix}changes"
    c = StreamConsumer(redis_url, "svc", "w1", key_prefix=key_prefix, block_ms=200)
    r = Redis.from_url(redis_url)
    try:
        async with c:
            await c.start()
            await store.connect("n1", "c1", Profile("alice"), "online")
            it = aiter(c)
            (first,) = await _take(it, 1)
            await c.ack(first)
            await r.delete(key)
            await store.connect("n1", "c2", Profile("bob"), "online")  # lost with the group
            (gap,) = await _take(it, 1)
            assert gap.gap and c.gaps == 1
            await store.connect("n1", "c3", Profile("carol"), "online")
            (after,) = await _take(it, 1)
            assert not after.gap and after.users[0]["id"] == "carol"
    finally:
        await r.aclose()
