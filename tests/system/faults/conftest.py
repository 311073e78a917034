"""Fixtures for the fault suite: real hub processes on a real Redis, started per test.

``spawn(name, **env)`` starts a hub with this test's key prefix and channel (so tests never
see each other's users), and stops every hub it started at the end: SIGTERM for the live
ones, then a check that none logged a traceback. ``own_redis`` is a redis-server for one
test alone, for faults that would disturb other tests (stopping it, killing its pub/sub
clients).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from hub.stores.presence.redis import RedisStore
from tests.support.hubproc import HubProcess, start_hub
from tests.support.redis_server import RedisServer, start_server

Spawn = Callable[..., HubProcess]
StoreFor = Callable[..., Awaitable[RedisStore]]


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own (stopped, restarted, its clients killed)."""
    server = start_server()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def channel(key_prefix: str) -> str:
    return f"{key_prefix}presence"


@pytest.fixture
def spawn(tmp_path: Path, key_prefix: str, channel: str) -> Iterator[Spawn]:
    """Start hubs on a store (``store=`` URL) with extra ``HUB_*`` settings."""
    started: list[HubProcess] = []

    def spawn_hub(name: str, store: str, **env: str) -> HubProcess:
        settings = {"HUB_STORE": store, "HUB_KEY_PREFIX": key_prefix, "HUB_CHANNEL": channel,
                    **env}  # fmt: skip
        hub = start_hub(tmp_path, settings, name=name)
        started.append(hub)
        return hub

    try:
        yield spawn_hub
    finally:
        # Every hub is stopped even when one of them fails to stop: none is left behind.
        errors: list[Exception] = []
        for hub in started:
            try:
                hub.stop()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
    for hub in started:
        hub.assert_no_tracebacks()


@pytest.fixture
async def store_for(key_prefix: str, channel: str) -> AsyncIterator[StoreFor]:
    """A RedisStore on a given URL with this test's prefix and channel (a load generator
    that changes presence without websockets); closed at the end."""
    opened: list[RedisStore] = []

    async def open_store(url: str, **options: int) -> RedisStore:
        store = RedisStore(url, key_prefix=key_prefix, channel=channel, **options)
        await store.start()
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        await store.close()
