"""The room service and the fan-out's room scopes in one process, without sockets.

A :class:`Sink` is a real fan-out subscriber (a codec and a bounded outbox); the node, the
memory store and the memory registry are the real ones. Flushes are called directly, so
every frame a subscriber would get is read in order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub.model.presence import Entry
from hub.node.fanout import RESYNC, Outbox
from hub.node.node import Node
from hub.node.rooms import Rooms
from hub.ops.config import Settings
from hub.stores.local_feed import FEED_LIMIT
from hub.stores.presence.base import Profile
from hub.stores.presence.memory import MemoryStore
from hub.stores.registry.base import RoomEvent
from hub.stores.registry.memory import MemoryRegistry
from hub.wire.hub import JSON_CODEC, Scope
from tests.support import eventually


class Sink:
    """A room subscriber as the fan-out sees it."""

    def __init__(self) -> None:
        self.codec = JSON_CODEC
        self.outbox = Outbox()
        self.user = "watcher"

    async def drain(self) -> list[Any]:
        out: list[Any] = []
        while len(self.outbox):
            item = await asyncio.wait_for(self.outbox.get(), 1)
            out.append(RESYNC if item is RESYNC else json.loads(item))  # type: ignore[arg-type]
        return out


class Member:
    def __init__(self, user: str) -> None:
        self.user = user


@pytest.fixture
async def rooms() -> AsyncIterator[Rooms]:
    store = MemoryStore(grace_ms=0)
    node = Node(Settings(secret="s" * 40, admin_key="k" * 30), store)
    service = Rooms(node, MemoryRegistry())
    await service.start()
    yield service
    await service.stop()


async def online(rooms: Rooms, user: str) -> None:
    await rooms.node.store.connect("n1", f"c-{user}", Profile(user, user, user.title()),
                                   "online")  # fmt: skip


async def subscribe(rooms: Rooms, sink: Sink, room: str, since: int | None = None
                    ) -> tuple[list[Entry], bool, int]:  # fmt: skip
    scope = Scope("room", room=room)
    sub = rooms.node.fanout.subscribe(sink, scope)
    snapshot = await rooms.snapshot(room, since)
    rooms.node.fanout.go_live(sub, sink.codec, snapshot[2])
    return snapshot


async def delivered(rooms: Rooms, sink: Sink) -> list[Entry]:
    """Flush the fan-out and return every room entry the sink got."""
    rooms.node.fanout.flush()
    return [u for f in await sink.drain() if f is not RESYNC for u in f["users"]]


async def test_snapshot_loads_members_and_lists_those_not_offline(rooms: Rooms) -> None:
    """The first subscriber loads the member set; the snapshot holds members online."""
    await online(rooms, "alice")
    for user in ("alice", "carol"):
        await rooms.add_member("lobby", user)
    sink = Sink()
    users, full, cursor = await subscribe(rooms, sink, "lobby")
    assert full and cursor > 0
    assert [(u["id"], u["member"]) for u in users] == [("alice", True)]
    assert rooms.node.fanout.room_members("lobby") == {"alice", "carol"}


async def test_events_update_members_and_reach_subscribers(rooms: Rooms) -> None:
    """A join from the feed adds a member; its later presence changes are delivered."""
    sink = Sink()
    await subscribe(rooms, sink, "lobby")
    await online(rooms, "bob")
    await rooms.add_member("lobby", "bob")

    async def joined() -> list[Entry]:
        return [e for e in await delivered(rooms, sink) if e["id"] == "bob" and e["member"]]

    await eventually(joined)
    await rooms.node.store.set_status("bob", status="busy")
    batch = (await rooms.node.store.changes(0)).users
    rooms.node.fanout.feed([v.entry() for v in batch], 0)
    entries = await delivered(rooms, sink)
    assert {"id": "bob", "status": "busy", "member": True}.items() <= entries[-1].items()


async def test_presence_of_non_members_is_not_delivered(rooms: Rooms) -> None:
    """Among many members and few changes (or the other way round) only members show."""
    sink = Sink()
    await subscribe(rooms, sink, "big")
    fanout = rooms.node.fanout
    fanout.set_room_members("big", {f"m{i}" for i in range(5000)})
    fanout.feed([{"id": "m7", "status": "away", "at": 1}, {"id": "x", "status": "away", "at": 1}],
                1)  # fmt: skip
    assert [e["id"] for e in await delivered(rooms, sink)] == ["m7"]
    fanout.set_room_members("big", {"m1"})
    fanout.feed([{"id": f"m{i}", "status": "busy", "at": 2} for i in range(300)], 2)
    assert [e["id"] for e in await delivered(rooms, sink)] == ["m1"]


async def test_the_last_unsubscribe_drops_the_member_set(rooms: Rooms) -> None:
    """A node keeps a room's members only while it has subscribers for the room."""
    sink = Sink()
    await rooms.add_member("r", "alice")
    await subscribe(rooms, sink, "r")
    assert rooms.node.fanout.knows_room("r")
    rooms.node.fanout.unsubscribe(sink, Scope("room", room="r"))
    assert not rooms.node.fanout.knows_room("r")
    rooms.apply(RoomEvent("r", [{"id": "bob", "at": 5, "member": True}], 5))
    assert not rooms.node.fanout.knows_room("r"), "events for unwatched rooms are ignored"


async def test_events_during_the_load_are_not_lost(rooms: Rooms) -> None:
    """A join whose event arrives while the member set is being read is not lost."""

    class RacingRegistry(MemoryRegistry):
        """Reads the members, then a join lands and its event arrives before the read
        returns: the race a real Redis round trip leaves room for."""

        async def members(self, room: str) -> set[str]:
            found = await super().members(room)
            at = await self.join(room, "late")
            assert at is not None
            rooms.apply(RoomEvent(room, [{"id": "late", "at": at, "member": True}], at))
            return found

    rooms.registry = RacingRegistry()
    await rooms.registry.join("r", "early")
    sink = Sink()
    rooms.node.fanout.subscribe(sink, Scope("room", room="r"))
    assert await rooms._track("r") == {"early", "late"}
    assert rooms.node.fanout.room_members("r") == {"early", "late"}


async def test_a_gap_reloads_member_sets_and_resyncs_room_subscribers(rooms: Rooms) -> None:
    """After the room feed lost events, member sets are dropped and subscribers resync."""
    sink = Sink()
    await rooms.add_member("r", "alice")
    await subscribe(rooms, sink, "r")
    rooms._gap()
    assert not rooms.node.fanout.knows_room("r")
    assert RESYNC in await sink.drain()
    await rooms.add_member("r", "bob")
    await rooms.snapshot("r", None)
    assert rooms.node.fanout.room_members("r") == {"alice", "bob"}


async def test_a_feed_overflow_turns_into_a_gap(rooms: Rooms) -> None:
    """Events beyond what the feed queues reach the service as one RoomGap."""
    # Publishing never yields to the loop, so the consumer cannot drain in between.
    for n in range(FEED_LIMIT + 5):
        await rooms.registry.publish_room(RoomEvent("elsewhere", [], n))

    async def counted() -> bool:
        return rooms.gaps == 1

    await eventually(counted)


async def test_delta_since_a_cursor(rooms: Rooms) -> None:
    """A cursor inside the window gets members changed since and users who left."""
    await online(rooms, "alice")
    await online(rooms, "carol")
    await rooms.add_member("r", "alice")
    sink = Sink()
    _, _, cursor = await subscribe(rooms, sink, "r")
    rooms.node.fanout.unsubscribe(sink, Scope("room", room="r"))
    await rooms.add_member("r", "carol")
    await rooms.remove_member("r", "alice")
    users, full, _ = await subscribe(rooms, Sink(), "r", since=cursor)
    assert not full
    assert {u["id"]: u["member"] for u in users} == {"carol": True, "alice": False}


async def test_deleting_a_room_publishes_member_false(rooms: Rooms) -> None:
    """A deleted room's members leave, each as member: false to subscribers."""
    sink = Sink()
    for user in ("alice", "bob"):
        await rooms.add_member("r", user)
    await subscribe(rooms, sink, "r")
    assert await rooms.delete("r")
    assert not await rooms.delete("r")

    async def left() -> set[str]:
        return {e["id"] for e in await delivered(rooms, sink) if e["member"] is False}

    assert await eventually(left) == {"alice", "bob"}
    assert await rooms.online("r") == []
