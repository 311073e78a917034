"""The store contract, one suite for every backend: memory, Redis, Redis Cluster.

Every test runs against each backend through the same :class:`PresenceStore` calls; Redis
is a real server (see ``tests/support``). Collected by tests/unit/stores (memory) and
tests/integration/stores (Redis, Redis Cluster, and the tests only Redis has). A test owns
a fresh key prefix and channel, so the session servers are shared without flushing. Timing
never relies on fixed sleeps: short graces, TTLs and windows are polled with a deadline
(:func:`eventually`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from hub.model.presence import MAX_UNTIL_AHEAD_MS, Entry
from hub.ops.config import Settings
from hub.stores.local_feed import FEED_LIMIT
from hub.stores.presence import PresenceStore, open_store
from hub.stores.presence.base import (
    Batch,
    Choice,
    Control,
    Event,
    Gap,
    LiveConnection,
    Liveness,
    Profile,
)
from hub.stores.presence.memory import MemoryStore
from hub.stores.presence.redis import SKEW_SLACK_MS, RedisStore
from tests.support import eventually
from tests.support.redis_server import RedisServer

ENTRY_KEYS = {"id", "username", "name", "status", "text", "at"}


@dataclass
class Backend:
    name: str
    url: str
    servers: list[RedisServer] = field(default_factory=list)


@pytest.fixture
def backend(request: pytest.FixtureRequest, backend_name: str) -> Backend:
    """The backend of this run (``backend_name`` comes from the tier: tests/conftest.py)."""
    name = backend_name
    if name == "memory":
        return Backend(name, "memory://")
    if name == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return Backend(name, server.url, [server])
    cluster = request.getfixturevalue("redis_cluster")
    return Backend(name, cluster.url, list(cluster.nodes))


StoreFactory = Callable[..., Awaitable[PresenceStore]]


@pytest.fixture
async def make_store(backend: Backend, key_prefix: str) -> AsyncIterator[StoreFactory]:
    """Stores on the backend, sharing one key prefix (as hub nodes share one Redis)."""
    stores: list[PresenceStore] = []

    async def make(
        *,
        window_ms: int = 600_000,
        grace_ms: int = 5_000,
        url: str | None = None,
        last_seen: str = "everyone",
        buckets: int = 0,
    ) -> PresenceStore:
        settings = Settings(
            store=url or backend.url,
            key_prefix=key_prefix,
            channel=f"{key_prefix}presence",
            window_s=window_ms / 1000,
            offline_grace_s=grace_ms / 1000,
            last_seen=last_seen,
            buckets=buckets,
        )
        store = open_store(settings)
        stores.append(store)
        await store.start()
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> PresenceStore:
    return await make_store()


class Feed:
    """Collects a store's ``events()`` in a background task."""

    def __init__(self, store: PresenceStore) -> None:
        self.store = store
        self.events: list[Event] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with aclosing(self.store.events()) as events:
            async for event in events:
                self.events.append(event)

    async def ready(self) -> None:
        """Wait until the feed hears new messages (pub/sub subscribes asynchronously)."""
        probe = f"probe-{uuid.uuid4().hex}"

        async def heard() -> bool:
            await self.store.publish_control(Control(user=probe, code=0))
            return any(isinstance(e, Control) and e.user == probe for e in self.events)

        await eventually(heard, interval=0.05)

    def entries(self, user: str) -> list[Entry]:
        return [u for e in self.events if isinstance(e, Batch) for u in e.users if u["id"] == user]

    async def wait_entries(self, user: str, count: int) -> list[Entry]:
        async def enough() -> list[Entry]:
            found = self.entries(user)
            return found if len(found) >= count else []

        return await eventually(enough)

    async def close(self) -> None:
        self.task.cancel()
        with suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def feed_of() -> AsyncIterator[Callable[[PresenceStore], Awaitable[Feed]]]:
    """Ready feeds on stores, closed after the test."""
    feeds: list[Feed] = []

    async def make(store: PresenceStore) -> Feed:
        feed = Feed(store)
        feeds.append(feed)
        await feed.ready()
        return feed

    yield make
    for feed in feeds:
        await feed.close()


async def assert_quiet_since(feed: Feed, store: PresenceStore, user: str, seen: int) -> None:
    """Nothing was published for ``user`` after its first ``seen`` entries: a marker change
    of the same user (same bucket, so same ordered stream) must come next."""
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    await store.set_status(user, text=marker)
    entries = await feed.wait_entries(user, seen + 1)
    assert entries[seen]["text"] == marker, entries[seen:]


def profile(uid: str, username: str = "", name: str = "") -> Profile:
    return Profile(id=uid, username=username or uid, name=name or uid.upper())


async def index_members(store: PresenceStore, backend: Backend) -> set[str]:
    """The users in the change index (white-box: the index is not part of the API)."""
    if isinstance(store, MemoryStore):
        return set(store._indexed)
    assert isinstance(store, RedisStore)
    found: set[str] = set()
    async with raw_client(backend) as client:
        for bucket in store.keys.buckets:
            found.update(await client.zrange(bucket.idx, 0, -1))
    return found


class raw_client:
    """A plain redis-py client on the backend, for looking behind the store's back."""

    def __init__(self, backend: Backend) -> None:
        self.client: Redis | RedisCluster
        if backend.name == "redis":
            self.client = Redis.from_url(backend.url, decode_responses=True)
        else:
            nodes = [ClusterNode("127.0.0.1", s.port) for s in backend.servers]
            self.client = RedisCluster(startup_nodes=nodes, decode_responses=True)

    async def __aenter__(self) -> Any:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()


# -- connections and the effective status --------------------------------------------


async def test_connect_registers_an_online_user(store: PresenceStore) -> None:
    """A first connection makes a user known and online, with its profile."""
    view = await store.connect(
        "n1", "c1", Profile("u1", "Alice", "Alice A", "a.png", 2.5), "online"
    )
    assert (view.id, view.username, view.name, view.status) == ("u1", "Alice", "Alice A", "online")
    assert (view.chosen, view.text, view.connections) == ("online", "", 1)
    assert (view.avatar, view.utc_offset) == ("a.png", 2.5)
    assert view.at > 0 and view.last_login > 0
    assert await store.get("u1") == view


async def test_new_connection_reporting_away_makes_user_away(store: PresenceStore) -> None:
    """A connection may open idle: the user is away, not online."""
    view = await store.connect("n1", "c1", profile("u1"), "away")
    assert view.status == "away"


async def test_effective_status_follows_connection_states(store: PresenceStore) -> None:
    """Online if any connection is online, else away."""
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.connect("n2", "c2", profile("u1"), "online")
    assert await store.activity("n1", "c1", "u1", "away")
    assert (await store.get("u1")).status == "online"  # type: ignore[union-attr]
    assert await store.activity("n2", "c2", "u1", "away")
    assert (await store.get("u1")).status == "away"  # type: ignore[union-attr]
    assert await store.activity("n1", "c1", "u1", "online")
    view = await store.get("u1")
    assert view is not None and view.status == "online" and view.connections == 2


async def test_activity_for_unknown_connection_is_false(store: PresenceStore) -> None:
    """activity() answers False for a connection or user the store does not know."""
    assert not await store.activity("n1", "nope", "ghost", "away")
    await store.connect("n1", "c1", profile("u1"), "online")
    assert not await store.activity("n1", "other", "u1", "away")
    assert (await store.get("u1")).status == "online"  # type: ignore[union-attr]


async def test_chosen_status_overrides_connections(store: PresenceStore) -> None:
    """away, busy and offline (invisible) override; online means automatic again."""
    await store.connect("n1", "c1", profile("u1"), "online")
    for chosen in ("away", "busy", "offline"):
        view = await store.set_status("u1", status=chosen)
        assert view is not None and (view.status, view.chosen) == (chosen, chosen)
    await store.activity("n1", "c1", "u1", "away")
    view = await store.set_status("u1", status="online")
    assert view is not None and (view.status, view.chosen) == ("away", "online")


async def test_invisible_user_leaves_the_snapshot(store: PresenceStore) -> None:
    """A user who chose offline is offline to everyone, so absent from the snapshot."""
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.set_status("u1", status="offline")
    snapshot = await store.changes(None)
    assert snapshot.full and "u1" not in {u.id for u in snapshot.users}


async def test_chosen_status_persists_across_connections(store: PresenceStore) -> None:
    """The chosen status survives the user going offline and coming back."""
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.set_status("u1", status="busy", text="in a meeting")
    await store.disconnect("n1", "c1", "u1", grace=False)
    assert (await store.get("u1")).status == "offline"  # type: ignore[union-attr]
    view = await store.connect("n1", "c2", profile("u1"), "online")
    assert (view.status, view.chosen, view.text) == ("busy", "busy", "in a meeting")


async def test_set_status_of_unknown_user_is_none(store: PresenceStore) -> None:
    """An unknown user gets None and is not created."""
    assert await store.set_status("ghost", status="busy", text="x") is None
    assert await store.get("ghost") is None


async def test_text_is_kept_whatever_the_status(store: PresenceStore) -> None:
    """The status text stays through status changes and offline; None keeps, '' clears."""
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.set_status("u1", text="lunch")
    await store.set_status("u1", status="away")
    assert (await store.get("u1")).text == "lunch"  # type: ignore[union-attr]
    await store.disconnect("n1", "c1", "u1", grace=False)
    view = await store.get("u1")
    assert view is not None and (view.status, view.text) == ("offline", "lunch")
    view = await store.set_status("u1", status="busy")
    assert view is not None and view.text == "lunch"
    view = await store.set_status("u1", text="")
    assert view is not None and view.text == ""


async def test_profile_changes_are_visible_changes(store: PresenceStore) -> None:
    """connect and set_profile update username and name; empty values keep them."""
    first = await store.connect("n1", "c1", Profile("u1", "alice", "Alice"), "online")
    second = await store.connect("n1", "c2", Profile("u1", "", ""), "online")
    assert (second.username, second.name, second.at) == ("alice", "Alice", first.at)
    third = await store.set_profile(Profile("u1", "alice2", "Alice Two", "pic.png", -3.5))
    assert third is not None
    assert (third.username, third.name, third.avatar, third.utc_offset) == (
        "alice2", "Alice Two", "pic.png", -3.5)  # fmt: skip
    assert third.at > first.at and third.status == "online"


async def test_set_profile_creates_only_when_asked(store: PresenceStore) -> None:
    """create=False leaves an unknown user unknown; create=True registers it offline."""
    assert await store.set_profile(Profile("u1", "bob", "Bob"), create=False) is None
    assert await store.get("u1") is None
    view = await store.set_profile(Profile("u1", "bob", "Bob"))
    assert view is not None and (view.status, view.connections) == ("offline", 0)
    assert [u.id for u in await store.users(["u1"])] == ["u1"]
    assert "u1" not in {u.id for u in (await store.changes(None)).users}
    again = await store.set_profile(Profile("u1", "", "Bobby"), create=False)
    assert again is not None and (again.username, again.name) == ("bob", "Bobby")


# -- stamps and the feed ---------------------------------------------------------------


async def test_at_is_stamped_only_on_visible_changes_and_increases(store: PresenceStore) -> None:
    """Each visible change stamps a larger at; writes that change nothing keep it."""
    stamps = [(await store.connect("n1", "c1", profile("u1"), "online")).at]

    async def at() -> int:
        view = await store.get("u1")
        assert view is not None
        return view.at

    # Visible changes, back to back (several may fall in one millisecond).
    await store.activity("n1", "c1", "u1", "away")
    stamps.append(await at())
    await store.activity("n1", "c1", "u1", "online")
    stamps.append(await at())
    for text in ("a", "b", "c"):
        await store.set_status("u1", text=text)
        stamps.append(await at())
    assert stamps == sorted(set(stamps)), stamps
    # Writes that change nothing visible.
    before = await at()
    await store.activity("n1", "c1", "u1", "online")
    await store.set_status("u1", text="c")
    await store.set_status("u1", status="online")
    await store.connect("n1", "c2", profile("u1"), "away")  # another online one remains
    await store.set_profile(Profile("u1", "u1", "U1"))
    await store.disconnect("n1", "c2", "u1")
    assert await at() == before


async def test_writes_that_change_nothing_publish_nothing(
    store: PresenceStore, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """No-op writes publish no batch; real changes publish one entry each."""
    feed = await feed_of(store)
    view = await store.connect("n1", "c1", profile("u1"), "online")
    entries = await feed.wait_entries("u1", 1)
    assert entries[0] == view.entry()
    await store.activity("n1", "c1", "u1", "online")
    await store.set_status("u1", status="online", text="")
    await store.connect("n2", "c2", profile("u1"), "online")
    await store.disconnect("n2", "c2", "u1")
    await assert_quiet_since(feed, store, "u1", 1)


async def test_batches_carry_entries_and_a_cursor(
    store: PresenceStore, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """Each batch holds user entries {id, username, name, status, text, at} and a cursor
    at or above every at in it."""
    feed = await feed_of(store)
    await store.connect("n1", "c1", Profile("u1", "Zoë", "Zoë Ü"), "online")
    await store.set_status("u1", status="busy", text="naïve ✓")
    entries = await feed.wait_entries("u1", 2)
    assert set(entries[0]) == ENTRY_KEYS
    assert (entries[1]["username"], entries[1]["status"], entries[1]["text"]) == (
        "Zoë", "busy", "naïve ✓")  # fmt: skip
    assert isinstance(entries[1]["at"], int) and entries[1]["at"] > entries[0]["at"]
    for event in feed.events:
        if isinstance(event, Batch):
            assert all(u["at"] <= event.cursor for u in event.users)


async def test_control_messages_reach_the_feed(
    store: PresenceStore, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """publish_control arrives on every feed, fields intact."""
    feed = await feed_of(store)
    await store.publish_control(Control(user="u1", code=4004, reason="kicked"))

    async def arrived() -> bool:
        return Control(user="u1", code=4004, reason="kicked") in feed.events

    await eventually(arrived)


async def test_feed_reports_a_gap_after_lost_messages(
    store: PresenceStore, backend: Backend, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """When the feed loses messages it yields Gap, then carries on."""
    feed = await feed_of(store)
    if isinstance(store, MemoryStore):
        # Overflow the bounded queue: nothing yields to the consumer in between.
        for n in range(FEED_LIMIT + 1):
            await store.publish_control(Control(user=f"flood{n}", code=0))
    else:
        for server in backend.servers:
            server.command("CLIENT", "KILL", "TYPE", "pubsub")

    async def gap() -> bool:
        return any(isinstance(e, Gap) for e in feed.events)

    await eventually(gap)
    await feed.ready()
    await store.connect("n1", "c1", profile("u1"), "online")
    await feed.wait_entries("u1", 1)


# -- the offline grace -----------------------------------------------------------------


async def test_last_disconnect_keeps_status_until_grace_ends(
    make_store: StoreFactory, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """Inside the grace the user keeps its status; a sweep after the deadline makes it
    offline and publishes that."""
    store = await make_store(grace_ms=300)
    feed = await feed_of(store)
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.activity("n1", "c1", "u1", "away")
    await store.disconnect("n1", "c1", "u1")
    view = await store.get("u1")
    assert view is not None and (view.status, view.connections) == ("away", 0)
    assert "u1" in {u.id for u in (await store.changes(None)).users}

    async def offline() -> bool:
        await store.sweep()
        user = await store.get("u1")
        return user is not None and user.status == "offline"

    await eventually(offline)
    entries = await feed.wait_entries("u1", 3)
    assert [e["status"] for e in entries] == ["online", "away", "offline"]
    assert "u1" not in {u.id for u in (await store.changes(None)).users}


async def test_reconnect_inside_grace_publishes_nothing(
    make_store: StoreFactory, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """A page reload (disconnect, reconnect inside the grace) does not flicker."""
    store = await make_store(grace_ms=30_000)
    feed = await feed_of(store)
    first = await store.connect("n1", "c1", profile("u1"), "online")
    await feed.wait_entries("u1", 1)
    await store.disconnect("n1", "c1", "u1")
    await store.sweep()  # the deadline is far: nothing to end
    view = await store.connect("n1", "c2", profile("u1"), "online")
    assert (view.status, view.at, view.connections) == ("online", first.at, 1)
    await store.sweep()
    assert (await store.get("u1")).status == "online"  # type: ignore[union-attr]
    await assert_quiet_since(feed, store, "u1", 1)


async def test_disconnect_without_grace_is_offline_now(store: PresenceStore) -> None:
    """grace=False (forced disconnect) skips the grace."""
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.disconnect("n1", "c1", "u1", grace=False)
    view = await store.get("u1")
    assert view is not None and (view.status, view.connections) == ("offline", 0)


async def test_disconnect_of_one_of_several_connections(store: PresenceStore) -> None:
    """Other connections keep the user; their states decide the status."""
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.connect("n1", "c2", profile("u1"), "away")
    await store.disconnect("n1", "c1", "u1", grace=False)
    view = await store.get("u1")
    assert view is not None and (view.status, view.connections) == ("away", 1)
    await store.disconnect("n1", "unknown", "u1")
    await store.disconnect("n1", "c1", "nobody")
    assert (await store.get("u1")) == view


async def test_drop_user_skips_the_grace(store: PresenceStore) -> None:
    """Kick and ban: every connection goes, offline now, even during a grace."""
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.connect("n2", "c2", profile("u1"), "online")
    await store.drop_user("u1")
    view = await store.get("u1")
    assert view is not None and (view.status, view.connections) == ("offline", 0)
    assert not await store.activity("n1", "c1", "u1", "away")
    await store.connect("n1", "c3", profile("u2"), "online")
    await store.disconnect("n1", "c3", "u2")  # into the grace
    await store.drop_user("u2")
    assert (await store.get("u2")).status == "offline"  # type: ignore[union-attr]
    await store.drop_user("ghost")
    assert await store.get("ghost") is None


# -- nodes: heartbeat, reaping, draining ------------------------------------------------


async def test_heartbeat_knows_registered_nodes(store: PresenceStore) -> None:
    """REAPED for a node the store does not hold, KNOWN once registered, REAPED after its
    removal: the store kept its data, so none of it is LOST."""
    epoch = await store.epoch()
    assert await store.heartbeat("n1", 60_000, epoch=epoch) is Liveness.REAPED
    assert await store.heartbeat("n1", 60_000, epoch=epoch) is Liveness.KNOWN
    await store.remove_node("n1", grace=False)
    assert await store.heartbeat("n1", 60_000, epoch=epoch) is Liveness.REAPED
    assert await store.heartbeat("n1", 60_000, epoch=None) is Liveness.KNOWN


async def test_heartbeat_under_an_older_epoch_is_lost(store: PresenceStore) -> None:
    """A node registered before the store's data began (the epoch moved since) is told
    LOST, known or not; under the current epoch it is not."""
    epoch = await store.epoch()
    assert await store.heartbeat("n1", 60_000, epoch=epoch - 1) is Liveness.LOST
    assert await store.heartbeat("n1", 60_000, epoch=epoch - 1) is Liveness.LOST
    assert await store.heartbeat("n1", 60_000, epoch=epoch) is Liveness.KNOWN


async def test_nodes_alive_counts_live_heartbeats(store: PresenceStore) -> None:
    """nodes_alive() (the metric) counts nodes whose heartbeat has not expired."""
    assert isinstance(store, MemoryStore | RedisStore)
    assert await store.nodes_alive() == 0
    await store.heartbeat("short", 1, epoch=None)
    await store.heartbeat("long", 60_000, epoch=None)

    async def one_left() -> bool:
        assert isinstance(store, MemoryStore | RedisStore)
        return await store.nodes_alive() == 1

    await eventually(one_left)


async def test_sweep_reaps_a_node_whose_heartbeat_expired(
    store: PresenceStore, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """A dead node's connections go without grace; live nodes are untouched."""
    feed = await feed_of(store)
    epoch = await store.epoch()
    await store.heartbeat("dead", 200, epoch=epoch)
    await store.heartbeat("live", 60_000, epoch=epoch)
    await store.connect("dead", "c1", profile("u1"), "online")
    await store.connect("dead", "c2", profile("u2"), "online")
    await store.connect("live", "c3", profile("u2"), "away")
    await store.connect("live", "c4", profile("u3"), "online")

    async def reaped() -> bool:
        await store.sweep()
        user = await store.get("u1")
        return user is not None and user.status == "offline"

    await eventually(reaped)
    u2, u3 = await store.users(["u2", "u3"])
    assert (u2.status, u2.connections, u3.status) == ("away", 1, "online")
    assert [e["status"] for e in await feed.wait_entries("u1", 2)] == ["online", "offline"]
    assert await store.heartbeat("dead", 60_000, epoch=epoch) is Liveness.REAPED
    assert await store.heartbeat("live", 60_000, epoch=epoch) is Liveness.KNOWN


async def test_remove_node_without_grace(store: PresenceStore) -> None:
    """Reaping removes only that node's connections, offline now."""
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.connect("n1", "c2", profile("u2"), "online")
    await store.connect("n2", "c3", profile("u2"), "online")
    await store.remove_node("n1", grace=False)
    u1, u2 = await store.users(["u1", "u2"])
    assert (u1.status, u1.connections) == ("offline", 0)
    assert (u2.status, u2.connections) == ("online", 1)
    await store.disconnect("n1", "c1", "u1")  # late disconnect of a reaped connection
    assert (await store.get("u1")) == u1


async def test_remove_node_with_grace_is_a_drain(make_store: StoreFactory) -> None:
    """A draining node's users keep their status through the grace, then go offline."""
    store = await make_store(grace_ms=300)
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.remove_node("n1", grace=True)
    view = await store.get("u1")
    assert view is not None and (view.status, view.connections) == ("online", 0)

    async def offline() -> bool:
        await store.sweep()
        user = await store.get("u1")
        return user is not None and user.status == "offline"

    await eventually(offline)


async def test_reconnect_elsewhere_during_a_drain_keeps_the_user(
    make_store: StoreFactory, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """SIGTERM drain: the client reconnects to another node inside the grace, no flap."""
    store = await make_store(grace_ms=30_000)
    feed = await feed_of(store)
    await store.connect("n1", "c1", profile("u1"), "online")
    await feed.wait_entries("u1", 1)
    await store.remove_node("n1", grace=True)
    await store.connect("n2", "c2", profile("u1"), "online")
    await store.sweep()
    assert (await store.get("u1")).status == "online"  # type: ignore[union-attr]
    await assert_quiet_since(feed, store, "u1", 1)


async def test_restore_re_registers_connections(store: PresenceStore) -> None:
    """restore() brings back the connections a node still holds."""
    live = [
        LiveConnection("c1", profile("u1"), "online"),
        LiveConnection("c2", profile("u2"), "away"),
        LiveConnection("c3", profile("u2"), "away"),
    ]
    await store.restore("n1", live, epoch=await store.epoch())
    u1, u2 = await store.users(["u1", "u2"])
    assert (u1.status, u2.status, u2.connections) == ("online", "away", 2)
    await store.remove_node("n1", grace=False)
    assert {u.status for u in await store.users(["u1", "u2"])} == {"offline"}


# -- restoring: after a reap nothing but connections, after a loss nothing newer lost --------


async def test_restore_after_a_reap_writes_back_no_choice(store: PresenceStore) -> None:
    """A reaped node re-registers its connections and nothing else: a choice it offers is
    refused when the store lost nothing, however new it claims to be, so writes made
    elsewhere meanwhile (status, text, expiry, privacy) stay."""
    epoch = await store.epoch()
    await store.connect("n1", "c1", profile("u1"), "online")
    seen = await store.set_status("u1", status="busy", text="pre")
    assert seen is not None
    await store.remove_node("n1", grace=False)  # n1 was cut off past its TTL
    until = await store.now() + 60_000
    await store.set_status("u1", status="away", text="changed", until=until, hide_last_seen=True)
    live = [LiveConnection("c1", profile("u1"), "online")]
    stale = Choice("u1", "busy", "pre", seen.at + 10**9)
    await store.restore("n1", live, epoch=epoch, choices=[stale])
    view = await store.get("u1")
    assert view is not None
    assert (view.status, view.chosen, view.text, view.until) == ("away", "away", "changed", until)
    assert (view.hide_last_seen, view.connections) == (True, 1)
    assert await store.node_connections("n1") == {"c1": "u1"}


async def test_restore_after_a_loss_puts_back_what_the_store_lost(store: PresenceStore) -> None:
    """Registered before the store's data began (its epoch is older), a node puts back a
    user the store does not know: its connections, its profile, the choice it saw."""
    until = await store.now() + 60_000
    live = [
        LiveConnection("c1", Profile("u1", "alice", "Alice", "a.png", 1.5), "away"),
        LiveConnection("c2", Profile("u1", "alice", "Alice", "a.png", 1.5), "online"),
    ]
    await store.restore("n1", live, epoch=0, choices=[Choice("u1", "busy", "pre", 5, until)])
    view = await store.get("u1")
    assert view is not None
    assert (view.status, view.chosen, view.text, view.until) == ("busy", "busy", "pre", until)
    assert (view.username, view.name, view.avatar, view.utc_offset) == (
        "alice", "Alice", "a.png", 1.5,
    )  # fmt: skip
    assert view.connections == 2 and view.last_login > 0
    assert await store.find_username("ALICE") == "u1"


async def test_restore_after_a_loss_never_overwrites_a_newer_choice(
    store: PresenceStore,
) -> None:
    """After a loss a node's memory of a choice is taken only where the store holds none
    made after it was seen, and it leaves the user's privacy alone."""
    await store.connect("n2", "c9", profile("u1"), "online")
    newer = await store.set_status("u1", status="away", text="newer", hide_last_seen=True)
    assert newer is not None
    live = [LiveConnection("c1", profile("u1"), "online")]
    older = Choice("u1", "busy", "stale", newer.at - 1)
    await store.restore("n1", live, epoch=0, choices=[older])
    view = await store.get("u1")
    assert view is not None and (view.chosen, view.text, view.connections) == ("away", "newer", 2)
    later = Choice("u1", "busy", "seen later", newer.at + 1)
    await store.restore("n1", live, epoch=0, choices=[later])
    view = await store.get("u1")
    assert view is not None
    assert (view.status, view.text, view.hide_last_seen) == ("busy", "seen later", True)


async def test_the_restore_that_saw_more_wins_in_either_order(
    make_store: StoreFactory,
) -> None:
    """Two nodes restore one user after a loss: the choice seen later wins, whichever
    restore comes first (each takes the version it was seen at)."""
    store = await make_store()
    early, late = Choice("u1", "busy", "early", 100), Choice("u1", "away", "late", 200)
    await store.restore("n1", [LiveConnection("a", profile("u1"), "online")], epoch=0,
                        choices=[late])  # fmt: skip
    await store.restore("n2", [LiveConnection("b", profile("u1"), "online")], epoch=0,
                        choices=[early])  # fmt: skip
    await store.restore("n1", [LiveConnection("c", profile("u2"), "online")], epoch=0,
                        choices=[Choice("u2", "busy", "early", 100)])  # fmt: skip
    await store.restore("n2", [LiveConnection("d", profile("u2"), "online")], epoch=0,
                        choices=[Choice("u2", "away", "late", 200)])  # fmt: skip
    for view in await store.users(["u1", "u2"]):
        assert (view.status, view.text, view.connections) == ("away", "late", 2), view


async def test_a_due_expiry_restores_what_it_leaves(store: PresenceStore) -> None:
    """A choice whose ``until`` passed while the data was lost comes back as its expiry
    would have left it: automatic, no text, no expiry."""
    past = await store.now() - 1
    live = [LiveConnection("c1", profile("u1"), "online")]
    await store.restore("n1", live, epoch=0, choices=[Choice("u1", "busy", "call", 5, past)])
    view = await store.get("u1")
    assert view is not None
    assert (view.status, view.chosen, view.text, view.until) == ("online", "online", "", 0)


async def test_a_reaped_users_profile_stays_as_stored(store: PresenceStore) -> None:
    """Re-registering a known user leaves the profile the store holds (renamed elsewhere
    meanwhile), not the one the node's connection carried."""
    await store.connect("n1", "c1", profile("u1", "old", "Old Name"), "online")
    await store.remove_node("n1", grace=False)
    await store.set_profile(Profile("u1", "new", "New Name"), create=False)
    live = [LiveConnection("c1", profile("u1", "old", "Old Name"), "online")]
    await store.restore("n1", live, epoch=await store.epoch())
    view = await store.get("u1")
    assert view is not None and (view.username, view.name) == ("new", "New Name")
    assert (view.status, view.connections) == ("online", 1)
    assert await store.find_username("old") is None


# -- changes: delta inside the window, snapshot outside ---------------------------------


async def test_changes_inside_window_is_a_delta(store: PresenceStore) -> None:
    """Users changed at or after since, offline transitions included, full=False."""
    await store.connect("n1", "c0", profile("old"), "online")
    since = (await store.connect("n1", "c1", profile("u1"), "online")).at
    await store.connect("n1", "c2", profile("u2"), "online")
    await store.disconnect("n1", "c2", "u2", grace=False)
    changes = await store.changes(since)
    assert not changes.full
    by_id = {u.id: u for u in changes.users}
    assert set(by_id) >= {"u1", "u2"} and by_id["u2"].status == "offline"
    # A multi-bucket (cluster) store reads a little before the cursor for clock skew:
    # extra states are harmless, but nothing older than that slack may come back.
    slack = SKEW_SLACK_MS if isinstance(store, RedisStore) and store.keys.count > 1 else 0
    assert all(u.at >= since - slack for u in changes.users)
    assert [u.at for u in changes.users] == sorted(u.at for u in changes.users)


async def test_delta_range_is_inclusive_and_future_cursor_is_empty(store: PresenceStore) -> None:
    """since equal to an at includes that user; a since in the future gets an empty delta."""
    view = await store.connect("n1", "c1", profile("u1"), "online")
    assert "u1" in {u.id for u in (await store.changes(view.at)).users}
    future = await store.changes(await store.now() + 60_000)
    assert (future.full, future.users) == (False, [])


async def test_cursor_covers_the_answer_and_misses_nothing(store: PresenceStore) -> None:
    """Every at in an answer is at or below its cursor; a later change is at or above it."""
    for n in range(5):
        await store.connect("n1", f"c{n}", profile(f"u{n}"), "online")
        await store.set_status(f"u{n}", text="x")  # same user twice: stamps may run ahead
    top = max(u.at for u in await store.users([f"u{n}" for n in range(5)]))

    async def clock_caught_up() -> bool:
        return await store.now() > top

    await eventually(clock_caught_up)
    for answer in (await store.changes(None), await store.changes(top - 1)):
        assert answer.users and all(u.at <= answer.cursor for u in answer.users)
    cursor = (await store.changes(top)).cursor
    later = await store.set_status("u0", text="later")
    assert later is not None and later.at >= cursor
    assert "u0" in {u.id for u in (await store.changes(cursor)).users}


async def test_changes_outside_window_is_a_full_snapshot(make_store: StoreFactory) -> None:
    """None, or a cursor older than the window, gets every user not offline (full=True)."""
    store = await make_store(window_ms=1_000)
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.connect("n1", "c2", profile("u2"), "away")
    await store.connect("n1", "c3", profile("u3"), "online")
    await store.disconnect("n1", "c3", "u3", grace=False)
    await store.set_profile(Profile("u4", "reg", "Registered"))
    now = await store.now()
    for since in (None, now - 60_000, 0):
        answer = await store.changes(since)
        assert answer.full, since
        assert {u.id: u.status for u in answer.users} == {"u1": "online", "u2": "away"}
        assert answer.cursor >= now


async def test_window_edge_decides_delta_or_snapshot(make_store: StoreFactory) -> None:
    """A since just inside the window gets a delta; just past it, a snapshot."""
    store = await make_store(window_ms=1_000)
    epoch = await store.epoch()

    async def older_than_window() -> bool:
        return await store.now() - epoch > 1_200

    # Only a store that has recorded a whole window can answer a delta for all of it.
    await eventually(older_than_window, timeout=10)
    view = await store.connect("n1", "c1", profile("u1"), "online")
    inside = await store.changes(await store.now() - 500)
    assert not inside.full and [u.id for u in inside.users] == ["u1"]
    outside = await store.changes(view.at - 1_001)
    assert outside.full


async def test_cursor_from_before_the_data_began_gets_a_snapshot(
    make_store: StoreFactory,
) -> None:
    """A cursor older than the store's epoch (data lost since) is answered with a snapshot."""
    store = await make_store(window_ms=60_000)
    epoch = await store.epoch()
    await store.connect("n1", "c1", profile("u1"), "online")
    before = await store.changes(epoch - 1)
    assert before.full and [u.id for u in before.users] == ["u1"]
    after = await store.changes(epoch)
    assert not after.full


async def test_window_edge_is_inside(make_store: StoreFactory, backend: Backend) -> None:
    """A since exactly one window before the store clock gets a delta; 1 ms earlier, a
    snapshot. (White-box: the clock is pinned an hour ahead so the edge holds still.)"""
    store = await make_store(window_ms=10_000)
    await store.connect("n1", "c1", profile("u1"), "online")
    pinned = await store.now() + 3_600_000
    if isinstance(store, MemoryStore):
        store._clock = pinned
    else:
        assert isinstance(store, RedisStore)
        async with raw_client(backend) as client:
            for bucket in store.keys.buckets:
                await client.set(bucket.clock, pinned)
    edge = await store.changes(pinned - 10_000)
    assert (edge.full, edge.users, edge.cursor) == (False, [], pinned)
    assert (await store.changes(pinned - 10_001)).full


async def test_index_is_trimmed_to_one_window(make_store: StoreFactory, backend: Backend) -> None:
    """Changes older than the window leave the index; the index holds one window at most."""
    store = await make_store(window_ms=400)
    old = await store.connect("n1", "c1", profile("u1"), "online")
    assert "u1" in await index_members(store, backend)

    async def window_passed() -> bool:
        return await store.now() > old.at + 400

    await eventually(window_passed)
    await store.connect("n1", "c2", profile("u2"), "online")
    await store.sweep()  # buckets nobody wrote to are trimmed by the sweep
    # u2 may be trimmed too if this machine stalled for a window; u1 must be.
    assert await index_members(store, backend) <= {"u2"}
    snapshot = await store.changes(None)
    assert {u.id for u in snapshot.users} == {"u1", "u2"}


async def test_many_users_spread_over_buckets(store: PresenceStore) -> None:
    """Snapshot and delta merge every bucket; users() keeps the asked order."""
    ids = [f"user-{n}" for n in range(40)]
    for n, uid in enumerate(ids):
        await store.connect("n1", f"c{n}", profile(uid), "online" if n % 2 else "away")
    snapshot = await store.changes(None)
    assert sorted(u.id for u in snapshot.users) == sorted(ids)
    first = min(u.at for u in snapshot.users)
    delta = await store.changes(first)
    assert sorted(u.id for u in delta.users) == sorted(ids) and not delta.full
    asked = [*reversed(ids), "ghost", ids[3]]
    assert [u.id for u in await store.users(asked)] == [*reversed(ids), ids[3]]


async def test_large_answers_are_read_in_chunks(
    store: PresenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers too big for one script call (tiny limits here) are complete all the same."""
    monkeypatch.setattr("hub.stores.presence.redis.INLINE_ROWS", 4)
    monkeypatch.setattr("hub.stores.presence.redis.READ_CHUNK", 7)
    ids = [f"user-{n}" for n in range(150)]
    first = (await store.connect("n1", "c0", profile(ids[0]), "online")).at
    for n, uid in enumerate(ids[1:], start=1):
        await store.connect("n1", f"c{n}", profile(uid), "online")
    for uid in ids[:10]:
        await store.disconnect("n1", f"c{ids.index(uid)}", uid, grace=False)
    snapshot = await store.changes(None)
    assert sorted(u.id for u in snapshot.users) == sorted(ids[10:])
    delta = await store.changes(first)
    assert sorted(u.id for u in delta.users) == sorted(ids)
    assert {u.id for u in delta.users if u.status == "offline"} == set(ids[:10])
    assert [u.id for u in await store.users(ids)] == ids


async def test_reaping_a_big_node_takes_every_connection(
    store: PresenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node with many connections is reaped completely, even a few per script call."""
    monkeypatch.setattr("hub.stores.presence.redis.REAP_BATCH", 10)
    # Past 512 fields Redis stores a hash as a table, where HSCAN really goes in steps.
    live = [LiveConnection(f"c{n}", profile(f"user-{n % 250}"), "online") for n in range(700)]
    await store.restore("big", live, epoch=await store.epoch())
    await store.connect("other", "x", profile("user-0"), "away")
    await store.remove_node("big", grace=False)
    users = await store.users([f"user-{n}" for n in range(250)])
    assert {u.status for u in users[1:]} == {"offline"}
    assert (users[0].status, users[0].connections) == ("away", 1)


# -- reads ---------------------------------------------------------------------------


async def test_users_and_get_read_any_status(store: PresenceStore) -> None:
    """users() returns known users in order, offline ones included; get() None if unknown."""
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.connect("n1", "c2", profile("u2"), "online")
    await store.disconnect("n1", "c2", "u2", grace=False)
    assert [(u.id, u.status) for u in await store.users(["u2", "nope", "u1"])] == [
        ("u2", "offline"), ("u1", "online")]  # fmt: skip
    assert await store.users([]) == []
    assert await store.get("nope") is None


async def test_find_username_is_case_insensitive(store: PresenceStore) -> None:
    """Usernames resolve whatever their case; a renamed user gives up the old name."""
    await store.connect("n1", "c1", Profile("u1", "Alice"), "online")
    await store.set_profile(Profile("u2", "ÉMILE"))
    assert await store.find_username("alice") == "u1"
    assert await store.find_username("ALICE") == "u1"
    assert await store.find_username("émile") == "u2"
    assert await store.find_username("nobody") is None
    await store.set_profile(Profile("u1", "Alicia"))
    assert await store.find_username("alicia") == "u1"
    assert await store.find_username("alice") is None


# -- last seen -----------------------------------------------------------------------


async def test_going_offline_keeps_last_seen_on_offline_entries(
    store: PresenceStore, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """The change to offline is last seen: in the published entry, the view and deltas;
    an online entry does not carry it, and a reconnect does not erase it."""
    feed = await feed_of(store)
    since = await store.now()
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.disconnect("n1", "c1", "u1", grace=False)
    view = await store.get("u1")
    assert view is not None and view.status == "offline"
    assert view.last_seen == view.at and view.entry()["lastSeen"] == view.at
    online, offline = await feed.wait_entries("u1", 2)
    assert "lastSeen" not in online and offline["lastSeen"] == view.at
    delta = (await store.changes(since)).users
    assert [u.entry() for u in delta if u.id == "u1"] == [offline]
    back = await store.connect("n1", "c2", profile("u1"), "online")
    assert "lastSeen" not in back.entry() and back.last_seen == view.at


async def test_the_end_of_the_grace_is_last_seen(
    make_store: StoreFactory, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """A user who goes offline after the grace is last seen at that offline change."""
    store = await make_store(grace_ms=200)
    feed = await feed_of(store)
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.disconnect("n1", "c1", "u1")

    async def offline() -> Any:
        await store.sweep()
        user = await store.get("u1")
        return user is not None and user.status == "offline" and user

    user = await eventually(offline)
    assert user.last_seen == user.at
    assert (await feed.wait_entries("u1", 2))[1]["lastSeen"] == user.at


async def test_invisible_last_seen_stays_at_the_moment_it_went_invisible(
    store: PresenceStore, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """Choosing offline is going offline; staying connected invisibly, more connections,
    idle changes and the last disconnect move nothing."""
    feed = await feed_of(store)
    await store.connect("n1", "c1", profile("u1"), "online")
    invisible = await store.set_status("u1", status="offline")
    assert invisible is not None and invisible.entry()["lastSeen"] == invisible.at
    await store.activity("n1", "c1", "u1", "away")
    await store.connect("n1", "c2", profile("u1"), "online")
    await store.disconnect("n1", "c1", "u1", grace=False)
    await store.disconnect("n1", "c2", "u1", grace=False)
    after = await store.get("u1")
    assert after is not None and after.entry() == invisible.entry()
    await assert_quiet_since(feed, store, "u1", 2)
    assert (await store.get("u1")).entry()["lastSeen"] == invisible.at  # type: ignore[union-attr]


async def test_a_user_may_hide_its_last_seen(
    store: PresenceStore, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """Hidden: offline entries leave lastSeen out (it is still kept); shown again, the
    change is published with it."""
    feed = await feed_of(store)
    await store.connect("n1", "c1", profile("u1"), "online")
    hidden = await store.set_status("u1", hide_last_seen=True)
    assert hidden is not None and hidden.hide_last_seen
    await store.disconnect("n1", "c1", "u1", grace=False)
    view = await store.get("u1")
    assert view is not None and view.status == "offline" and view.last_seen > 0
    assert "lastSeen" not in view.entry() and view.shown_last_seen() == 0
    assert "lastSeen" not in (await feed.wait_entries("u1", 2))[1]
    shown = await store.set_status("u1", hide_last_seen=False)
    assert shown is not None and shown.at > view.at
    assert (await feed.wait_entries("u1", 3))[2]["lastSeen"] == view.last_seen


async def test_hub_wide_nobody_leaves_last_seen_out_everywhere(
    make_store: StoreFactory, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """HUB_LAST_SEEN=nobody: no entry, view or delta carries a last seen."""
    store = await make_store(last_seen="nobody")
    feed = await feed_of(store)
    since = await store.now()
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.disconnect("n1", "c1", "u1", grace=False)
    view = await store.get("u1")
    assert view is not None and view.status == "offline" and view.last_seen == 0
    assert "lastSeen" not in view.entry()
    assert all("lastSeen" not in e for e in await feed.wait_entries("u1", 2))
    assert all("lastSeen" not in u.entry() for u in (await store.changes(since)).users)


# -- status expiry ----------------------------------------------------------------------


async def test_a_status_expires_back_to_automatic(
    store: PresenceStore, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """At ``until`` the chosen status returns to online and the text clears, published as
    an ordinary change; until then entries carry ``until``."""
    feed = await feed_of(store)
    await store.connect("n1", "c1", profile("u1"), "online")
    until = await store.now() + 1_500
    busy = await store.set_status("u1", status="busy", text="In a meeting", until=until)
    assert busy is not None and busy.until == until and busy.entry()["until"] == until
    assert (await feed.wait_entries("u1", 2))[1]["until"] == until
    await store.expire_statuses()  # not due yet: nothing happens
    assert (await store.get("u1")).status == "busy"  # type: ignore[union-attr]

    async def expired() -> Any:
        await store.expire_statuses()
        user = await store.get("u1")
        return user is not None and user.status == "online" and user

    user = await eventually(expired, interval=0.05)
    assert (user.chosen, user.text, user.until) == ("online", "", 0)
    assert user.at >= until
    entry = (await feed.wait_entries("u1", 3))[2]
    assert (entry["status"], entry["text"], "until" in entry) == ("online", "", False)
    await store.expire_statuses()
    await assert_quiet_since(feed, store, "u1", 3)


async def test_a_status_without_until_clears_the_expiry(store: PresenceStore) -> None:
    """A later status (or text) without ``until`` replaces the expiry by none."""
    await store.connect("n1", "c1", profile("u1"), "online")
    until = await store.now() + 200
    await store.set_status("u1", status="busy", until=until)
    away = await store.set_status("u1", status="away")
    assert away is not None and away.until == 0 and "until" not in away.entry()

    async def past() -> bool:
        return await store.now() > until

    await eventually(past)
    await store.expire_statuses()
    assert (await store.get("u1")).status == "away"  # type: ignore[union-attr]


async def test_an_invisible_user_expires_to_online_without_showing_until(
    store: PresenceStore,
) -> None:
    """``until`` is not on an offline entry (it would show a status was chosen); the
    expiry still brings the invisible user back to online."""
    await store.connect("n1", "c1", profile("u1"), "online")
    until = await store.now() + 300
    view = await store.set_status("u1", status="offline", until=until)
    assert view is not None and view.until == until and "until" not in view.entry()

    async def expired() -> bool:
        await store.expire_statuses()
        return (await store.get("u1")).status == "online"  # type: ignore[union-attr]

    await eventually(expired, interval=0.05)


@pytest.mark.parametrize("bad", ["past", "now", "too far"])
async def test_until_out_of_range_is_refused_and_changes_nothing(
    store: PresenceStore, bad: str
) -> None:
    """``until`` must be ahead of the store clock by at most a year; else ValueError
    naming it, and the status stays as it was."""
    await store.connect("n1", "c1", profile("u1"), "online")
    now = await store.now()
    until = {"past": now - 10_000, "now": now - 1, "too far": now + MAX_UNTIL_AHEAD_MS + 60_000}
    with pytest.raises(ValueError, match="until must be"):
        await store.set_status("u1", status="busy", until=until[bad])
    view = await store.get("u1")
    assert view is not None and (view.status, view.until) == ("online", 0)


# -- a node's own connections, and reconciling them ---------------------------------------


async def test_node_connections_lists_what_the_store_holds_for_a_node(
    store: PresenceStore,
) -> None:
    """node_connections() is conn -> user for that node only, and forgets removed ones."""
    await store.connect("n1", "c1", profile("u1"), "online")
    await store.connect("n1", "c2", profile("u2"), "online")
    await store.connect("n2", "c3", profile("u1"), "online")
    assert await store.node_connections("n1") == {"c1": "u1", "c2": "u2"}
    await store.disconnect("n1", "c1", "u1", grace=False)
    assert await store.node_connections("n1") == {"c2": "u2"}
    assert await store.node_connections("nobody") == {}


async def test_reconcile_removes_connections_no_socket_backs(
    make_store: StoreFactory,
) -> None:
    """A live node drops stored connections it holds no socket for, but not in-flight ones."""
    from hub.node.node import Node

    store = await make_store(grace_ms=0)
    node = Node(Settings(node_id="n1", offline_grace_s=0), store)
    await store.connect("n1", "ghost", profile("u1"), "online")
    await store.connect("n1", "inflight", profile("u2"), "online")
    node.connecting.add("inflight")
    assert await node.reconcile() == 1
    u1, u2 = await store.users(["u1", "u2"])
    assert (u1.status, u2.status) == ("offline", "online")
    assert await store.node_connections("n1") == {"inflight": "u2"}
