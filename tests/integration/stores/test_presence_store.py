"""The store contract on Redis and Redis Cluster (tests/backends/presence_store.py), and
what only Redis has: several nodes on one server, the channel's wire format, outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import pytest
from redis.asyncio import Redis

from hub.ops.config import Settings
from hub.stores.presence import PresenceStore, StoreUnavailable, open_store
from hub.stores.presence.base import Choice, Control, Gap, LiveConnection, Liveness, Profile
from hub.stores.presence.redis import RedisStore
from tests.backends.presence_store import *  # noqa: F403
from tests.backends.presence_store import (
    Backend,
    Feed,
    StoreFactory,
    assert_quiet_since,
    profile,
    raw_client,
)
from tests.support import eventually
from tests.support.redis_server import start_cluster, start_server


async def test_channel_payload_is_documented_msgpack(
    store: PresenceStore, backend: Backend
) -> None:
    """Other services read {v: 1, cursor, users: [entries]} from the channel with msgpack."""
    assert isinstance(store, RedisStore)
    host, port = "127.0.0.1", backend.servers[0].port
    client = Redis(host=host, port=port)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(store.channel, store.control)

        async def subscribed() -> bool:
            await store.publish_control(Control(user="probe", code=0))
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
            return message is not None

        await eventually(subscribed)
        view = await store.connect("n1", "c1", Profile("u1", "ann", "Ann"), "online")

        async def batch() -> Any:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
            if message is None or message["channel"] != store.channel.encode():
                return None
            return msgpack.unpackb(message["data"], raw=False)

        payload = await eventually(batch)
        assert payload == {"v": 1, "cursor": payload["cursor"], "users": [view.entry()]}
        assert payload["cursor"] >= view.at
    finally:
        await pubsub.aclose()
        await client.aclose()


# -- Redis only: several hub nodes, failures ---------------------------------------------


async def test_nodes_sharing_redis_see_each_other(
    make_store: StoreFactory, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """Two hub nodes on one Redis share presence and the feed; either may sweep."""
    one, two = await make_store(), await make_store()
    feed = await feed_of(two)
    await one.heartbeat("n1", 200, epoch=None)
    await one.connect("n1", "c1", profile("u1"), "online")
    assert (await two.get("u1")).status == "online"  # type: ignore[union-attr]
    await feed.wait_entries("u1", 1)

    async def reaped_by_the_other() -> bool:
        await asyncio.gather(two.sweep(), two.sweep())  # concurrent sweeps are safe
        user = await one.get("u1")
        return user is not None and user.status == "offline"

    await eventually(reaped_by_the_other)
    assert [e["status"] for e in await feed.wait_entries("u1", 2)] == ["online", "offline"]


async def test_a_node_reaped_while_it_restores_is_told_again(make_store: StoreFactory) -> None:
    """An expired node learns it from heartbeat; if a sweep reaps it while it restores,
    the next heartbeat answers False again, so the restore is redone."""
    store = await make_store()
    assert isinstance(store, RedisStore)
    live = [LiveConnection("c1", profile("u1"), "online")]
    epoch = await store.epoch()
    await store.heartbeat("n1", 100, epoch=epoch)
    await store.connect("n1", "c1", profile("u1"), "online")

    async def expired() -> bool:
        return bool(await store._nodes_expired(keys=[store.keys.nodes]))

    await eventually(expired)  # a sweeper reads the node as expired here ...
    assert await store.heartbeat("n1", 60_000, epoch=epoch) is Liveness.REAPED
    await store.restore("n1", live, epoch=epoch)
    await store._reap_node("n1", grace_ms=0)  # ... and reaps it after the restore
    await store._node_reaped(keys=[store.keys.nodes, store.keys.reaped], args=["n1", 60_000])
    assert (await store.get("u1")).status == "offline"  # type: ignore[union-attr]
    assert await store.heartbeat("n1", 60_000, epoch=epoch) is Liveness.REAPED
    await store.restore("n1", live, epoch=epoch)
    assert (await store.get("u1")).status == "online"  # type: ignore[union-attr]
    assert await store.heartbeat("n1", 60_000, epoch=epoch) is Liveness.KNOWN


async def test_a_dead_node_is_reaped_again_for_late_connections(store: PresenceStore) -> None:
    """A slow node may register a connection after it was reaped, then die: later sweeps
    reap it again, so that connection cannot stay online forever."""
    await store.heartbeat("n1", 100, epoch=None)
    await store.connect("n1", "c1", profile("u1"), "online")

    async def offline(user: str) -> bool:
        await store.sweep()
        return (await store.get(user)).status == "offline"  # type: ignore[union-attr]

    await eventually(lambda: offline("u1"))
    await store.connect("n1", "late", profile("u2"), "online")
    await eventually(lambda: offline("u2"))


async def _assert_every_call_unavailable(store: PresenceStore) -> None:
    calls: list[Callable[[], Awaitable[object]]] = [
        store.now,
        lambda: store.connect("n1", "c2", profile("u1"), "online"),
        lambda: store.disconnect("n1", "c1", "u1"),
        lambda: store.activity("n1", "c1", "u1", "away"),
        lambda: store.set_status("u1", status="busy"),
        lambda: store.set_profile(profile("u1")),
        lambda: store.drop_user("u1"),
        lambda: store.heartbeat("n1", 1000, epoch=1),
        lambda: store.restore("n1", [LiveConnection("c1", profile("u1"), "online")], epoch=1),
        store.sweep,
        lambda: store.remove_node("n1", grace=True),
        lambda: store.changes(None),
        lambda: store.users(["u1"]),
        lambda: store.get("u1"),
        lambda: store.find_username("u1"),
        lambda: store.publish_control(Control("u1", 4004)),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(call(), timeout=30)
        assert time.monotonic() - started < 15, call


@pytest.mark.redis
async def test_redis_down_raises_unavailable_then_recovers(
    key_prefix: str, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """Redis down: every call raises StoreUnavailable, none hangs. Back empty: the node is
    told LOST, scripts reload, restore brings back its connections and the choices it saw,
    and the feed reports a Gap."""
    server = start_server()
    try:
        settings = Settings(store=server.url, key_prefix=key_prefix, channel=f"{key_prefix}p")
        store = open_store(settings)
        await store.start()
        try:
            feed = await feed_of(store)
            epoch = await store.epoch()
            await store.heartbeat("n1", 60_000, epoch=epoch)
            await store.connect("n1", "c1", profile("u1"), "online")
            seen = await store.set_status("u1", status="busy", text="pre")
            assert seen is not None
            server.stop()
            await _assert_every_call_unavailable(store)
            server.start()  # same port, no data
            assert await store.heartbeat("n1", 60_000, epoch=epoch) is Liveness.LOST
            assert await store.epoch() > epoch
            choice = Choice("u1", "busy", "pre", seen.at)
            live = [LiveConnection("c1", profile("u1"), "online")]
            await store.restore("n1", live, epoch=epoch, choices=[choice])
            back = await store.get("u1")
            assert back is not None
            assert (back.status, back.text, back.name, back.connections) == ("busy", "pre", "U1", 1)

            async def gap() -> bool:
                return any(isinstance(e, Gap) for e in feed.events)

            await eventually(gap)
            await feed.ready()
        finally:
            await store.close()
    finally:
        server.cleanup()


@pytest.mark.redis
@pytest.mark.cluster
async def test_cluster_down_raises_unavailable(key_prefix: str) -> None:
    """A cluster whose nodes are gone answers StoreUnavailable from every call, in time."""
    cluster = start_cluster()
    try:
        settings = Settings(store=cluster.url, key_prefix=key_prefix, channel=f"{key_prefix}p")
        store = open_store(settings)
        await store.start()
        try:
            await store.connect("n1", "c1", profile("u1"), "online")
            cluster.stop()
            await _assert_every_call_unavailable(store)
        finally:
            await store.close()
    finally:
        cluster.cleanup()


@pytest.mark.redis
@pytest.mark.parametrize("scheme", ["redis://", "redis+cluster://"])
async def test_start_against_nothing_is_unavailable(scheme: str) -> None:
    """start() on an address where nothing listens raises StoreUnavailable, quickly."""
    from tests.support.redis_server import free_port

    store = open_store(Settings(store=f"{scheme}127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.start(), timeout=30)
    finally:
        await store.close()


async def test_concurrent_sweeps_apply_an_expiry_once(
    make_store: StoreFactory, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """Every node sweeps expiries; the one that is due is applied and published once."""
    one, two = await make_store(), await make_store()
    feed = await feed_of(two)
    await one.connect("n1", "c1", profile("u1"), "online")
    until = await one.now() + 300
    await one.set_status("u1", status="busy", text="call", until=until)

    async def expired() -> bool:
        await asyncio.gather(one.expire_statuses(), two.expire_statuses(),
                             one.expire_statuses(), two.expire_statuses())  # fmt: skip
        return (await two.get("u1")).status == "online"  # type: ignore[union-attr]

    await eventually(expired, interval=0.05)
    await assert_quiet_since(feed, two, "u1", 3)
    assert [e["status"] for e in feed.entries("u1")][:3] == ["online", "busy", "online"]


@pytest.mark.redis
async def test_last_seen_and_expiries_survive_a_redis_restart_with_persistence(
    key_prefix: str,
) -> None:
    """Kept in the user's hash and the bucket's expiry zset: a Redis restarted from its
    RDB file still knows the last seen, and a later sweep still applies the expiry."""
    server = start_server()
    try:
        settings = Settings(store=server.url, key_prefix=key_prefix, channel=f"{key_prefix}p")
        store = open_store(settings)
        await store.start()
        await store.connect("n1", "c1", profile("gone"), "online")
        await store.disconnect("n1", "c1", "gone", grace=False)
        seen = (await store.get("gone")).last_seen  # type: ignore[union-attr]
        await store.connect("n1", "c2", profile("busy"), "online")
        until = await store.now() + 1_000
        await store.set_status("busy", status="busy", until=until)
        await store.close()
        assert server.command("SAVE").startswith(b"+OK")
        server.restart()  # loads the RDB file the SAVE wrote
        store = open_store(settings)
        await store.start()
        try:
            assert seen > 0 and (await store.get("gone")).last_seen == seen  # type: ignore[union-attr]

            async def expired() -> bool:
                await store.expire_statuses()
                return (await store.get("busy")).status == "online"  # type: ignore[union-attr]

            await eventually(expired, interval=0.05)
        finally:
            await store.close()
    finally:
        server.cleanup()


async def test_a_loss_is_told_by_the_buckets_that_lost_data(
    make_store: StoreFactory, backend: Backend
) -> None:
    """One bucket loses its data (its master restarted empty): heartbeat says LOST, and a
    restore puts back choices in that bucket only; the others kept theirs."""
    store = await make_store(buckets=4)
    assert isinstance(store, RedisStore)
    lost_user = "u-lost"
    kept_user = next(u for u in (f"u{n}" for n in range(100))
                     if store.keys.bucket_of(u) != store.keys.bucket_of(lost_user))  # fmt: skip
    epoch = await store.epoch()
    assert await store.heartbeat("n1", 60_000, epoch=epoch) is Liveness.REAPED
    for n, user in enumerate((lost_user, kept_user)):
        await store.connect("n1", f"c{n}", profile(user), "online")
    views = {v.id: v for v in await store.users([lost_user, kept_user])}
    b = store.keys.bucket_of(lost_user)
    async with raw_client(backend) as client:
        await client.delete(b.user + lost_user, b.conns + lost_user, b.node + "n1", b.epoch)
    assert await store.heartbeat("n1", 60_000, epoch=epoch) is Liveness.LOST
    choices = [Choice(u, "busy", "seen", views[u].at + 1) for u in (lost_user, kept_user)]
    live = [LiveConnection(f"c{n}", profile(u), "online")
            for n, u in enumerate((lost_user, kept_user))]  # fmt: skip
    await store.restore("n1", live, epoch=epoch, choices=choices)
    found = {v.id: v for v in await store.users([lost_user, kept_user])}
    assert (found[lost_user].status, found[lost_user].text) == ("busy", "seen")
    assert (found[kept_user].status, found[kept_user].text) == ("online", "")
    assert await store.epoch() > epoch
