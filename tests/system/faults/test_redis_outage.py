"""Redis goes away for seconds and comes back EMPTY: the hubs keep their sockets, answer
``unavailable`` / 503 meanwhile (never a hang), re-register the connections they still
hold, and every subscriber converges to the truth, with no ghost of a socket that closed
during the outage."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from tests.support import eventually
from tests.support.faults import close_all, metric, open_clients, rest_presence
from tests.support.hubproc import ADMIN_HEADERS, HubProcess, user_token
from tests.support.redis_server import RedisServer
from tests.support.wsclient import PresenceMap, WsClient, connect_user
from tests.system.faults.conftest import Spawn, StoreFor

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: The fault itself: how long Redis stays down at least (the checks below run meanwhile).
OUTAGE_S = 3.0
#: A frame that needs the store must be answered (with an error) within this; the store's
#: socket timeout is 2 s, so "unavailable" must never take longer than that plus scheduling.
ANSWER_S = 4.0


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def online_set(state: PresenceMap) -> dict[str, tuple[str, int]]:
    return {u: (e["status"], e["at"]) for u, e in state.users.items() if e["status"] != "offline"}


async def test_redis_restarted_empty_hubs_keep_sockets_and_subscribers_converge(
    spawn: Spawn, own_redis: RedisServer, store_for: StoreFor
) -> None:
    """Stop Redis for a few seconds, start it EMPTY on the same port: the sockets stay open,
    status frames get error ``unavailable`` and REST 503 meanwhile; afterwards users still
    connected are online, users who left during the outage are offline, and each
    subscriber's map equals the REST truth exactly."""
    env = {"HUB_NODE_TTL_S": "1", "HUB_OFFLINE_GRACE_S": "1"}
    nodes = [spawn("node1", own_redis.url, **env), spawn("node2", own_redis.url, **env)]
    stay = [uid(f"stay{i}") for i in range(12)]
    leave = [uid(f"leave{i}") for i in range(6)]
    away = uid("away")
    chooser = uid("busy")
    watchers: list[WsClient] = []
    staying: list[WsClient] = []
    leaving: list[WsClient] = []
    https = [httpx.AsyncClient(base_url=n.url, trust_env=False, timeout=10) for n in nodes]
    try:
        for i, node in enumerate(nodes):
            watchers.append(
                await connect_user(node.ws_url, user_token(uid(f"w{i}")), subscribe=True)
            )
            staying += await open_clients(node.ws_url, [user_token(u) for u in stay[i::2]])
            leaving += await open_clients(node.ws_url, [user_token(u) for u in leave[i::2]])
        staying.append(await connect_user(nodes[0].ws_url, user_token(away)))
        # An idle connection: its state is the connection's, so re-registering keeps it.
        await staying[-1].request({"op": "activity", "state": "away"})
        # A chosen status and text live in the store: the node puts them back from the
        # last entry it saw for its own user.
        staying.append(await connect_user(nodes[1].ws_url, user_token(chooser)))
        await staying[-1].request({"op": "status", "status": "busy", "text": "Back at 3"})
        everyone = [*stay, *leave, away, chooser]

        async def all_seen() -> bool:
            for w in watchers:
                assert all(w.state.status(u) != "offline" for u in everyone)
            return True

        await eventually(all_seen)

        own_redis.stop()
        down_at = time.monotonic()

        # While Redis is down: frames that need the store get "unavailable", promptly.
        for client in (staying[0], staying[1]):
            started = time.monotonic()
            answer = await client.request(
                {"op": "status", "status": "busy"}, expect="error", timeout=ANSWER_S
            )
            assert answer["code"] == "unavailable", answer
            assert time.monotonic() - started < ANSWER_S
        for http in https:
            response = await http.get("/api/v1/users.presence", headers=ADMIN_HEADERS)
            assert response.status_code == 503, response.text
            assert (await http.get("/readyz")).status_code == 503
            assert (await http.get("/healthz")).status_code == 200
        # A new socket is turned away with 1013 (try again later), not left hanging.
        newcomer = await connect_refused(nodes[0])
        assert newcomer == 1013

        # Users who leave during the outage: their disconnect cannot reach the store now.
        await close_all(leaving)

        async def hubs_see_store_down() -> bool:
            for http in https:
                assert await metric(http, "hub_store_up") == 0
            return True

        await eventually(hubs_see_store_down)
        # The fault's duration (not a synchronisation: everything above was waited on).
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        assert all(not c.closed for c in [*watchers, *staying]), "a socket closed in the outage"

        own_redis.start()  # same port, no data

        async def restored() -> bool:
            for http in https:
                assert (await http.get("/readyz")).status_code == 200
                assert await metric(http, "hub_restores_total") >= 1
            return True

        await eventually(restored, timeout=15)

        async def converged() -> bool:
            body = await rest_presence(https[0])
            assert body["full"] is True
            truth = {u["_id"]: u["status"] for u in body["users"]}
            texts = {u["_id"]: u["statusText"] for u in body["users"]}
            assert texts.get(chooser) == "Back at 3"
            expected = {u: "online" for u in stay} | {away: "away", chooser: "busy"}
            expected |= {w.ready["user"]["id"]: "online" for w in watchers if w.ready}
            assert truth == expected, sorted(set(truth) ^ set(expected))
            for w in watchers:
                state = {u: s for u, (s, _) in online_set(w.state).items()}
                assert state == truth, sorted(set(state) ^ set(truth))
            return True

        await eventually(converged, timeout=15)
        # Exactly the store's entries, `at` included (what a consumer keeps per user).
        store = await store_for(own_redis.url)
        snapshot = await store.changes(None)
        views = {v.id: (v.status, v.at) for v in snapshot.users}
        for w in watchers:
            assert online_set(w.state) == views
        # The sockets that stayed still work against the new Redis.
        assert all(not c.closed for c in [*watchers, *staying])
        await staying[0].request({"op": "status", "status": "busy"})
        await watchers[1].wait_status(stay[0], "busy")
    finally:
        for http in https:
            await http.aclose()
        await close_all([*watchers, *staying, *leaving])


async def connect_refused(node: HubProcess) -> int | None:
    """Open a socket, say hello, and return the close code the hub answered with."""
    client = await WsClient.open(node.ws_url)
    try:
        await client.send({"op": "hello", "token": user_token(uid("late"))})
        return await client.wait_closed()
    finally:
        await client.close()


async def test_sockets_closing_while_the_node_re_registers_leave_no_ghost(
    spawn: Spawn, own_redis: RedisServer
) -> None:
    """Redis comes back empty while sockets keep closing: a socket whose close reaches the
    store before the node re-registered it must not be re-registered for good (a ghost)."""
    env = {"HUB_NODE_TTL_S": "1", "HUB_OFFLINE_GRACE_S": "0"}
    node = spawn("node1", own_redis.url, **env)
    users = [uid(f"u{i}") for i in range(400)]
    clients = await open_clients(node.ws_url, [user_token(u) for u in users])
    http = httpx.AsyncClient(base_url=node.url, trust_env=False, timeout=10)
    try:
        own_redis.stop()

        async def store_down() -> bool:
            return await metric(http, "hub_store_up") == 0

        await eventually(store_down)
        own_redis.start()
        # Close half of the sockets one after another while the node notices the empty
        # Redis and re-registers what it holds: some closes land in the middle of that.
        # (The pause between two closes shapes the load; nothing waits on it.)
        for client in clients[::2]:
            await client.close()
            await asyncio.sleep(0.005)

        async def restored() -> bool:
            return await metric(http, "hub_restores_total") >= 1

        await eventually(restored, timeout=15)

        kept = {u for i, u in enumerate(users) if i % 2}

        async def exact() -> bool:
            body = await rest_presence(http)
            listed = {u["_id"] for u in body["users"]}
            ghosts = listed - kept
            assert not ghosts, f"{len(ghosts)} ghosts"
            assert listed == kept, f"{len(kept - listed)} missing"
            return True

        await eventually(exact, timeout=15)
    finally:
        await http.aclose()
        await close_all(clients)
