"""A room member whose node is killed (kill -9: a hub process) goes offline, reaped by
the surviving hub, but stays a member of the room."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends.rooms import Connect
from tests.backends.rooms_presence import name, room_entry
from tests.support.hubproc import running_hubs


@pytest.mark.redis
async def test_a_dead_node_needs_no_room_cleanup(
    redis_url: str, key_prefix: str, tmp_path: Path, connect: Connect
) -> None:
    """A member whose node is killed goes offline (reaped) but stays a member of the room."""
    env = {"HUB_STORE": redis_url, "HUB_KEY_PREFIX": key_prefix,
           "HUB_CHANNEL": f"{key_prefix}presence", "HUB_OFFLINE_GRACE_S": "0",
           "HUB_NODE_TTL_S": "1"}  # fmt: skip
    with running_hubs(tmp_path, env) as (doomed, survivor):
        room, alice = name("r"), name("alice")
        a = await connect(doomed, alice)
        await a.request({"op": "join", "room": room})
        watcher = await connect(survivor, name("w"))
        await watcher.subscribe({"room": room})
        doomed.kill()
        reaped = await room_entry(watcher, room, alice, status="offline")
        assert reaped["member"] is True
        mark = watcher.mark()
        await connect(survivor, alice)
        await room_entry(watcher, room, alice, after=mark, status="online", member=True)
