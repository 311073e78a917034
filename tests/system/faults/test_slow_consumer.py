"""A subscriber that stops reading while presence changes fast: the hub's memory stays
bounded (its outbox overflows instead of growing), it gets a fresh snapshot when it reads
again and ends with the exact state; and it cannot hold up a SIGTERM drain."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from hub.stores.presence.base import Profile
from hub.stores.presence.keys import Keys
from hub.stores.presence.redis import RedisStore
from tests.support import eventually
from tests.support.faults import RawWsClient, agrees, metric, rss_bytes, visible
from tests.support.hubproc import HubProcess, user_token
from tests.support.wsclient import WsClient, connect_user
from tests.system.faults.conftest import Spawn, StoreFor

pytestmark = [pytest.mark.redis, pytest.mark.slow]

USERS = 400
#: Long names make big entries, so the slow subscriber is owed many megabytes quickly.
NAME = "n" * 3000
#: The load: at least this many bytes of delta frames go to a reading subscriber while the
#: slow one reads nothing.
OWED_BYTES = 80 * 2**20
#: Growth of the hub's RSS allowed meanwhile: the 4 MiB outbox, socket buffers, the
#: encoder's and allocator's working set; far below what the slow subscriber is owed.
RSS_GROWTH_BYTES = 40 * 2**20


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def changing(gen: RedisStore, users: list[str]) -> AsyncIterator[list[int]]:
    """Change every user's text over and over (in the background) until the block ends."""
    done = [0]

    async def run() -> None:
        n = 0
        while True:
            n += 1
            batch = users[(n * 50) % len(users) :][:50]
            await asyncio.gather(*(gen.set_status(u, text=f"change {n}") for u in batch))
            done[0] += len(batch)

    task = asyncio.create_task(run())
    try:
        yield done
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def registered(gen: RedisStore, gen_node: str) -> list[str]:
    users = [uid(f"u{i}") for i in range(USERS)]
    await asyncio.gather(
        *(gen.connect(gen_node, f"{u}.c", Profile(id=u, name=NAME), "online") for u in users)
    )
    return users


def received(client: WsClient, after: int) -> int:
    return sum(len(data) for data in client.raw[after:])


async def stalled_subscriber(hub: HubProcess) -> RawWsClient:
    """A subscriber to everyone that read its snapshot and will read nothing more for now."""
    slow = await RawWsClient.open("127.0.0.1", hub.port, rcvbuf=4096)
    await slow.send({"op": "hello", "token": user_token(uid("slow"))})
    await slow.wait_for(lambda f: f.get("op") == "ready", what="ready")
    await slow.send({"op": "sub", "all": True, "ref": 1})
    await slow.wait_for(lambda f: f.get("op") == "ack", what="the sub's ack")
    return slow


async def test_slow_subscriber_bounded_memory_then_snapshot_and_exact_state(
    spawn: Spawn, redis_url: str, store_for: StoreFor
) -> None:
    """While a subscriber reads nothing, a reading one receives 80 MiB of deltas; the hub's
    RSS grows by far less, its outbox overflowed, and when the slow one reads again it gets
    a snapshot and ends with exactly the store's state."""
    hub = spawn("hub", redis_url)
    gen = await store_for(redis_url)
    users = await registered(gen, uid("gen"))
    fast = await connect_user(hub.ws_url, user_token(uid("fast")), subscribe=True)
    slow = await stalled_subscriber(hub)
    http = httpx.AsyncClient(base_url=hub.url, trust_env=False, timeout=10)
    try:
        # Warm up: the hub's allocator and buffers reach their working size with readers.
        async with changing(gen, users) as done:
            await eventually(lambda: _at_least(done, 2 * USERS), timeout=30)
        await eventually(lambda: _settled(fast, gen, users), timeout=30)
        before = rss_bytes(hub.pid)
        overflows = await metric(http, "hub_outbox_overflows_total")

        start = fast.mark()
        async with changing(gen, users):

            async def owed() -> bool:
                return received(fast, start) >= OWED_BYTES

            await eventually(owed, timeout=90, interval=0.1)
            during = rss_bytes(hub.pid)
        grown = during - before
        owed_mib = received(fast, start) / 2**20
        print(f"\nslow subscriber owed {owed_mib:.0f} MiB; hub RSS {before / 2**20:.0f} -> "
              f"{during / 2**20:.0f} MiB (+{grown / 2**20:.1f})")  # fmt: skip
        assert grown < RSS_GROWTH_BYTES
        assert await metric(http, "hub_outbox_overflows_total") > overflows

        # Reading again: whatever was still in the socket buffers, then a fresh snapshot.
        stalled_at = len(slow.frames)
        await slow.wait_for(lambda f: f.get("op") == "snapshot", timeout=30, what="a snapshot")
        assert len(slow.frames) > stalled_at
        truth = visible(await gen.users(users))
        slow.read_on()

        async def exact() -> bool:
            wrong = agrees(slow.state, truth)
            assert not wrong, f"{len(wrong)} users differ"
            return True

        await eventually(exact, timeout=30)
    finally:
        await http.aclose()
        await fast.close()
        await slow.close()


async def test_a_subscriber_that_reads_nothing_does_not_hold_up_the_drain(
    spawn: Spawn, redis_url: str, key_prefix: str, store_for: StoreFor
) -> None:
    """SIGTERM while a subscriber's buffers are full: the drain still hands the node's
    connections over within a few seconds (its close handshake cannot complete), and the
    process exits 0."""
    node_id = uid("draining")
    hub = spawn("hub", redis_url, HUB_NODE_ID=node_id)
    gen = await store_for(redis_url)
    users = await registered(gen, uid("gen"))
    slow = await stalled_subscriber(hub)
    http = httpx.AsyncClient(base_url=hub.url, trust_env=False, timeout=10)
    redis = Redis.from_url(redis_url)
    try:
        async with changing(gen, users):

            async def stuck() -> bool:
                return await metric(http, "hub_outbox_overflows_total") >= 1

            await eventually(stuck, timeout=30)
        node_hash = Keys(key_prefix, 1).buckets[0].node + node_id
        assert await redis.exists(node_hash) == 1
        stopped_at = time.monotonic()
        stop = asyncio.create_task(asyncio.to_thread(hub.stop))

        async def handed_over() -> bool:
            return await redis.exists(node_hash) == 0

        await eventually(handed_over, timeout=10)
        handed = time.monotonic() - stopped_at
        code = await stop
        took = time.monotonic() - stopped_at
        print(f"\ndrain handed over in {handed:.2f} s; exit {code} after {took:.2f} s")
        assert handed < 5
        assert code == 0
    finally:
        await redis.aclose()
        await http.aclose()
        await slow.close()


async def _at_least(done: list[int], n: int) -> bool:
    return done[0] >= n


async def _settled(client: WsClient, gen: RedisStore, users: list[str]) -> bool:
    wrong = agrees(client.state, visible(await gen.users(users)))
    assert not wrong, f"{len(wrong)} users differ"
    return True
