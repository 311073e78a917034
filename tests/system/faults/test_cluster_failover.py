"""A Redis Cluster master failover under two hubs: 3 masters + 3 replicas, users connected
and changing their status, kill -9 of the master holding the hubs' pub/sub connection.

While the replica is not yet promoted, store calls fail; each one must reach the client as
an ``error`` frame with code ``unavailable`` (or succeed), never as a closed socket. After
the promotion every user is online for every subscriber within 20 s, a change made on one
hub reaches the other, and every subscriber's state equals the store's exactly."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support import eventually
from tests.support.faults import agrees, close_all, open_clients, rest_presence, visible
from tests.support.hubproc import user_token
from tests.support.redis_server import ClusterServers, RedisServer, start_cluster
from tests.support.wsclient import MSGPACK, Frame, WsClient, connect_user
from tests.system.faults.conftest import Spawn, StoreFor

pytestmark = [pytest.mark.redis, pytest.mark.cluster, pytest.mark.slow]

USERS_PER_HUB = 15
#: After the promotion, how long until every user is online for every subscriber.
ONLINE_AFTER_PROMOTION_S = 20.0
#: Frames per second each client sends while the master is down (the hub allows 50).
LOAD_PER_S = 25


def answers(ref: str) -> Callable[[Frame], bool]:
    """Matches the ack or error frame that answers ``ref``."""
    return lambda frame: frame.get("op") in ("ack", "error") and frame.get("ref") == ref


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def replicated_cluster() -> Iterator[ClusterServers]:
    """A cluster of this test's own: three masters, one replica each (killed, not shared)."""
    cluster = start_cluster(replicas=1)
    try:
        yield cluster
    finally:
        cluster.cleanup()


def pubsub_master(cluster: ClusterServers) -> RedisServer:
    """The master the hubs' pub/sub connections are on (clients with subscriptions)."""
    for node in cluster.masters():
        if any(int(c.get("sub", "0")) > 0 for c in node.client_list()):
            return node
    raise AssertionError("no master holds a pub/sub connection of the hubs")


class Load:
    """Every client sends LOAD_PER_S requests a second (status texts, and every third a
    ``sub all``, whose snapshot reads every bucket at once, as reconnecting clients do)
    and records how each was answered; anything but ack or error/unavailable fails."""

    def __init__(self, clients: list[WsClient]) -> None:
        self.clients = clients
        self.acks = 0
        self.unavailable = 0
        self.other: list[object] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(c, n)) for n, c in enumerate(self.clients)]

    async def _run(self, client: WsClient, n: int) -> None:
        count = 0
        while not self._stop.is_set():
            count += 1
            ref = f"load-{n}-{count}"
            start = client.mark()
            if count % 3 == 0:
                await client.send({"op": "sub", "all": True, "ref": ref})
            else:
                await client.send({"op": "status", "text": f"t{count}", "ref": ref})
            answer = await client.wait_for(
                answers(ref),
                timeout=15, after=start, what=f"the answer to {ref}",
            )  # fmt: skip
            if answer["op"] == "ack":
                self.acks += 1
            elif answer.get("code") == "unavailable":
                self.unavailable += 1
            else:
                self.other.append(answer)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1 / LOAD_PER_S)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


@pytest.mark.parametrize("which", ["pubsub", "other"])
async def test_a_master_failover_closes_no_socket_and_everyone_converges(
    which: str, spawn: Spawn, replicated_cluster: ClusterServers, store_for: StoreFor
) -> None:
    cluster = replicated_cluster
    url = cluster.url
    hubs = [spawn(f"hub{i}", url) for i in (1, 2)]
    users = [[uid(f"h{h}u{i}") for i in range(USERS_PER_HUB)] for h in range(2)]
    watchers: list[WsClient] = []
    clients: list[WsClient] = []
    https = [httpx.AsyncClient(base_url=h.url, trust_env=False, timeout=10) for h in hubs]
    store = await store_for(url)
    load: Load | None = None
    try:
        for h, hub in enumerate(hubs):
            # One JSON and one msgpack subscriber per hub.
            watchers.append(await connect_user(hub.ws_url, user_token(uid("wj")),
                                               subscribe=True))  # fmt: skip
            mp = await WsClient.open(hub.ws_url, subprotocol=MSGPACK)
            watchers.append(mp)
            await mp.hello(user_token(uid("wm")))
            await mp.subscribe()
            clients += await open_clients(hub.ws_url, [user_token(u) for u in users[h]])
        everyone = [u for group in users for u in group]
        everyone += [str(w.ready["user"]["id"]) for w in watchers if w.ready]

        async def all_online() -> bool:
            for watcher in watchers:
                missing = [u for u in everyone if watcher.state.status(u) != "online"]
                assert not missing, f"{len(missing)} not online for a subscriber"
            for http in https:
                listed = {u["_id"] for u in (await rest_presence(http))["users"]}
                assert set(everyone) <= listed, "REST does not list everyone"
            return True

        await eventually(all_online, timeout=20)

        holder = pubsub_master(cluster)
        if which == "pubsub":
            victim = holder
        else:
            victim = next(m for m in cluster.masters() if m is not holder)
        load = Load(clients)
        load.start()
        # Let the load run against the healthy cluster first.
        await eventually(lambda: _at_least(load, 2 * len(clients)), timeout=20)
        killed_at = time.monotonic()
        victim.kill()
        promoted_at = await asyncio.to_thread(cluster.wait_promoted, victim)
        # The load goes on meanwhile: the redirections to the promoted replica come now.
        await eventually(all_online, timeout=ONLINE_AFTER_PROMOTION_S + 10, interval=0.05)
        online_after = time.monotonic() - promoted_at
        after = load.acks
        await eventually(lambda: _at_least(load, after + 2 * len(clients)), timeout=30)
        await load.stop()
        assert load.other == [], f"answers other than ack or unavailable: {load.other[:5]}"

        # A change made through each hub reaches the subscribers of the other.
        crossed_at = time.monotonic()
        for h, client in ((0, clients[0]), (1, clients[USERS_PER_HUB])):
            marks = [w.mark() for w in watchers]
            await client.request({"op": "status", "status": "busy", "text": f"after-{h}"})
            for watcher, mark in zip(watchers, marks, strict=True):
                entry = await watcher.wait_status(users[h][0], "busy", after=mark, timeout=15)
                assert entry["text"] == f"after-{h}"
        crossed = time.monotonic() - crossed_at

        # Every subscriber converges on exactly the store's state.
        async def converged() -> bool:
            truth = visible(await store.users(everyone))
            for watcher in watchers:
                wrong = agrees(watcher.state, truth)
                assert not wrong, f"{len(wrong)} users differ, e.g. {wrong[:3]}"
            return True

        await eventually(converged, timeout=20, interval=0.1)
        closed = [c for c in [*watchers, *clients] if c.closed]
        assert not closed, f"{len(closed)} sockets closed: {[c.close_code for c in closed]}"
        print(
            f"\ncluster failover: kill -9 of the {which} master -> replica promoted in "
            f"{promoted_at - killed_at:.2f} s; everyone online everywhere "
            f"{max(0.0, online_after):.2f} s after the promotion (limit "
            f"{ONLINE_AFTER_PROMOTION_S:.0f} s); a change crossed both hubs in {crossed:.2f} s; "
            f"load answers: {load.acks} ack, {load.unavailable} unavailable, 0 other; "
            f"0 of {len(watchers) + len(clients)} sockets closed"
        )
        assert online_after <= ONLINE_AFTER_PROMOTION_S
    finally:
        if load is not None:
            load._stop.set()
        for http in https:
            await http.aclose()
        await close_all([*watchers, *clients])


async def _at_least(load: Load, count: int) -> bool:
    return load.acks >= count
