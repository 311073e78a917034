"""One contract for the channel state and bus on every backend: memory, Redis and Redis
Cluster. Each subscribe/unsubscribe reports exactly the transitions it made. Collected by
tests/unit/pusher (memory) and tests/integration/pusher (Redis, Redis Cluster)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub.ops.config import Settings
from hub.stores.channels.store import Bus, ChannelState, Joined, Left, open_channels


@pytest.fixture
async def backend(
    request: pytest.FixtureRequest, key_prefix: str, backend_name: str
) -> AsyncIterator[tuple[ChannelState, Bus]]:
    name = backend_name
    url = "memory://"
    if name == "redis":
        url = request.getfixturevalue("redis_server").url
    elif name == "redis-cluster":
        url = request.getfixturevalue("redis_cluster").url
    state, bus = open_channels(
        Settings(store=url, key_prefix=key_prefix, channel=f"{key_prefix}presence")
    )
    await state.start()
    await bus.start()
    try:
        yield state, bus
    finally:
        await bus.close()
        await state.close()


INFO = json.dumps({"name": "x"})


async def test_member_transitions_are_per_user_not_per_connection(backend):
    state, _ = backend
    ch = "presence-a"
    assert await state.subscribe("1", ch, "1.1", "n1", "u1", INFO, 10) == Joined(1, True, True)
    assert await state.subscribe("1", ch, "1.1", "n1", "u1", INFO, 10) == Joined(0, False, False)
    assert await state.subscribe("1", ch, "2.1", "n2", "u1", INFO, 10) == Joined(1, False, False)
    assert await state.subscribe("1", ch, "2.2", "n2", "u2", INFO, 10) == Joined(1, False, True)
    assert await state.members("1", ch) == {"u1": {"name": "x"}, "u2": {"name": "x"}}
    assert await state.member_count("1", ch) == 2
    assert await state.subscription_count("1", ch) == 3
    assert await state.occupied("1") == [ch]
    assert await state.occupied("2") == []
    assert await state.unsubscribe("1", ch, "1.1") == Left(True, "u1", False, False)
    assert await state.unsubscribe("1", ch, "1.1") == Left(False, "", False, False)
    assert await state.unsubscribe("1", ch, "2.1") == Left(True, "u1", True, False)
    assert not await state.has_member("1", ch, "u1")
    assert await state.unsubscribe("1", ch, "2.2") == Left(True, "u2", True, True)
    assert await state.occupied("1") == []
    assert await state.members("1", ch) == {}


async def test_member_limit_counts_users(backend):
    state, _ = backend
    ch = "presence-small"
    assert (await state.subscribe("1", ch, "1.1", "n1", "u1", INFO, 2)).status == 1
    assert (await state.subscribe("1", ch, "1.2", "n1", "u2", INFO, 2)).status == 1
    assert (await state.subscribe("1", ch, "1.3", "n1", "u1", INFO, 2)).status == 1
    assert (await state.subscribe("1", ch, "1.4", "n1", "u3", INFO, 2)).status == -1
    assert await state.member_count("1", ch) == 2
    assert await state.subscription_count("1", ch) == 3


async def test_node_subscriptions_for_reaping(backend):
    state, _ = backend
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


async def test_bus_reaches_every_reader(backend):
    _, bus = backend
    got: list[dict[str, Any]] = []
    ready = asyncio.Event()

    async def read() -> None:
        async for message in bus.messages():
            if message is not None and message.get("k") == "probe":
                ready.set()
            elif message is not None:
                got.append(message)
                return

    reader = asyncio.create_task(read())
    # Until the subscription is live, probes may be lost: repeat until one arrives.
    async with asyncio.timeout(10):
        while not ready.is_set():
            await bus.publish({"k": "probe"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), 0.1)
    await bus.publish({"k": "e", "a": "1", "c": "x", "f": "{}"})
    async with asyncio.timeout(10):
        await reader
    assert got == [{"k": "e", "a": "1", "c": "x", "f": "{}"}]
