"""Pusher webhooks through the durable path, end to end: real hub processes, real Redis,
unmodified pusher-js and a real HTTP receiver (signatures checked with PyPI's SDK).

- two hubs on one Redis, a receiver that is down while the node that made the transitions
  (and held the endpoint) is killed with SIGKILL: when the receiver comes back it gets
  each event exactly once, every kind;
- an endpoint gets only the kinds it asked for (``event_types``), the others acked and
  skipped, on every backend (memory, Redis, Redis Cluster).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from hub.delivery.stream import stream_client
from hub.delivery.webhooks import endpoint_id
from hub.stores.channels.keys import hooks_group, hooks_lease, hooks_stream
from tests.support import eventually
from tests.support.hubproc import HubProcess, start_hub
from tests.support.pusher import APP_ID, APP_KEY, APP_SECRET, Driver, ev, helper, sdk, store_env
from tests.support.receiver import Receiver, Request

TTL_S = 2.0
#: Fast retries, a short node TTL (the lease's) and no offline grace, for tests.
FAST = {"HUB_WEBHOOK_BACKOFF_MIN_S": "0.05", "HUB_WEBHOOK_BACKOFF_MAX_S": "0.5",
        "HUB_NODE_TTL_S": str(TTL_S), "HUB_OFFLINE_GRACE_S": "0"}  # fmt: skip
ALL_KINDS = ["channel_occupied", "channel_vacated", "member_added", "member_removed",
             "client_event"]  # fmt: skip


def _apps_file(path: Path, hooks: list[tuple[str, list[str]]]) -> Path:
    app = {"id": APP_ID, "key": APP_KEY, "secret": APP_SECRET, "client_events": True,
           "webhooks": [{"url": url, "event_types": kinds} for url, kinds in hooks]}  # fmt: skip
    path.write_text(json.dumps([app]))
    return path


def _signed(request: Request) -> bool:
    """PyPI's SDK accepts the POST's X-Pusher-Key and X-Pusher-Signature."""
    checked = sdk(0).validate_webhook(
        request.headers.get("X-Pusher-Key", ""),
        request.headers.get("X-Pusher-Signature", ""),
        request.body.decode(),
    )
    return checked is not None


def _events(receiver: Receiver) -> list[dict[str, Any]]:
    """Every event of every accepted POST, in arrival order."""
    return [e for r in receiver.accepted for e in r.json["events"]]


def _key(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True)


async def _group(redis: Redis, stream: str, group: str) -> dict[str, Any]:
    """The consumer group's XINFO GROUPS row (name, pending, lag, ...), as text keys."""
    for row in await redis.xinfo_groups(stream):
        info = {k.decode() if isinstance(k, bytes) else k: v for k, v in row.items()}
        name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
        if name == group:
            return info
    raise AssertionError(f"no group {group} on {stream}")


async def _settled(redis: Redis, stream: str, group: str) -> bool:
    """Every entry of the stream was read by the group and acknowledged."""
    info = await _group(redis, stream, group)
    return int(info["pending"]) == 0 and info["lag"] == 0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver(APP_SECRET).up()
    yield r
    await r.close()


@pytest.fixture
def hubs() -> Iterator[list[HubProcess]]:
    """Hubs a test starts, stopped after it; each fails the test if it logged a traceback
    (one killed on purpose has nothing to say)."""
    started: list[HubProcess] = []
    yield started
    for hub in started:
        hub.stop()
    for hub in started:
        hub.assert_no_tracebacks()


@pytest.mark.redis
@pytest.mark.slow
async def test_a_killed_nodes_events_reach_a_receiver_that_was_down_exactly_once(
    redis_url: str, key_prefix: str, tmp_path: Path, receiver: Receiver,
    driver: Driver, hubs: list[HubProcess],
) -> None:  # fmt: skip
    """node1 holds the endpoint and makes most transitions while the receiver is down, then
    dies by SIGKILL with its batch in flight; node2 reaps its subscriptions, takes the
    endpoint over and, once the receiver is back, delivers each event exactly once."""
    await receiver.down()
    apps = _apps_file(tmp_path / "apps.json", [(receiver.url, ALL_KINDS)])
    env = {
        **store_env(redis_url, key_prefix),
        "HUB_PUSHER_APPS_FILE": str(apps),
        **FAST,
    }
    redis = stream_client(redis_url)
    eid = endpoint_id(receiver.url)
    stream, group = hooks_stream(key_prefix, APP_ID), hooks_group(eid)
    lease = hooks_lease(key_prefix, APP_ID, eid)

    async def holder() -> str:
        raw = await redis.get(lease)
        return raw.decode() if raw else ""

    async def pending_of(consumer: str) -> int:
        summary = await redis.xpending(stream, group)
        return sum(
            int(c["pending"]) for c in summary["consumers"] if c["name"].decode() == consumer
        )

    try:
        start = asyncio.to_thread
        node1 = await start(start_hub, tmp_path, {**env, "HUB_NODE_ID": "node1"}, name="node1")
        hubs.append(node1)
        assert await eventually(holder) == "node1", "the first node takes the endpoint"
        node2 = await start(start_hub, tmp_path, {**env, "HUB_NODE_ID": "node2"}, name="node2")
        hubs.append(node2)

        tag = uuid.uuid4().hex[:6]
        x, y, channel = f"xan-{tag}", f"yul-{tag}", f"presence-hooks-{tag}"
        with helper(0) as auth:
            wait = driver.wait
            for id_, node, user in (("a", node1, x), ("b", node2, y)):
                driver.send(op="pusher", id=id_, key=APP_KEY, port=node.port,
                            auth=f"{auth.url}/auth", user=user)  # fmt: skip
                await start(wait, ev(id_, "connected"))
                driver.send(op="subscribe", id=id_, channel=channel)
                await start(wait, ev(id_, "here"))
            socket_a = driver.seen(ev("a", "connected"))[0]["socket_id"]
            await start(wait, ev("a", "joining", user=y))
            driver.send(op="trigger", id="a", channel=channel, event="client-hello",
                        data={"n": 1})  # fmt: skip
            await start(wait, ev("b", "event", event="client-hello"))
            driver.send(op="unsubscribe", id="b", channel=channel)
            await start(wait, ev("a", "leaving", user=y))

        async def in_flight() -> bool:
            # Five events are in the stream and node1 has read (is retrying) some of them.
            return await redis.xlen(stream) == 5 and await pending_of("node1") > 0

        await eventually(in_flight, timeout=20)
        node1.kill()
        # node2 reaps node1's subscription (member_removed, channel_vacated) and, once
        # node1's lease has expired, takes the endpoint over.
        await eventually(lambda: _length(redis, stream, 7), timeout=TTL_S * 6)
        assert await eventually(lambda: _holder_is(holder, "node2"), timeout=TTL_S * 6)
        assert receiver.requests == [], "nothing reached the receiver while it was down"
        await receiver.up()

        expected = [
            {"name": "channel_occupied", "channel": channel},
            {"name": "member_added", "channel": channel, "user_id": x},
            {"name": "member_added", "channel": channel, "user_id": y},
            {"name": "client_event", "channel": channel, "event": "client-hello",
             "data": json.dumps({"n": 1}, separators=(",", ":")), "socket_id": socket_a,
             "user_id": x},
            {"name": "member_removed", "channel": channel, "user_id": y},
            {"name": "member_removed", "channel": channel, "user_id": x},
            {"name": "channel_vacated", "channel": channel},
        ]  # fmt: skip
        await receiver.wait(lambda: len(_events(receiver)) >= len(expected), 30)
        # Every entry acknowledged: nothing more is coming.
        await eventually(lambda: _settled(redis, stream, group), timeout=20)
        events = _events(receiver)
        assert Counter(map(_key, events)) == Counter(map(_key, expected))
        assert all(_signed(r) for r in receiver.requests)
        assert all(len(r.json["events"]) <= 100 for r in receiver.requests)
        # Each node's events in the order it made them (node2 made the last three).
        order = [_key(e) for e in events]
        assert order.index(_key(expected[0])) < order.index(_key(expected[1]))
        assert order.index(_key(expected[5])) < order.index(_key(expected[6]))
    finally:
        await redis.aclose()


async def _length(redis: Redis, stream: str, n: int) -> bool:
    return int(await redis.xlen(stream)) == n


async def _holder_is(holder: Any, node: str) -> bool:
    return bool(await holder() == node)


@pytest.mark.parametrize("backend", [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis-cluster", marks=[pytest.mark.redis, pytest.mark.cluster]),
])  # fmt: skip
async def test_an_endpoint_gets_only_the_kinds_it_asked_for(
    backend: str, request: pytest.FixtureRequest, key_prefix: str, tmp_path: Path,
    hubs: list[HubProcess],
) -> None:  # fmt: skip
    """Two URLs of one app, each with its own event_types: each gets exactly its kinds of
    a subscribe, a client event and an unsubscribe; on Redis the others are acked."""
    store = "memory://"
    if backend != "memory":
        fixture = "redis_url" if backend == "redis" else "cluster_url"
        store = request.getfixturevalue(fixture)
    channels_only = await Receiver(APP_SECRET).up()
    events_only = await Receiver(APP_SECRET).up()
    try:
        apps = _apps_file(tmp_path / "apps.json", [
            (channels_only.url, ["channel_occupied", "channel_vacated"]),
            (events_only.url, ["client_event", "channel_vacated"]),
        ])  # fmt: skip
        hub = await asyncio.to_thread(start_hub, tmp_path, {
            "HUB_STORE": store, "HUB_KEY_PREFIX": key_prefix,
            "HUB_CHANNEL": f"{key_prefix}presence", "HUB_PUSHER_APPS_FILE": str(apps), **FAST,
        })  # fmt: skip
        hubs.append(hub)
        channel = f"private-kinds-{uuid.uuid4().hex[:6]}"
        async with connect(f"ws://127.0.0.1:{hub.port}/app/{APP_KEY}?protocol=7") as ws:
            hello = await _frame(ws, "pusher:connection_established")
            socket_id = json.loads(hello["data"])["socket_id"]
            auth = sdk(0).authenticate(channel, socket_id)["auth"]
            await ws.send(json.dumps({"event": "pusher:subscribe",
                                      "data": {"channel": channel, "auth": auth}}))  # fmt: skip
            await _frame(ws, "pusher_internal:subscription_succeeded")
            await ws.send(
                json.dumps({"event": "client-typing", "channel": channel, "data": {"on": True}})
            )
            await ws.send(json.dumps({"event": "pusher:unsubscribe", "data": {"channel": channel}}))
            # channel_vacated, the last event, is wanted by both: a barrier for each.
            for r in (channels_only, events_only):
                await r.wait(
                    lambda r=r: any(e["name"] == "channel_vacated" for e in _events(r)), 20
                )
        occupied = {"name": "channel_occupied", "channel": channel}
        vacated = {"name": "channel_vacated", "channel": channel}
        client = {"name": "client_event", "channel": channel, "event": "client-typing",
                  "data": '{"on":true}', "socket_id": socket_id}  # fmt: skip
        assert _events(channels_only) == [occupied, vacated]
        assert _events(events_only) == [client, vacated]
        assert all(_signed(r) for r in channels_only.requests + events_only.requests)
        if backend != "memory":
            redis = stream_client(store)
            try:
                stream = hooks_stream(key_prefix, APP_ID)
                assert await redis.xlen(stream) == 3
                for r in (channels_only, events_only):
                    group = hooks_group(endpoint_id(r.url))
                    await eventually(lambda g=group: _settled(redis, stream, g))
            finally:
                await redis.aclose()
    finally:
        await channels_only.close()
        await events_only.close()


async def _frame(ws: Any, event: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame["event"] == event:
                return frame
