"""Webhooks survive the death of the node delivering them: kill -9 of that hub process
during a backlog loses nothing, and the other node finishes, in order, signed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hub.delivery.stream import stream_client
from hub.delivery.webhooks import endpoint_id
from hub.stores.presence.base import Profile
from hub.stores.presence.redis import RedisStore
from tests.support.hubproc import HubProcess, start_hub
from tests.support.receiver import Receiver, in_order
from tests.support.webhooks import FAST, SECRET, metrics, received, stream_users

Spawn = Callable[..., HubProcess]


@pytest.fixture
def spawn(tmp_path: Path, key_prefix: str) -> Iterator[Spawn]:
    started: list[HubProcess] = []

    def run(name: str, store: str, hooks: str, **env: str) -> HubProcess:
        settings = {"HUB_STORE": store, "HUB_KEY_PREFIX": key_prefix,
                    "HUB_CHANNEL": f"{key_prefix}presence", "HUB_NODE_ID": name,
                    "HUB_WEBHOOKS": hooks, **FAST, **env}  # fmt: skip
        hub = start_hub(tmp_path, settings, name=name)
        started.append(hub)
        return hub

    yield run
    for hub in started:
        if hub.process is not None and hub.process.poll() is None:
            hub.stop()
    for hub in started:
        hub.assert_no_tracebacks()


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("backend", [
    "redis", pytest.param("redis-cluster", marks=pytest.mark.cluster),
])  # fmt: skip
async def test_kill_9_of_the_delivering_node_loses_nothing(
    backend: str, request: pytest.FixtureRequest, key_prefix: str, spawn: Spawn
) -> None:
    redis_url = request.getfixturevalue("redis_url" if backend == "redis" else "cluster_url")
    gen = RedisStore(redis_url, key_prefix=key_prefix, channel=f"{key_prefix}presence",
                     grace_ms=0)  # fmt: skip
    await gen.start()
    receiver = await Receiver(SECRET).up()
    try:
        hooks = f"{receiver.url}|{SECRET}"
        nodes = {name: spawn(name, redis_url, hooks) for name in ("node1", "node2")}
        await gen.connect("g", "c0", Profile("first"), "online")
        await receiver.wait(lambda: len(receiver.accepted) >= 1, 20)
        receiver.failing = True  # the backlog builds up
        for n in range(30):
            await gen.connect("g", f"c{n + 1}", Profile(f"u{n}"), "online")
        failing_from = len(receiver.requests)
        await receiver.wait(lambda: len(receiver.requests) > failing_from, 20)
        r = stream_client(redis_url)
        try:
            raw = await r.get(f"{key_prefix}webhooks:lease:{endpoint_id(receiver.url)}")
        finally:
            await r.aclose()
        holder = raw.decode() if raw else ""
        assert holder in nodes
        nodes[holder].kill()
        receiver.failing = False
        expected = await stream_users(redis_url, key_prefix)
        await receiver.wait(lambda: set(expected) <= received(receiver), 60)
        assert in_order(receiver.accepted)
        assert all(receiver.valid(req) for req in receiver.requests)
        survivor = next(hub for name, hub in nodes.items() if name != holder)
        assert (await metrics(survivor))[
            f'hub_webhook_delivered_total{{endpoint="{endpoint_id(receiver.url)}"}}'
        ] >= 1
    finally:
        await receiver.close()
        await gen.close()
