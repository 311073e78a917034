"""Partitions: one hub cut off from Redis by a TCP proxy, then healed, in two modes.

Two hubs share a Redis; hub 1 reaches it through :class:`~tests.support.proxy.TcpProxy`. A
cut either resets every connection and refuses new ones (``reset``), or accepts and
forwards nothing, so that hub 1 learns only from its own timeouts (``blackhole``). Each
round checks the whole story: hub 2 reaps hub 1's users within the node TTL plus one sweep;
hub 1 keeps every socket open and answers ``error unavailable`` and 503 meanwhile; writes
made on hub 2 during the cut (REST and ``/ws``: status, text, expiry, last-seen privacy)
are acknowledged; after the heal hub 1's users are back exactly as the store holds them,
every acknowledged write intact in the store, in REST on both hubs and on every subscriber
(hub 1's, hub 2's and the Redis channel's), none reverted even for a moment, and a socket
closed during the cut stays offline. A partition shorter than the TTL flaps nobody.

On Redis Cluster the proxy stands in front of the master that serves the heartbeats' slot
(``{<prefix>nodes}``), and that master announces the proxy's port (``CONFIG SET
cluster-announce-port``), so every client, hubs included, reaches it through the proxy as
it would through a network. The cut is limited to hub 1's connections: the proxy tells them
apart by their owning process in ``/proc``, so the hub runs unchanged and hub 2 keeps its
link. The cluster is this test's own, since the announcement would reroute other tests.

``HUB_PARTITION_REPS`` sets the rounds per mode (default 2, to keep the suite short; the
issue asks for 20). Each round prints its figures: reap time from the cut, exact return
and subscriber convergence from the heal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from redis.asyncio import Redis

from hub.api.http import iso_ms
from hub.stores.presence.base import UserView
from hub.stores.presence.redis import CLUSTER_RETRIES, TIMEOUT_S, RedisStore
from tests.support import eventually
from tests.support.faults import ChannelWatcher, close_all, metric
from tests.support.hubproc import ADMIN_HEADERS, HubProcess, user_token
from tests.support.proxy import Cut, TcpProxy
from tests.support.redis_server import ClusterServers, start_cluster
from tests.support.wsclient import PresenceMap, WsClient, connect_user
from tests.system.faults.conftest import Spawn, StoreFor

pytestmark = [pytest.mark.redis, pytest.mark.slow]

NODE_TTL_S = 1.5
SWEEP_S = min(1.0, NODE_TTL_S / 3)
GRACE_S = 1.0
#: Polling and scheduling on a loaded 2-core machine, on top of TTL + sweep.
MARGIN_S = 1.5
#: The bound on an ``unavailable`` answer: a store call into a black hole fails after the
#: client's socket timeout, once per attempt (on a cluster, the first and each retry), plus
#: the retries' backoff and scheduling.
ANSWER_S = (1 + CLUSTER_RETRIES) * TIMEOUT_S + 3.0
REPS = int(os.environ.get("HUB_PARTITION_REPS", "2"))
MINUTE_MS = 60_000
#: A partition well inside the TTL of the no-flap test.
SHORT_CUT_S = 1.0


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Want:
    """What the store must hold for a user after the heal."""

    status: str
    text: str = ""
    chosen: str = "online"
    until: int = 0
    hide: bool = False

    def of(self, view: UserView) -> bool:
        return (view.status, view.text, view.chosen, view.until, view.hide_last_seen) == (
            self.status, self.text, self.chosen, self.until, self.hide,
        )  # fmt: skip


@dataclass
class Rig:
    """Two hubs, hub 1 behind the proxy; a subscriber on each; the channel; the store."""

    cut_off: HubProcess
    other: HubProcess
    proxy: TcpProxy
    store: RedisStore
    http1: httpx.AsyncClient
    http2: httpx.AsyncClient
    watchers: list[WsClient]
    feed: ChannelWatcher
    #: Only these processes' connections are cut (None: every connection).
    only: list[int] | None = None
    #: The buckets hub 1 cannot reach during a cut (None: all of them).
    cut_buckets: set[str] | None = None
    figures: dict[str, list[float]] = field(default_factory=dict)

    def states(self) -> list[PresenceMap]:
        return [w.state for w in self.watchers] + [self.feed.state]

    def unreachable(self, user: str) -> bool:
        """True when hub 1 cannot write ``user`` during a cut (its bucket is cut off)."""
        bucket = self.store.keys.bucket_of(user).user
        return self.cut_buckets is None or bucket in self.cut_buckets

    def note(self, name: str, value: float) -> None:
        self.figures.setdefault(name, []).append(value)


@contextlib.asynccontextmanager
async def rig(
    spawn: Spawn, store_for: StoreFor, channel: str, *, proxy: TcpProxy, cut_off_url: str,
    direct_url: str, channel_url: str, only_hub1: bool = False, **env: str,
) -> AsyncIterator[Rig]:  # fmt: skip
    """Hub 1 on ``cut_off_url`` (through the proxy), hub 2 on ``direct_url``, a subscriber
    on each, the channel watched on ``channel_url``; healed and closed at the end."""
    settings = {"HUB_NODE_TTL_S": str(NODE_TTL_S), "HUB_OFFLINE_GRACE_S": str(GRACE_S), **env}
    hub1 = spawn("hub1", cut_off_url, HUB_NODE_ID=uid("hub1"), **settings)
    hub2 = spawn("hub2", direct_url, HUB_NODE_ID=uid("hub2"), **settings)
    store = await store_for(direct_url)
    feed = await ChannelWatcher(channel_url, channel).start()
    http1 = httpx.AsyncClient(base_url=hub1.url, trust_env=False, timeout=15)
    http2 = httpx.AsyncClient(base_url=hub2.url, trust_env=False, timeout=15)
    watchers: list[WsClient] = []
    try:
        for hub in (hub1, hub2):
            watchers.append(await connect_user(hub.ws_url, user_token(uid("w")), subscribe=True))
        yield Rig(hub1, hub2, proxy, store, http1, http2, watchers, feed,
                  only=[hub1.pid] if only_hub1 else None)  # fmt: skip
    finally:
        await proxy.heal()
        await close_all(watchers)
        await feed.close()
        await http1.aclose()
        await http2.aclose()


async def set_status_rest(http: httpx.AsyncClient, user: str, **body: object) -> None:
    """``users.setStatus`` as admin for ``user``; must be acknowledged (200)."""
    response = await http.post(
        "/api/v1/users.setStatus", json={"userId": user, **body}, headers=ADMIN_HEADERS
    )
    assert response.status_code == 200, (response.status_code, response.text)


async def views(rig: Rig, users: list[str]) -> dict[str, UserView]:
    """The store's truth about ``users``, read directly (never through the proxy's cut)."""
    return {v.id: v for v in await rig.store.users(users)}


def mismatches(state: PresenceMap, truth: dict[str, UserView]) -> list[str]:
    """Users on which a subscriber's state differs from the store (status, text, at,
    until); an absent entry is right for an offline user."""
    wrong = []
    for user, view in truth.items():
        entry = state.get(user)
        if entry is None:
            if view.status != "offline":
                wrong.append(user)
            continue
        shown_until = view.until if view.status != "offline" else 0
        if (entry["status"], entry["text"], entry["at"], entry.get("until", 0)) != (
            view.status, view.text, view.at, shown_until,
        ):  # fmt: skip
            wrong.append(user)
    return wrong


async def rest_agrees(http: httpx.AsyncClient, truth: dict[str, UserView]) -> list[str]:
    """Users on which a hub's REST (``users.presence?ids=``) differs from the store."""
    response = await http.get(
        "/api/v1/users.presence", params={"ids": ",".join(truth)}, headers=ADMIN_HEADERS
    )
    assert response.status_code == 200, (response.status_code, response.text[:300])
    listed = {u["_id"]: (u["status"], u.get("statusText", "")) for u in response.json()["users"]}
    online = {u: (v.status, v.text) for u, v in truth.items() if v.status != "offline"}
    return sorted(u for u in truth if listed.get(u) != online.get(u))


async def partition_round(rig: Rig, mode: Cut) -> None:
    """One cut and heal with writes on hub 2 in between; fails on any lost write, revert,
    ghost, late reap or divergent subscriber."""
    hub1, hub2 = rig.cut_off, rig.other
    a, b, c, d, e, f = (uid(n) for n in "abcdef")
    # g's status frame during the cut must need the part of the store hub 1 cannot reach.
    g = next(u for u in (uid("g") for _ in range(1000)) if rig.unreachable(u))
    on_hub1 = [a, b, c, d, e, f, g]
    clients: dict[str, WsClient] = {}
    d_on_hub2: WsClient | None = None
    try:
        for user in on_hub1:
            clients[user] = await connect_user(hub1.ws_url, user_token(user))
        d_on_hub2 = await connect_user(hub2.ws_url, user_token(d))
        now = await rig.store.now()
        # Choices made before the cut, through hub 1: what hub 1 remembers of its users.
        await clients[a].request({"op": "status", "status": "busy", "text": "pre"})
        await clients[b].request({"op": "status", "status": "away", "text": "pre3"})
        await clients[c].request(
            {"op": "status", "status": "busy", "text": "meeting", "until": now + 10 * MINUTE_MS}
        )
        # d also has a socket on hub 2: the reap leaves it online, so its re-registration
        # publishes nothing that would refresh what hub 1 remembers of it.
        await clients[d].request({"op": "status", "status": "busy", "text": "d pre"})
        await clients[e].request({"op": "status", "lastSeen": "nobody"})
        await clients[g].request({"op": "status", "text": "keep"})
        before = await views(rig, on_hub1)

        async def seen_before() -> bool:
            for state in rig.states():
                assert not mismatches(state, before)
            return True

        await eventually(seen_before)

        restores = await metric(rig.http1, "hub_restores_total")
        await rig.proxy.cut(mode, only=rig.only)
        cut_at = time.monotonic()
        # A socket that closes during the cut: its disconnect cannot reach the store.
        await clients.pop(f).close()
        reaped = [a, b, c, e, f, g]  # d also has a socket on hub 2

        async def reaped_everywhere() -> float:
            for state in rig.states()[1:]:  # hub 1's subscriber hears nothing now
                assert all(state.status(u) == "offline" for u in reaped)
                assert state.status(d) == "busy"
            return time.monotonic() - cut_at

        async def status_unavailable() -> None:
            started = time.monotonic()
            answer = await clients[g].request(
                {"op": "status", "status": "busy", "text": "never"}, expect="error",
                timeout=ANSWER_S,
            )  # fmt: skip
            assert answer["code"] == "unavailable", answer
            rig.note(f"{mode} unavailable answer s", time.monotonic() - started)

        async def rest_unavailable() -> None:
            response = await asyncio.wait_for(
                rig.http1.get("/api/v1/users.presence", headers=ADMIN_HEADERS), ANSWER_S
            )
            assert response.status_code == 503, response.text[:300]

        async def hub1_answers_unavailable() -> None:
            await asyncio.gather(status_unavailable(), rest_unavailable())

        reap = asyncio.create_task(
            eventually(reaped_everywhere, timeout=NODE_TTL_S + SWEEP_S + 10, interval=0.02)
        )
        await hub1_answers_unavailable()
        took = await reap
        rig.note(f"{mode} reap s", took)
        assert took <= NODE_TTL_S + SWEEP_S + MARGIN_S, f"reaped after {took:.2f} s"

        # Writes on hub 2 during the cut, each acknowledged: REST (admin) and /ws.
        now = await rig.store.now()
        c_until, d_until = now + 20 * MINUTE_MS, now + 30 * MINUTE_MS
        await set_status_rest(rig.http2, a, status="away", message="changed during")
        await set_status_rest(rig.http2, b, status="online", message="")
        await set_status_rest(rig.http2, c, status="busy", message="longer meeting",
                              expiresAt=iso_ms(c_until))  # fmt: skip
        await d_on_hub2.request({"op": "status", "status": "away", "text": "ws during",
                                 "until": d_until, "lastSeen": "nobody"})  # fmt: skip
        await set_status_rest(rig.http2, e, lastSeen="everyone")
        written = await views(rig, [a, b, c, d, e])
        want = {
            a: Want("away", "changed during", "away"),
            b: Want("online"),
            c: Want("busy", "longer meeting", "busy", c_until),
            d: Want("away", "ws during", "away", d_until, hide=True),
            e: Want("online"),
            f: Want("offline"),
            g: Want("online", "keep"),
        }
        # Nothing but the sockets of hub 1 was lost: hub 1's sockets are all open.
        assert not any(w.closed for w in rig.watchers)
        assert not any(client.closed for client in clients.values())

        await rig.proxy.heal()
        healed_at = time.monotonic()

        async def re_registered() -> bool:
            # Hub 1's restore is over: whatever it writes back is in the store by now.
            return await metric(rig.http1, "hub_restores_total") > restores

        await eventually(re_registered, timeout=15, interval=0.02)

        async def exact() -> float:
            found = await views(rig, on_hub1)
            wrong = {u: found[u] for u, w in want.items() if not w.of(found[u])}
            assert not wrong, wrong
            assert found[f].connections == 0, "a ghost connection of a closed socket"
            return time.monotonic() - healed_at

        rig.note(f"{mode} exact return s", await eventually(exact, timeout=15, interval=0.02))

        async def converged() -> float:
            truth = await views(rig, on_hub1)
            for state in rig.states():
                assert not mismatches(state, truth)
            for http in (rig.http1, rig.http2):
                assert not await rest_agrees(http, truth)
            return time.monotonic() - healed_at

        rig.note(f"{mode} converged s", await eventually(converged, timeout=15, interval=0.02))

        # Never reverted, not even for a moment: no entry newer than a write contradicts it.
        for user, view in written.items():
            for entries in [list(w.entries(user)) for w in rig.watchers] + [rig.feed.entries(user)]:
                for entry in entries:
                    if entry["at"] <= view.at or entry["status"] == "offline":
                        continue
                    shown = (entry["status"], entry["text"], entry.get("until", 0))
                    assert shown == (want[user].status, want[user].text, want[user].until), (
                        f"{user}: {entry} after the write {view}"
                    )
        # The hub-1 sockets that lived through it still work through the store.
        await clients[g].request({"op": "status", "text": "after"})
    finally:
        await close_all([*clients.values(), d_on_hub2])


def report(rig: Rig, what: str) -> None:
    """Print the figures the rounds measured (seen with ``pytest -s``)."""
    parts = [
        f"{name} min {min(v):.2f} max {max(v):.2f} (n={len(v)})"
        for name, v in sorted(rig.figures.items())
    ]
    print(f"\n{what}: " + "; ".join(parts))


@pytest.mark.parametrize("mode", [Cut.RESET, Cut.BLACKHOLE])
@pytest.mark.timeout(60 + 10 * REPS)  # a round takes 4-6 s; HUB_PARTITION_REPS=20 is long
async def test_writes_made_elsewhere_during_a_partition_survive_the_heal(
    mode: Cut, spawn: Spawn, store_for: StoreFor, redis_url: str, channel: str
) -> None:
    """Hub 1 cut off (reset or black hole) and healed, REPS times: reaped within TTL +
    sweep, its sockets kept, every write made on hub 2 meanwhile intact afterwards in the
    store, REST and every subscriber, no ghost, exact return."""
    host, port = redis_url.split("//", 1)[1].split("/", 1)[0].split(":")
    async with (
        TcpProxy((host, int(port))) as proxy,
        rig(spawn, store_for, channel, proxy=proxy, cut_off_url=proxy.url, direct_url=redis_url,
            channel_url=redis_url) as setup,
    ):  # fmt: skip
        for _ in range(REPS):
            await partition_round(setup, mode)
        report(setup, f"partition {mode} x{REPS}")


async def heartbeat_after(rig: Rig, redis: Redis, since_ms: int, ttl_s: float) -> bool:
    """Hub 1's heartbeat reached the store after ``since_ms`` (store clock): its expiry lies
    a whole TTL beyond that, so no sweep can reap it for this cut any more."""
    score = await redis.zscore(rig.store.keys.nodes, rig.cut_off.env["HUB_NODE_ID"])
    return score is not None and score >= since_ms + ttl_s * 1000


async def short_cut_round(
    rig: Rig, redis: Redis, mode: Cut, users: list[str], marker: WsClient, ttl_s: float
) -> None:
    """Cut for :data:`SHORT_CUT_S`, heal, and prove nothing happened to ``users``."""
    before = await views(rig, users)
    marks = [w.mark() for w in rig.watchers]
    feed_mark = len(rig.feed.messages)
    await rig.proxy.cut(mode)
    # The fault's duration (not a synchronisation: everything after it is polled).
    await asyncio.sleep(SHORT_CUT_S)
    await rig.proxy.heal()
    healed_ms = await rig.store.now()
    await eventually(lambda: heartbeat_after(rig, redis, healed_ms, ttl_s), timeout=15)
    # A marker change on hub 2 is published after anything the cut could have caused.
    text = f"after {mode}"
    await marker.request({"op": "status", "text": text})
    marker_user = marker.ready["user"]["id"] if marker.ready else ""
    for watcher, mark in zip(rig.watchers, marks, strict=True):
        await watcher.wait_for(
            lambda f: any(u["id"] == marker_user and u["text"] == text
                          for u in f.get("users", ())),
            after=mark, what="the marker",
        )  # fmt: skip

    async def marker_on_channel() -> bool:
        return any(x["text"] == text for x in rig.feed.entries(marker_user, after=feed_mark))

    await eventually(marker_on_channel)
    for user in users:
        assert rig.feed.entries(user, after=feed_mark) == [], f"{user} flapped"
        # Hub 1's subscriber may be sent the same states again (a resync), never new ones.
        for watcher, mark in zip(rig.watchers, marks, strict=True):
            ats = {entry["at"] for entry in watcher.entries(user, after=mark)}
            assert ats <= {before[user].at}, f"{user} flapped for a subscriber"
    assert await metric(rig.http1, "hub_restores_total") == 0
    assert await views(rig, users) == before


async def test_a_partition_shorter_than_the_ttl_flaps_nobody(
    spawn: Spawn, store_for: StoreFor, redis_url: str, channel: str
) -> None:
    """A cut of 1 s against a TTL of 4.5 s, in each mode: no entry about hub 1's users
    anywhere, no restore, and the store holds them exactly as before."""
    ttl_s = 3 * NODE_TTL_S  # sweep 1 s: a heartbeat within 2 s of the heal, 2.5 s to spare
    host, port = redis_url.split("//", 1)[1].split("/", 1)[0].split(":")
    async with (
        TcpProxy((host, int(port))) as proxy,
        rig(spawn, store_for, channel, proxy=proxy, cut_off_url=proxy.url, direct_url=redis_url,
            channel_url=redis_url, HUB_NODE_TTL_S=str(ttl_s)) as setup,
    ):  # fmt: skip
        users = [uid(f"s{i}") for i in range(4)]
        clients = [await connect_user(setup.cut_off.ws_url, user_token(u)) for u in users]
        marker = await connect_user(setup.other.ws_url, user_token(uid("marker")))
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            await clients[0].request({"op": "status", "status": "busy", "text": "short"})
            truth = await views(setup, users)

            async def all_seen() -> bool:
                for state in setup.states():
                    assert not mismatches(state, truth)
                return True

            await eventually(all_seen)
            for mode in (Cut.RESET, Cut.BLACKHOLE):
                await short_cut_round(setup, redis, mode, users, marker, ttl_s)
        finally:
            await redis.aclose()
            await close_all([*clients, marker])


# -- Redis Cluster: one master's link cut --------------------------------------------


@pytest.fixture
def own_cluster() -> Iterator[ClusterServers]:
    """A three-master cluster of this test's own: it reroutes one master through a proxy."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.cleanup()


async def announce(cluster: ClusterServers, master_port: int, port: int) -> None:
    """Make a master announce ``port`` (its bus port unchanged), and wait until every node
    of the cluster lists it there."""
    master = next(n for n in cluster.nodes if n.port == master_port)
    for option, value in (("cluster-announce-bus-port", master_port + 10000),
                          ("cluster-announce-port", port)):  # fmt: skip
        reply = master.command("CONFIG", "SET", option, str(value))
        assert reply.startswith(b"+OK"), reply
    needle = f"127.0.0.1:{port}@{master_port + 10000}".encode()

    async def everyone_knows() -> bool:
        return all(needle in n.command("CLUSTER", "NODES") for n in cluster.nodes)

    await eventually(everyone_knows, timeout=20, interval=0.05)


def master_of(cluster: ClusterServers, key: str) -> int:
    """The port of the master that serves ``key``'s slot."""
    node = cluster.nodes[0]
    slot = int(node.command("CLUSTER", "KEYSLOT", key)[1:].strip())
    for line in node.command("CLUSTER", "NODES").decode().splitlines()[1:]:
        fields = line.split()
        if "master" not in fields[2]:
            continue
        for part in fields[8:]:
            low, _, high = part.partition("-")
            if int(low) <= slot <= int(high or low):
                return int(fields[1].split(":")[1].split("@")[0])
    raise AssertionError(f"no master serves slot {slot}")


async def test_on_a_cluster_one_cut_master_link_loses_no_write(
    spawn: Spawn, store_for: StoreFor, own_cluster: ClusterServers, channel: str,
    key_prefix: str,
) -> None:  # fmt: skip
    """Hub 1's link to the master of the heartbeat slot cut (reset, then black hole) while
    hub 2 keeps it: hub 1 is reaped, hub 2's writes survive the heal everywhere."""
    port = master_of(own_cluster, f"{{{key_prefix}nodes}}")
    async with TcpProxy(("127.0.0.1", port)) as proxy:
        await announce(own_cluster, port, proxy.port)
        others = [n.address for n in own_cluster.nodes if n.port != port]
        url = "redis+cluster://" + ",".join([proxy.address, *others])
        # Any node hears every PUBLISH: the channel is watched on one the cut cannot touch.
        channel_url = next(n.url for n in own_cluster.nodes if n.port != port)
        async with rig(spawn, store_for, channel, proxy=proxy, cut_off_url=url, direct_url=url,
                       channel_url=channel_url, only_hub1=True) as setup:  # fmt: skip
            # The cluster lists that master at the port it announces: the proxy's.
            setup.cut_buckets = {
                b.user for b in setup.store.keys.buckets
                if master_of(own_cluster, b.user) == proxy.port
            }  # fmt: skip
            for mode in (Cut.RESET, Cut.BLACKHOLE):
                await partition_round(setup, mode)
            report(setup, "cluster partition")
