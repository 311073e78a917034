"""The registry contract for users (tests/backends/registry_users.py) on Redis and Redis
Cluster, and a crash between reserving a name and writing the account, repaired."""

from __future__ import annotations

import pytest

from hub.stores.registry import redis as redis_registry
from hub.stores.registry.base import Conflict
from hub.stores.registry.redis import RedisRegistry
from tests.backends.registry_users import *  # noqa: F403
from tests.backends.registry_users import user


@pytest.mark.redis
async def test_a_crash_between_reserving_and_writing_is_repaired(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reservation left without an account (a crash) is freed by the next create."""
    registry = RedisRegistry(redis_url, key_prefix=key_prefix)
    await registry.start()
    # Redis creates an account in two steps; this is the state a crash between them leaves.
    await registry._run("claim", registry.keys.index(), ["u1", "neo"])
    with pytest.raises(Conflict):
        await registry.create(user("u1", "neo"))
    monkeypatch.setattr(redis_registry, "ORPHAN_AGE_MS", 0)
    made = await registry.create(user("u1", "neo"))
    assert made.created > 0 and await registry.get("u1") == made
    await registry.close()
