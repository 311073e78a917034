"""Counts on the websocket, across two nodes (memory, Redis, Cluster): a room's numbers and
everyone's, on subscription and then once a tick when a number changed; the same numbers
on REST; and ``HUB_ROOM_FULL_LIST_MAX``, above which a plain room subscription is refused
with ``limit`` naming counts and range, while nothing changes below it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.backends.rooms import Connect, start_nodes, store_env
from tests.support.hubproc import ADMIN_HEADERS
from tests.support.inproc import Hub
from tests.support.views import counts, room_counts
from tests.support.wsclient import Frame, WsClient


def name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def numbers(frame: Frame | None) -> tuple[int, int, int, int] | None:
    if frame is None:
        return None
    return frame["online"], frame["away"], frame["busy"], frame["total"]


async def until_counts(client: WsClient, scope: Frame, want: tuple[int, int, int, int]) -> Frame:
    """Wait for a ``counts`` frame of ``scope`` with these numbers."""
    return await client.wait_for(
        lambda f: f.get("op") == "counts" and f.get("scope") == scope and numbers(f) == want,
        what=f"counts {want} of {scope}",
    )


async def test_room_counts_follow_members_on_another_node(
    nodes: tuple[Hub, Hub], connect: Connect
) -> None:
    """A counts subscriber on node 2 sees joins, status changes and leaves made on node 1."""
    one, two = nodes
    room = name("webinar")
    scope = {"room": room, "counts": True}
    alice, bob, carol = [await connect(one, name(n)) for n in ("alice", "bob", "carol")]
    for client in (alice, bob):
        await client.request({"op": "join", "room": room})
    watcher = await connect(two, name("watcher"))
    mark = watcher.mark()
    await watcher.request({"op": "sub", **scope})
    first = await watcher.wait_for(lambda f: f.get("op") == "counts", after=mark)
    assert first["scope"] == scope and numbers(first) == (2, 0, 0, 2)
    assert isinstance(first["cursor"], int) and first["cursor"] > 0
    await carol.request({"op": "join", "room": room})
    await until_counts(watcher, scope, (3, 0, 0, 3))
    await alice.request({"op": "status", "status": "busy"})
    await bob.request({"op": "activity", "state": "away"})
    await until_counts(watcher, scope, (1, 1, 1, 3))
    await carol.close()
    await until_counts(watcher, scope, (0, 1, 1, 3))
    await alice.request({"op": "leave", "room": room})
    last = await until_counts(watcher, scope, (0, 1, 0, 2))
    rest = await room_counts(two, room)
    assert (rest["online"], rest["away"], rest["busy"], rest["total"]) == (0, 1, 0, 2)
    assert rest["room"] == room and rest["cursor"] >= last["cursor"] >= first["cursor"]


async def test_counts_frames_come_only_when_a_number_changed(
    nodes: tuple[Hub, Hub], connect: Connect
) -> None:
    """A change that moves no number (a status text) sends no counts frame."""
    one, two = nodes
    room = name("quiet")
    scope = {"room": room, "counts": True}
    alice = await connect(one, name("alice"))
    await alice.request({"op": "join", "room": room})
    watcher = await connect(two, name("watcher"))
    await watcher.request({"op": "sub", **scope})
    await until_counts(watcher, scope, (1, 0, 0, 1))
    mark = watcher.mark()
    await alice.request({"op": "status", "text": "only my text"})
    await alice.request({"op": "status", "status": "busy"})
    await until_counts(watcher, scope, (0, 0, 1, 1))
    frames = [f for f in watcher.frames[mark:] if f.get("op") == "counts"]
    assert [numbers(f) for f in frames] == [(0, 0, 1, 1)], frames


async def test_counts_of_all(nodes: tuple[Hub, Hub], connect: Connect) -> None:
    """``{all: true, counts: true}`` counts every known user, offline ones in the total."""
    one, two = nodes
    scope = {"all": True, "counts": True}
    watcher = await connect(two, name("watcher"))
    await watcher.request({"op": "sub", **scope})
    before = numbers(await watcher.wait_for(lambda f: f.get("op") == "counts"))
    assert before is not None
    online, away, busy, total = before
    alice = await connect(one, name("alice"))
    await until_counts(watcher, scope, (online + 1, away, busy, total + 1))
    await alice.request({"op": "status", "status": "away"})
    await until_counts(watcher, scope, (online, away + 1, busy, total + 1))
    await alice.close()
    await until_counts(watcher, scope, (online, away, busy, total + 1))


async def test_counts_and_list_of_one_room_live_side_by_side(
    nodes: tuple[Hub, Hub], connect: Connect
) -> None:
    """A connection may hold a room's list and its counts; unsub of one keeps the other."""
    one, two = nodes
    room = name("both")
    alice = await connect(one, name("alice"))
    await alice.request({"op": "join", "room": room})
    watcher = await connect(two, name("watcher"))
    await watcher.subscribe({"room": room})
    await watcher.request({"op": "sub", "room": room, "counts": True})
    await watcher.request({"op": "unsub", "room": room, "counts": True})
    mark = watcher.mark()
    await alice.request({"op": "status", "status": "busy"})
    await watcher.wait_status(alice.ready["user"]["id"], "busy", after=mark)
    assert counts(watcher, {"room": room, "counts": True}) is not None
    assert not any(f.get("op") == "counts" for f in watcher.frames[mark:])
    error = await watcher.request({"op": "unsub", "room": room, "counts": True}, expect="error")
    assert error["code"] == "not_subscribed"


async def test_rest_counts_refuses_bad_input(nodes: tuple[Hub, Hub]) -> None:
    """``rooms.counts`` names a missing room parameter, 404s an unknown room, wants a token."""
    one, _ = nodes
    async with httpx.AsyncClient(base_url=one.url, trust_env=False, timeout=10) as http:
        missing = await http.get("/api/v1/rooms.counts", headers=ADMIN_HEADERS)
        unknown = await http.get("/api/v1/rooms.counts", headers=ADMIN_HEADERS,
                                 params={"room": name("nowhere")})  # fmt: skip
        anonymous = await http.get("/api/v1/rooms.counts", params={"room": "x"})
    assert missing.status_code == 400 and "room" in missing.json()["error"]
    assert unknown.status_code == 404 and "no room" in unknown.json()["error"]
    assert anonymous.status_code == 401


# -- the full-list threshold -------------------------------------------------------------

LIMIT = 3


@pytest.fixture
def small_lists(request: pytest.FixtureRequest, backend_name: str, key_prefix: str
                ) -> Iterator[Hub]:  # fmt: skip
    """A hub whose plain room subscriptions stop at LIMIT members."""
    env = {"HUB_ROOM_FULL_LIST_MAX": str(LIMIT), "HUB_OFFLINE_GRACE_S": "0",
           **store_env(request, backend_name, key_prefix)}  # fmt: skip
    (hub,) = start_nodes(env, 1)
    try:
        yield hub
    finally:
        hub.stop()
        hub.assert_no_tracebacks()


async def test_a_room_above_the_threshold_refuses_the_full_list(
    small_lists: Hub, connect: Connect
) -> None:
    """Above HUB_ROOM_FULL_LIST_MAX a plain sub gets limit naming counts and range; at it,
    the plain sub works as ever, and counts and range work at any size."""
    room = name("big")
    members = [await connect(small_lists, name(f"m{n}")) for n in range(LIMIT)]
    for member in members:
        await member.request({"op": "join", "room": room})
    watcher = await connect(small_lists, name("watcher"))
    snapshot = await watcher.subscribe({"room": room})
    assert len(snapshot["users"]) == LIMIT, "at the threshold nothing changes"
    late = await connect(small_lists, name("late"))
    await late.request({"op": "join", "room": room})
    fresh = await connect(small_lists, name("fresh"))
    error = await fresh.request({"op": "sub", "room": room}, expect="error")
    assert error["code"] == "limit"
    assert "counts" in error["message"] and "range" in error["message"]
    assert str(LIMIT) in error["message"] and "HUB_ROOM_FULL_LIST_MAX" in error["message"]
    await fresh.request({"op": "sub", "room": room, "counts": True})
    await until_counts(fresh, {"room": room, "counts": True}, (LIMIT + 1, 0, 0, LIMIT + 1))
    await fresh.request({"op": "sub", "room": room, "range": [0, 1]})
    shown = await fresh.wait_for(lambda f: f.get("op") == "snapshot" and "range" in f["scope"])
    assert len(shown["users"]) == 2 and shown["total"] == LIMIT + 1
    mark = watcher.mark()
    await late.request({"op": "status", "status": "busy"})
    await watcher.wait_status(late.ready["user"]["id"], "busy", after=mark)
