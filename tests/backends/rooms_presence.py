"""Rooms on the websocket, across two nodes: join, leave, ``sub room`` snapshots and deltas."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.backends.rooms import Connect
from tests.support.hubproc import TEST_ADMIN_KEY
from tests.support.inproc import InProcessHub
from tests.support.wsclient import WsClient

Frame = dict[str, Any]


def name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def room_entries(client: WsClient, room: str, user: str, *, after: int = 0) -> list[Frame]:
    """Every entry about ``user`` in frames of the room scope from ``after`` on."""
    out = []
    for frame in client.frames[after:]:
        if frame.get("op") in ("snapshot", "delta") and frame.get("scope") == {"room": room}:
            out += [u for u in frame["users"] if u["id"] == user]
    return out


async def room_entry(
    client: WsClient, room: str, user: str, *, after: int = 0, **want: Any
) -> Frame:
    """Wait for a room-scope entry about ``user`` with the fields in ``want``."""

    def matches(frame: Frame) -> bool:
        return (frame.get("op") in ("snapshot", "delta") and frame.get("scope") == {"room": room}
                and any(u["id"] == user and all(u.get(k) == v for k, v in want.items())
                        for u in frame["users"]))  # fmt: skip

    frame = await client.wait_for(matches, after=after, what=f"{user} {want} in {room}")
    return next(u for u in frame["users"] if u["id"] == user
                and all(u.get(k) == v for k, v in want.items()))  # fmt: skip


async def test_members_arrive_change_and_leave(
    nodes: tuple[InProcessHub, InProcessHub], connect: Connect
) -> None:
    """A subscriber on node 2 sees members join, change status and leave on node 1."""
    one, two = nodes
    room = name("lobby")
    alice, carol, dave = name("alice"), name("carol"), name("dave")
    a = await connect(one, alice)
    await a.request({"op": "join", "room": room})
    watcher = await connect(two, name("bob"))
    snapshot = await watcher.subscribe({"room": room})
    assert snapshot["full"] is True
    assert [(u["id"], u["status"], u["member"]) for u in snapshot["users"]] == [
        (alice, "online", True)]  # fmt: skip
    c = await connect(one, carol)
    await c.request({"op": "join", "room": room})
    arrived = await room_entry(watcher, room, carol, member=True)
    assert arrived["status"] == "online" and arrived["name"] == carol.title()
    await a.request({"op": "status", "status": "busy", "text": "in a call"})
    busy = await room_entry(watcher, room, alice, status="busy")
    assert busy["member"] is True and busy["text"] == "in a call"
    outsider = await connect(one, dave)
    mark = watcher.mark()
    await outsider.request({"op": "status", "status": "away"})
    await c.request({"op": "leave", "room": room})
    left = await room_entry(watcher, room, carol, after=mark, member=False)
    assert left["at"] >= arrived["at"]
    assert room_entries(watcher, room, dave) == [], "a non-member never shows in the room"
    mark = watcher.mark()
    await c.request({"op": "status", "status": "busy"})
    await a.request({"op": "status", "status": "online"})
    await room_entry(watcher, room, alice, after=mark, status="online")
    assert room_entries(watcher, room, carol, after=mark) == [], "a former member is quiet"


async def test_membership_outlives_connections(
    nodes: tuple[InProcessHub, InProcessHub], connect: Connect
) -> None:
    """A member who disconnects stays a member: offline, then online again on reconnect."""
    one, two = nodes
    room, alice = name("r"), name("alice")
    a = await connect(one, alice)
    await a.request({"op": "join", "room": room})
    watcher = await connect(two, name("w"))
    await watcher.subscribe({"room": room})
    await a.close()
    gone = await room_entry(watcher, room, alice, status="offline")
    assert gone["member"] is True
    fresh = await connect(two, name("late"))
    snapshot = await fresh.subscribe({"room": room})
    assert snapshot["users"] == [], "the snapshot lists members who are not offline"
    mark = watcher.mark()
    await connect(two, alice)
    back = await room_entry(watcher, room, alice, after=mark, status="online")
    assert back["member"] is True, "no new join needed"


async def test_join_and_leave_are_idempotent(
    nodes: tuple[InProcessHub, InProcessHub], connect: Connect
) -> None:
    """A second join, or leaving a room one is not in, is acknowledged and changes nothing."""
    one, two = nodes
    room, alice = name("r"), name("alice")
    a = await connect(one, alice)
    watcher = await connect(two, name("w"))
    await watcher.subscribe({"room": room})
    await a.request({"op": "leave", "room": room})
    await a.request({"op": "join", "room": room})
    await a.request({"op": "join", "room": room})
    await room_entry(watcher, room, alice, member=True)
    await a.request({"op": "leave", "room": room})
    await room_entry(watcher, room, alice, member=False)
    joins = [e for e in room_entries(watcher, room, alice) if e["member"]]
    assert len(joins) == 1, joins


async def test_resume_with_a_cursor_reports_who_left(
    nodes: tuple[InProcessHub, InProcessHub], connect: Connect
) -> None:
    """``sub room`` with a cursor answers the changes since: arrivals and member: false."""
    one, two = nodes
    room, alice, carol = name("r"), name("alice"), name("carol")
    a = await connect(one, alice)
    await a.request({"op": "join", "room": room})
    watcher = await connect(two, name("w"))
    first = await watcher.subscribe({"room": room})
    cursor = first["cursor"]
    await watcher.request({"op": "unsub", "room": room})
    c = await connect(one, carol)
    await c.request({"op": "join", "room": room})
    await a.request({"op": "leave", "room": room})
    resumed = await watcher.subscribe({"room": room}, since=cursor)
    assert resumed["full"] is False and resumed["cursor"] >= cursor
    got = {u["id"]: u["member"] for u in resumed["users"]}
    assert got == {carol: True, alice: False}
    assert all(u["at"] >= cursor for u in resumed["users"])
    mark = watcher.mark()
    await c.request({"op": "status", "status": "away"})
    await room_entry(watcher, room, carol, after=mark, status="away")


async def test_deleting_a_room_reports_every_member_left(
    nodes: tuple[InProcessHub, InProcessHub], connect: Connect
) -> None:
    """iFlyChat's room delete on node 1 sends member: false for each member to node 2."""
    one, two = nodes
    room, alice, carol = name("r"), name("alice"), name("carol")
    for user in (alice, carol):
        client = await connect(one, user)
        await client.request({"op": "join", "room": room})
    watcher = await connect(two, name("w"))
    snapshot = await watcher.subscribe({"room": room})
    assert {u["id"] for u in snapshot["users"]} == {alice, carol}
    async with httpx.AsyncClient(base_url=one.url) as http:
        response = await http.post(f"/api/1.1/room/{room}/delete",
                                   json={"api_key": TEST_ADMIN_KEY})  # fmt: skip
    assert response.json() == {"success": True}
    await room_entry(watcher, room, alice, member=False)
    await room_entry(watcher, room, carol, member=False)
    watcher.state.users.clear()
    again = await watcher.subscribe({"room": f"{room}"})
    assert again["users"] == []
