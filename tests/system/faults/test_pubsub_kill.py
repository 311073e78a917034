"""A hub's pub/sub connection is killed (``CLIENT KILL TYPE pubsub``) while changes are being
made: the messages published meanwhile never reach it, and its subscribers still converge
exactly, by cursor recovery from the change index."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from hub.stores.presence.base import Profile
from tests.support import eventually
from tests.support.faults import agrees, close_all, metric, visible
from tests.support.hubproc import user_token
from tests.support.redis_server import RedisServer
from tests.support.wsclient import WsClient, connect_user
from tests.system.faults.conftest import Spawn, StoreFor

pytestmark = [pytest.mark.redis, pytest.mark.slow]

USERS = 100
ROUNDS = 3
STATUSES = ("busy", "away", "online")


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def test_killed_pubsub_connection_subscribers_converge_by_cursor_recovery(
    spawn: Spawn, own_redis: RedisServer, store_for: StoreFor
) -> None:
    """Three times: kill every pub/sub connection and, in the same breath, change every
    user (statuses, texts, some going offline): each subscriber on both nodes ends with
    exactly the store's state, `at` included, and both nodes counted a gap."""
    nodes = [spawn(f"node{i}", own_redis.url, HUB_OFFLINE_GRACE_S="0") for i in (1, 2)]
    gen = await store_for(own_redis.url)
    gen_node = uid("gen")
    users = [uid(f"u{i}") for i in range(USERS)]
    watched = users[:20]
    watchers: list[WsClient] = []
    https = [httpx.AsyncClient(base_url=n.url, trust_env=False, timeout=10) for n in nodes]
    try:
        for node in nodes:
            watchers.append(await connect_user(node.ws_url, user_token(uid("w")), subscribe=True))
        narrow = await connect_user(nodes[1].ws_url, user_token(uid("n")))
        watchers.append(narrow)
        await narrow.subscribe({"users": watched})
        await asyncio.gather(
            *(gen.connect(gen_node, f"{u}.c", Profile(id=u), "online") for u in users)
        )
        connected = set(users)

        async def converged() -> bool:
            truth = visible(await gen.users(users))
            for w in watchers:
                scope = truth if w is not narrow else {u: truth[u] for u in watched}
                wrong = agrees(w.state, scope)
                assert not wrong, f"{len(wrong)} users differ, e.g. {wrong[0]}"
            return True

        await eventually(converged)

        for round_ in range(ROUNDS):
            gaps = [await metric(http, "hub_gaps_total") for http in https]
            reply = own_redis.command("CLIENT", "KILL", "TYPE", "pubsub")
            # Right behind the kill: these batches are published while the hubs' feeds are
            # gone (a feed reconnects after 50 ms at the earliest).
            status = STATUSES[round_ % len(STATUSES)]
            leaving = set(users[round_ * 10 : round_ * 10 + 10]) & connected
            changes = [
                gen.set_status(u, status=status, text=f"round {round_}")
                for u in users
                if u not in leaving
            ]
            changes += [gen.disconnect(gen_node, f"{u}.c", u, grace=False) for u in leaving]
            await asyncio.gather(*changes)
            connected -= leaving
            killed = int(reply.strip().lstrip(b":"))
            assert killed >= 2, f"CLIENT KILL TYPE pubsub killed {killed} connections"

            async def recovered(gaps: list[float] = gaps) -> bool:
                for http, before in zip(https, gaps, strict=True):
                    assert await metric(http, "hub_gaps_total") > before
                return True

            await eventually(recovered)
            await eventually(converged)
    finally:
        for http in https:
            await http.aclose()
        await close_all(watchers)
