"""Webhooks end to end: hubs served in process, real Redis, a real HTTP receiver.

- memory and Redis both deliver (the contract), signed, with the documented body;
- a receiver that fails every other request and is down for OUTAGE_S (30 s, as promised)
  gets every batch, at least once, in order by delivery id, with valid signatures;
- a permanently failing URL dead-letters after HUB_WEBHOOK_RETRY_S, and is counted.

(kill -9 of the delivering node is tests/system/delivery/test_webhooks_kill.py.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from redis.asyncio import Redis

from hub.delivery.stream import entry_order
from hub.delivery.webhooks import endpoint_id
from hub.stores.presence.base import Profile
from hub.stores.presence.redis import RedisStore
from tests.support import eventually
from tests.support.hubproc import user_token
from tests.support.inproc import InProcessHub
from tests.support.receiver import Receiver, in_order
from tests.support.webhooks import FAST, OUTAGE_S, SECRET, metrics, received, stream_users
from tests.support.wsclient import connect_user

Spawn = Callable[..., InProcessHub]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver(SECRET).up()
    yield r
    await r.close()


@pytest.fixture
def spawn(key_prefix: str) -> Iterator[Spawn]:
    started: list[InProcessHub] = []

    def run(name: str, store: str, hooks: str, **env: str) -> InProcessHub:
        settings = {"HUB_STORE": store, "HUB_KEY_PREFIX": key_prefix,
                    "HUB_CHANNEL": f"{key_prefix}presence", "HUB_NODE_ID": name,
                    "HUB_WEBHOOKS": hooks, **FAST, **env}  # fmt: skip
        hub = InProcessHub(settings).start()
        started.append(hub)
        return hub

    yield run
    for hub in started:
        hub.stop()
    for hub in started:
        hub.assert_no_tracebacks()


@pytest.fixture
async def gen(redis_url: str, key_prefix: str) -> AsyncIterator[RedisStore]:
    """Changes without websockets: a store on the hubs' Redis and prefix."""
    s = RedisStore(redis_url, key_prefix=key_prefix, channel=f"{key_prefix}presence",
                   grace_ms=0)  # fmt: skip
    await s.start()
    yield s
    await s.close()


BACKENDS = {"memory": None, "redis": "redis_url", "redis-cluster": "cluster_url"}


@pytest.mark.parametrize("backend", [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis-cluster", marks=[pytest.mark.redis, pytest.mark.cluster]),
])  # fmt: skip
async def test_memory_and_redis_both_deliver_signed_posts(
    backend: str, request: pytest.FixtureRequest, spawn: Spawn, receiver: Receiver
) -> None:
    fixture = BACKENDS[backend]
    store = "memory://" if fixture is None else request.getfixturevalue(fixture)
    hub = spawn("node1", store, f"{receiver.url}|{SECRET}")
    alice = await connect_user(hub.ws_url, user_token("alice", name="Alice"))
    try:
        await receiver.wait(lambda: any(u["id"] == "alice" for u in receiver.users()), 20)
    finally:
        await alice.close()
    await receiver.wait(
        lambda: any(u["id"] == "alice" and u["status"] == "offline" for u in receiver.users()),
        20,
    )
    first = receiver.accepted[0]
    assert receiver.valid(first)
    assert first.headers["Content-Type"] == "application/json"
    assert set(first.json) == {"id", "cursor", "users"}
    assert isinstance(first.json["cursor"], int)
    online = next(u for u in receiver.users() if u["id"] == "alice")
    assert online["status"] == "online" and online["name"] == "Alice"
    assert in_order(receiver.accepted)
    # A tampered body or an old timestamp does not verify.
    assert not receiver.valid(type(first)(first.headers, first.body + b" ", 200, 0))
    eid = endpoint_id(receiver.url)
    await eventually(lambda: _delivered(hub, eid, len(receiver.accepted)))


async def _delivered(hub: InProcessHub, eid: str, n: int) -> bool:
    values = await metrics(hub)
    return values[f'hub_webhook_delivered_total{{endpoint="{eid}"}}'] >= n


@pytest.mark.redis
async def test_event_filter_sends_only_the_chosen_statuses(
    redis_url: str, spawn: Spawn, receiver: Receiver, gen: RedisStore
) -> None:
    spawn("node1", redis_url, f"{receiver.url}|{SECRET}|online+offline")
    await gen.connect("g", "c1", Profile("alice"), "online")
    await gen.set_status("alice", status="busy")
    await gen.disconnect("g", "c1", "alice", grace=False)
    await receiver.wait(lambda: any(u["status"] == "offline" for u in receiver.users()), 20)
    assert [u["status"] for u in receiver.users()] == ["online", "offline"]


@pytest.mark.redis
@pytest.mark.slow
async def test_flaky_receiver_down_for_30s_gets_every_batch_in_order(
    redis_url: str, key_prefix: str, spawn: Spawn, gen: RedisStore
) -> None:
    receiver = await Receiver(SECRET, fail_every_other=True).up()
    try:
        hooks = f"{receiver.url}|{SECRET}"
        nodes = [spawn("node1", redis_url, hooks), spawn("node2", redis_url, hooks)]
        users = [f"u{n}" for n in range(20)]
        for n, uid in enumerate(users):
            await gen.connect("g", f"c{n}", Profile(uid), "online")
        await receiver.wait(lambda: {u["id"] for u in receiver.users()} >= set(users), 20)
        await receiver.down()
        down_at = len(receiver.requests)
        # Changes go on while the receiver is down, for the whole outage.
        loop = asyncio.get_running_loop()
        end = loop.time() + OUTAGE_S
        n = 0
        while loop.time() < end:
            uid = users[n % len(users)]
            await gen.set_status(uid, status="busy" if n % 2 == 0 else "online")
            n += 1
            await asyncio.sleep(0.05)  # a change rate, not a synchronisation
        assert len(receiver.requests) == down_at  # nothing got through while down
        await receiver.up()
        expected = await stream_users(redis_url, key_prefix)
        await receiver.wait(lambda: set(expected) <= received(receiver), 60)
        assert all(receiver.valid(r) for r in receiver.requests)
        assert in_order(receiver.accepted)
        # Every other request failed, so there were retries of the same delivery id.
        ids = [r.id for r in receiver.requests]
        assert len(ids) > len(set(ids))
        assert any(r.status == 500 for r in receiver.requests)
        # Exactly one node delivered (neither died, so the lease never moved).
        name = f'hub_webhook_delivered_total{{endpoint="{endpoint_id(receiver.url)}"}}'
        delivered = sorted([(await metrics(hub))[name] for hub in nodes])
        assert delivered[0] == 0 and 1 <= delivered[1] <= len(receiver.accepted)
    finally:
        await receiver.close()


@pytest.mark.redis
async def test_permanently_failing_url_dead_letters_after_the_retry_time(
    redis_url: str, key_prefix: str, spawn: Spawn, gen: RedisStore
) -> None:
    receiver = await Receiver(SECRET).up()
    receiver.failing = True
    eid = endpoint_id(receiver.url)
    try:
        hub = spawn("node1", redis_url, f"{receiver.url}|{SECRET}", HUB_WEBHOOK_RETRY_S="2")
        await gen.connect("g", "c1", Profile("alice"), "online")
        await receiver.wait(lambda: len(receiver.requests) >= 3, 20)
        r = Redis.from_url(redis_url)
        try:

            async def dead() -> list[tuple[bytes, dict[bytes, bytes]]]:
                found: list[tuple[bytes, dict[bytes, bytes]]] = await r.xrange(
                    f"{key_prefix}webhooks:dead:{eid}"
                )
                return found

            (entry,) = await eventually(dead, timeout=20)
            fields = entry[1]
            assert fields[b"reason"] == b"HTTP 500"
            assert fields[b"id"].decode() == receiver.requests[0].id
            assert b'"alice"' in fields[b"body"]
            # Dead after about the retry time: not before it.
            born = entry_order(fields[b"id"].decode())[0] / 1000
            assert int(fields[b"at"]) / 1000 - born >= 2.0
        finally:
            await r.aclose()
        values = await metrics(hub)
        assert values[f'hub_webhook_dead_letters_total{{endpoint="{eid}"}}'] == 1
        assert values[f'hub_webhook_retries_total{{endpoint="{eid}"}}'] >= 2
        # Then the endpoint goes on with what comes next.
        receiver.failing = False
        await gen.connect("g", "c2", Profile("bob"), "online")
        await receiver.wait(lambda: any(u["id"] == "bob" for u in receiver.users()), 20)
    finally:
        await receiver.close()


async def test_memory_dead_letters_are_counted(spawn: Spawn) -> None:
    receiver = await Receiver(SECRET).up()
    receiver.failing = True
    eid = endpoint_id(receiver.url)
    try:
        hub = spawn("node1", "memory://", f"{receiver.url}|{SECRET}", HUB_WEBHOOK_RETRY_S="1")
        alice = await connect_user(hub.ws_url, user_token("alice"))
        try:
            await eventually(lambda: _dead(hub, eid), timeout=20)
        finally:
            await alice.close()
    finally:
        await receiver.close()


async def _dead(hub: InProcessHub, eid: str) -> bool:
    return (await metrics(hub))[f'hub_webhook_dead_letters_total{{endpoint="{eid}"}}'] >= 1
