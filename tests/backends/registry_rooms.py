"""The registry contract for rooms and the room feed, for memory, Redis and Redis Cluster."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from hub.model.text import InvalidText
from hub.stores.registry import Registry
from hub.stores.registry.base import (
    Conflict,
    RoomEvent,
    RoomFeedEvent,
    RoomLimitReached,
    RoomLimits,
)
from tests.backends.registry import RegistryFactory
from tests.support import eventually


async def test_create_get_edit_and_list_rooms(registry: Registry) -> None:
    """Rooms are created with a given or a fresh numeric id, edited and listed by creation."""
    lobby = await registry.create_room("lobby", "The Lobby")
    first = await registry.create_room(None, "Generated 1")
    second = await registry.create_room(None, "Generated 2")
    assert lobby.id == "lobby" and lobby.name == "The Lobby" and lobby.created > 0
    assert first.id.isdigit() and second.id.isdigit() and first.id != second.id
    assert await registry.get_room("lobby") == lobby
    edited = await registry.edit_room("lobby", "Main hall")
    assert edited is not None and edited.name == "Main hall" and edited.updated >= lobby.updated
    rooms, total = await registry.list_rooms(0, 10)
    assert [r.id for r in rooms] == ["lobby", first.id, second.id] and total == 3
    page, total = await registry.list_rooms(1, 1)
    assert [r.id for r in page] == [first.id] and total == 3


async def test_room_ids_are_unique(registry: Registry) -> None:
    """Creating an existing room is a Conflict; generated ids skip ids already taken."""
    await registry.create_room("1", "taken by hand")
    with pytest.raises(Conflict) as exc:
        await registry.create_room("1", "again")
    assert exc.value.field == "room"
    made = await registry.create_room(None, "fresh")
    assert made.id != "1"
    assert (await registry.get_room("1")).name == "taken by hand"  # type: ignore[union-attr]


async def test_unknown_room_reads_as_empty(registry: Registry) -> None:
    """An unknown room has no record, no members and no changes; edits and deletes are None."""
    assert await registry.get_room("nope") is None
    assert await registry.edit_room("nope", "x") is None
    assert await registry.delete_room("nope") is None
    assert await registry.members("nope") == set()
    assert await registry.member_count("nope") == 0
    assert await registry.member_changes("nope", 0) == []
    assert await registry.leave("nope", "u1") is None


async def test_join_and_leave_are_per_user_and_idempotent(registry: Registry) -> None:
    """Joining creates the room; a second join or a second leave changes nothing."""
    at1 = await registry.join("lobby", "u1")
    assert at1 is not None and await registry.get_room("lobby") is not None
    assert await registry.join("lobby", "u1") is None
    at2 = await registry.join("lobby", "u2")
    assert at2 is not None and at2 >= at1
    assert await registry.members("lobby") == {"u1", "u2"}
    assert await registry.member_count("lobby") == 2
    assert await registry.rooms_of("u1") == ["lobby"]
    left = await registry.leave("lobby", "u1")
    assert left is not None and left > at1
    assert await registry.leave("lobby", "u1") is None
    assert await registry.members("lobby") == {"u2"} and await registry.rooms_of("u1") == []


async def test_member_changes_since_a_cursor(registry: Registry) -> None:
    """member_changes lists joins and leaves at or after ``since``, with the membership now."""
    await registry.join("r", "old")
    joined = await registry.join("r", "u1")
    assert joined is not None
    await registry.join("r", "u2")
    await registry.leave("r", "u2")
    changes = await registry.member_changes("r", joined)
    assert {(c.user, c.member) for c in changes} >= {("u1", True), ("u2", False)}
    assert all(c.at >= joined for c in changes)
    assert [c.at for c in changes] == sorted(c.at for c in changes)


async def test_member_changes_keep_one_window(make_registry: RegistryFactory) -> None:
    """Membership changes older than the window are trimmed from the log."""
    registry = await make_registry(window_ms=200)
    first = await registry.join("r", "early")
    assert first is not None

    async def window_passed() -> bool:
        return time.time() * 1000 > first + 400

    await eventually(window_passed)
    await registry.join("r", "late")
    assert [c.user for c in await registry.member_changes("r", 0)] == ["late"]


async def test_deleting_a_room_makes_every_member_leave(registry: Registry) -> None:
    """A deleted room is gone; its members are reported as having left, at one ``at``."""
    await registry.join("r", "u1")
    await registry.join("r", "u2")
    await registry.join("other", "u1")
    result = await registry.delete_room("r")
    assert result is not None
    members, at = result
    assert members == ["u1", "u2"]
    assert await registry.get_room("r") is None and await registry.members("r") == set()
    assert await registry.rooms_of("u1") == ["other"] and await registry.rooms_of("u2") == []
    changes = await registry.member_changes("r", at)
    assert {(c.user, c.member, c.at) for c in changes} == {("u1", False, at), ("u2", False, at)}
    rooms, total = await registry.list_rooms(0, 10)
    assert [r.id for r in rooms] == ["other"] and total == 1


async def test_a_room_may_have_any_number_of_members(registry: Registry) -> None:
    """There is no cap on members: thousands join and are all read back."""
    users = [f"u{i}" for i in range(2500)]
    for start in range(0, len(users), 100):
        await asyncio.gather(*(registry.join("big", u) for u in users[start : start + 100]))
    assert await registry.member_count("big") == 2500
    assert await registry.members("big") == set(users)


class FeedReader:
    """Collects one registry's room feed in a task."""

    def __init__(self, registry: Registry) -> None:
        self.events: list[RoomFeedEvent] = []
        self._task = asyncio.create_task(self._run(registry))

    async def _run(self, registry: Registry) -> None:
        async for event in registry.room_events():
            self.events.append(event)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.fixture
async def reader() -> AsyncIterator[type[FeedReader]]:
    made: list[FeedReader] = []

    class Tracked(FeedReader):
        def __init__(self, registry: Registry) -> None:
            super().__init__(registry)
            made.append(self)

    yield Tracked
    for item in made:
        await item.close()


async def test_room_events_reach_every_node(
    make_registry: RegistryFactory, reader: type[FeedReader]
) -> None:
    """An event published by one node reaches the room feed of every node."""
    one, two = await make_registry(), await make_registry()
    here, there = reader(one), reader(two)
    probe = RoomEvent("r", [{"id": "probe", "at": 1, "member": True}], 1)

    async def subscribed() -> bool:
        # Pub/sub has no replay: publish until both feeds heard the probe.
        await one.publish_room(probe)
        return bool(here.events) and bool(there.events)

    await eventually(subscribed)
    seen = len(there.events)
    event = RoomEvent("r", [{"id": "u1", "status": "online", "at": 5, "member": True}], cursor=7)
    await one.publish_room(event)

    async def arrived() -> RoomFeedEvent:
        return next((e for e in there.events[seen:] if e == event), None)  # type: ignore[arg-type,return-value]

    got = await eventually(arrived)
    assert isinstance(got, RoomEvent) and got.entries[0]["member"] is True


# -- caps on the rooms joins create, and invalid text ------------------------------------


async def test_joins_create_rooms_up_to_the_users_cap(registry: Registry) -> None:
    """Past the per-user cap a join that would create a room is refused and creates
    nothing; joining a room that exists still works; deleting one frees a place."""
    limits = RoomLimits(per_user=2, total=0)
    assert await registry.join("a1", "alice", limits=limits) is not None
    assert await registry.join("a2", "alice", limits=limits) is not None
    with pytest.raises(RoomLimitReached) as caught:
        await registry.join("a3", "alice", limits=limits)
    assert caught.value.scope == "user" and "at most 2" in str(caught.value)
    assert await registry.get_room("a3") is None
    assert await registry.members("a3") == set()
    assert await registry.rooms_of("alice") == ["a1", "a2"]
    # Rooms made by others (or by the admin) are not the user's: joining them is fine.
    await registry.join("b1", "bob", limits=limits)
    await registry.create_room("admin-made", "Admin")
    assert await registry.join("b1", "alice", limits=limits) is not None
    assert await registry.join("admin-made", "alice", limits=limits) is not None
    # A deleted room no longer counts against its creator.
    assert await registry.delete_room("a1") is not None
    assert await registry.join("a3", "alice", limits=limits) is not None


async def test_joins_create_rooms_up_to_the_hubs_cap(registry: Registry) -> None:
    limits = RoomLimits(per_user=0, total=3)
    await registry.create_room("r1", "one")
    await registry.join("r2", "u1", limits=limits)
    await registry.join("r3", "u2", limits=limits)
    with pytest.raises(RoomLimitReached) as caught:
        await registry.join("r4", "u3", limits=limits)
    assert caught.value.scope == "hub" and "at most 3 rooms" in str(caught.value)
    assert await registry.get_room("r4") is None
    assert (await registry.list_rooms(0, 10))[1] == 3
    assert await registry.join("r1", "u3", limits=limits) is not None
    # Without limits (the admin's calls) nothing is capped.
    assert await registry.join("r4", "u3") is not None


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda r: r.join("\ud800", "u1"), "room"),
        (lambda r: r.join("room", "u\udfff"), "user"),
        (lambda r: r.create_room("\ud800", "name"), "room"),
        (lambda r: r.create_room(None, "bad \ud800"), "name"),
        (lambda r: r.edit_room("lobby", "\udc00"), "name"),
    ],
)
async def test_room_text_must_be_valid_unicode(registry: Registry, call, field) -> None:
    """A room id, name or user id with a lone surrogate is refused (InvalidText, naming the
    field) and nothing is created or changed."""
    await registry.create_room("lobby", "Lobby")
    with pytest.raises(InvalidText) as caught:
        await call(registry)
    assert caught.value.field == field and "surrogate" in str(caught.value)
    rooms, total = await registry.list_rooms(0, 10)
    assert total == 1 and rooms[0].name == "Lobby"
