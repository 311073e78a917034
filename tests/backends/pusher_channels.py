"""One contract for the channel store on every backend: memory, Redis and Redis Cluster.
Each subscribe/unsubscribe reports exactly the transitions it made, and every member
change is published, in the same step, at a version the member list is read with.
Collected by tests/unit/pusher (memory) and tests/integration/pusher (Redis, Cluster)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from hub.ops.config import Settings
from hub.stores.channels import open_channels
from hub.stores.channels.base import (
    Cached,
    ChannelEvent,
    ChannelFeedEvent,
    ChannelStore,
    CountChange,
    Joined,
    Left,
    MemberChange,
    Probe,
)


@pytest.fixture
async def backend(
    request: pytest.FixtureRequest, key_prefix: str, backend_name: str
) -> AsyncIterator[ChannelStore]:
    name = backend_name
    url = "memory://"
    if name == "redis":
        url = request.getfixturevalue("redis_server").url
    elif name == "redis-cluster":
        url = request.getfixturevalue("redis_cluster").url
    state = open_channels(
        Settings(store=url, key_prefix=key_prefix, channel=f"{key_prefix}presence")
    )
    await state.start()
    try:
        yield state
    finally:
        await state.close()


def _joined(j: Joined) -> tuple[int, bool, bool]:
    return (j.status, j.occupied, j.added)


def _left(x: Left) -> tuple[bool, str, bool, bool]:
    return (x.removed, x.user_id, x.member_removed, x.vacated)


INFO = json.dumps({"name": "x"})


async def test_member_transitions_are_per_user_not_per_connection(backend):
    state = backend
    ch = "presence-a"
    sub = state.subscribe
    assert _joined(await sub("1", ch, "1.1", "n1", "u1", INFO, 10)) == (1, True, True)
    assert _joined(await sub("1", ch, "1.1", "n1", "u1", INFO, 10)) == (0, False, False)
    assert _joined(await sub("1", ch, "2.1", "n2", "u1", INFO, 10)) == (1, False, False)
    assert _joined(await sub("1", ch, "2.2", "n2", "u2", INFO, 10)) == (1, False, True)
    assert (await state.members("1", ch)).info == {"u1": INFO, "u2": INFO}
    assert await state.member_count("1", ch) == 2
    assert await state.subscription_count("1", ch) == 3
    assert await state.occupied("1") == [ch]
    assert await state.occupied("2") == []
    assert _left(await state.unsubscribe("1", ch, "1.1")) == (True, "u1", False, False)
    assert _left(await state.unsubscribe("1", ch, "1.1")) == (False, "", False, False)
    assert _left(await state.unsubscribe("1", ch, "2.1")) == (True, "u1", True, False)
    assert not await state.has_member("1", ch, "u1")
    assert _left(await state.unsubscribe("1", ch, "2.2")) == (True, "u2", True, True)
    assert await state.occupied("1") == []
    assert (await state.members("1", ch)).info == {}


async def test_member_limit_counts_users(backend):
    state = backend
    ch = "presence-small"
    assert (await state.subscribe("1", ch, "1.1", "n1", "u1", INFO, 2)).status == 1
    assert (await state.subscribe("1", ch, "1.2", "n1", "u2", INFO, 2)).status == 1
    assert (await state.subscribe("1", ch, "1.3", "n1", "u1", INFO, 2)).status == 1
    assert (await state.subscribe("1", ch, "1.4", "n1", "u3", INFO, 2)).status == -1
    assert await state.member_count("1", ch) == 2
    assert await state.subscription_count("1", ch) == 3


async def test_node_subscriptions_for_reaping(backend):
    state = backend
    await state.subscribe("1", "presence-a", "1.1", "n1", "u1", INFO, 10)
    await state.subscribe("1", "news", "1.1", "n1", "", "null", 10)
    await state.subscribe("1", "news", "2.1", "n2", "", "null", 10)
    assert await state.node_subscriptions("1", "n1") == [("news", "1.1"), ("presence-a", "1.1")]
    # Two reapers at once: each subscription is removed, and reported, once.
    subs = await state.node_subscriptions("1", "n1")
    results = await asyncio.gather(*(state.unsubscribe("1", c, s) for c, s in subs * 2))
    assert sum(r.removed for r in results) == 2
    assert sum(r.member_removed for r in results) == 1
    await state.forget_node("1", "n1")
    assert await state.node_subscriptions("1", "n1") == []
    assert await state.subscription_count("1", "news") == 1


async def _live_reader(state: ChannelStore, got: list[ChannelFeedEvent]) -> asyncio.Task[None]:
    """A reader of the store's feed, returned once its subscription is live (it heard a
    probe: until then, published events may be lost)."""
    ready = asyncio.Event()

    async def read() -> None:
        async for event in state.events():
            if isinstance(event, Probe):
                ready.set()
            else:
                got.append(event)

    reader = asyncio.create_task(read())
    async with asyncio.timeout(10):
        while not ready.is_set():
            await state.publish(Probe("test"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), 0.1)
    return reader


async def _until(got: list[ChannelFeedEvent], n: int) -> None:
    async with asyncio.timeout(10):
        while len(got) < n:
            await asyncio.sleep(0.01)


async def test_the_feed_reaches_every_reader(backend):
    state = backend
    got: list[ChannelFeedEvent] = []
    reader = await _live_reader(state, got)
    try:
        await state.publish(ChannelEvent("1", "x", "{}", "9.9"))
        await _until(got, 1)
        assert got == [ChannelEvent("1", "x", "{}", "9.9")]
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def test_member_changes_are_published_in_version_order_with_the_list(backend):
    """Every member change comes on the feed at a version; a member list read with its
    version holds exactly the changes at or below it."""
    state = backend
    ch = "presence-v"
    got: list[ChannelFeedEvent] = []
    reader = await _live_reader(state, got)
    try:
        first = await state.subscribe("1", ch, "1.1", "n1", "u1", INFO, 10)
        assert first.added and first.version > 0
        again = await state.subscribe("1", ch, "1.2", "n1", "u1", INFO, 10)
        assert not again.added and again.version == first.version  # no change, no version
        listed = await state.members("1", ch)
        assert listed.version == first.version and listed.info == {"u1": INFO}
        second = await state.subscribe("1", ch, "1.3", "n1", "u2", INFO, 10)
        assert second.version == first.version + 1
        await state.unsubscribe("1", ch, "1.1")  # u1 still has 1.2: no change
        left = await state.unsubscribe("1", ch, "1.2")
        assert left.member_removed and left.version == second.version + 1
        await _until(got, 3)
        changes = [e for e in got if isinstance(e, MemberChange)]
        assert [(c.version, c.user_id, c.info, c.exclude) for c in changes] == [
            (first.version, "u1", INFO, "1.1"),
            (second.version, "u2", INFO, "1.3"),
            (left.version, "u1", None, ""),
        ]
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def test_concurrent_joins_give_each_version_once(backend):
    """Joins racing on one channel: every member change has its own version, and a list
    read at the end is at the last one."""
    state = backend
    ch = "presence-race"
    joined = await asyncio.gather(
        *(state.subscribe("1", ch, f"1.{i}", "n1", f"u{i}", INFO, 100) for i in range(20))
    )
    versions = sorted(j.version for j in joined)
    assert versions == list(range(versions[0], versions[0] + 20))
    listed = await state.members("1", ch)
    assert listed.version == versions[-1] and len(listed.info) == 20


async def test_counted_changes_publish_the_channel_count_in_order(backend):
    """A subscribe or unsubscribe asked to count publishes the channel's new number of
    subscriptions in the same step, and reports it; one not asked publishes none."""
    state = backend
    ch = "room-counted"
    got: list[ChannelFeedEvent] = []
    reader = await _live_reader(state, got)
    try:
        first = await state.subscribe("1", ch, "1.1", "n1", "", "null", 10, counts=True)
        second = await state.subscribe("1", ch, "2.1", "n2", "", "null", 10, counts=True)
        again = await state.subscribe("1", ch, "2.1", "n2", "", "null", 10, counts=True)
        quiet = await state.subscribe("1", ch, "2.2", "n2", "", "null", 10)
        left = await state.unsubscribe("1", ch, "1.1", counts=True)
        gone = await state.unsubscribe("1", ch, "1.1", counts=True)  # not subscribed
        assert [first.subscriptions, second.subscriptions, again.subscriptions] == [1, 2, 2]
        assert (quiet.subscriptions, left.subscriptions, gone.removed) == (3, 2, False)
        # A barrier: the counts were published before it, in order.
        await state.publish(ChannelEvent("1", ch, "{}"))
        await _until(got, 4)
        counts = [(e.channel, e.count) for e in got if isinstance(e, CountChange)]
        assert counts == [(ch, 1), (ch, 2), (ch, 2)]
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def test_a_cache_channel_keeps_its_last_event_and_reports_a_miss_once(backend):
    """The last event put is read back with its id; a read finding none is the first miss
    of its window only once, and a put ends the window."""
    state = backend
    ch = "cache-weather"
    assert await state.cache_get("1", ch, 60_000) == Cached(None, first_miss=True)
    assert await state.cache_get("1", ch, 60_000) == Cached(None, first_miss=False)
    await state.cache_put("1", ch, "e1", '{"event":"a"}', 60_000)
    await state.cache_put("1", ch, "e2", '{"event":"b","data":"x\\ny"}', 60_000)
    assert await state.cache_get("1", ch, 60_000) == Cached('{"event":"b","data":"x\\ny"}', "e2")
    assert await state.cache_get("2", ch, 60_000) == Cached(None, first_miss=True)
    assert await state.cache_get("1", "cache-other", 60_000) == Cached(None, first_miss=True)


async def test_a_cached_event_expires_with_its_time_to_live(backend):
    """An event kept for a short time is gone after it, and the next read is a first miss."""
    state = backend
    ch = "cache-brief"
    await state.cache_put("1", ch, "e1", "{}", 100)
    assert (await state.cache_get("1", ch, 50)).frame == "{}"
    async with asyncio.timeout(10):
        while (await state.cache_get("1", ch, 50)).frame is not None:
            await asyncio.sleep(0.05)
    async with asyncio.timeout(10):
        while not (await state.cache_get("1", ch, 50)).first_miss:
            await asyncio.sleep(0.02)
