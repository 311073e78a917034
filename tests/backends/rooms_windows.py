"""Member windows on the websocket, across two nodes (memory, Redis, Cluster): a
``range`` subscription gets its members in the window order, then ``window`` frames that
keep exactly that window, checked against REST ``rooms.members``: while members join,
change and leave, while the client moves its range, and after a burst of 1,000 changes."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import httpx

from hub.model.roster import key_of
from tests.backends.rooms import Connect
from tests.support import eventually
from tests.support.hubproc import ADMIN_HEADERS, TEST_ADMIN_KEY
from tests.support.inproc import Hub
from tests.support.views import Window, members, shown, window
from tests.support.wsclient import Frame, WsClient

#: How long a window gets to settle after the last change (a loaded 2-core machine).
SETTLE_S = 20.0


def name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def sub_window(client: WsClient, room: str, first: int, last: int) -> Frame:
    """``sub`` with a range; the window's snapshot."""
    scope = {"room": room, "range": [first, last]}
    return await client.subscribe(scope)


async def matches_rest(client: WsClient, hub: Hub, room: str) -> Window:
    """Wait until the client's window equals the same members on REST, exactly."""

    async def same() -> Window | None:
        held = window(client, room)
        assert held is not None, "no window snapshot yet"
        first, last = held.range
        page = await members(hub, room, first, last - first + 1)
        want = [shown(m) for m in page["members"]]
        assert [shown(u) for u in held.users] == want, (held.ids, [m["id"] for m in
                                                                   page["members"]])  # fmt: skip
        assert held.total == page["total"]
        return held

    return await eventually(same, timeout=SETTLE_S, interval=0.1)


async def set_status(http: httpx.AsyncClient, user: str, **body: Any) -> None:
    """``users.setStatus`` for ``user``, as the admin (Rocket.Chat style)."""
    headers = {"X-Auth-Token": TEST_ADMIN_KEY, "X-User-Id": "admin"}
    reply = await http.post("/api/v1/users.setStatus", headers=headers,
                            json={"userId": user, **body})  # fmt: skip
    assert reply.status_code == 200, reply.text


async def populate(hub: Hub, connect: Connect, room: str, count: int) -> list[WsClient]:
    members_ = [await connect(hub, name(f"m{n:02d}")) for n in range(count)]
    await asyncio.gather(*(m.request({"op": "join", "room": room}) for m in members_))
    return members_


async def test_a_window_follows_members_across_nodes(
    nodes: tuple[Hub, Hub], connect: Connect
) -> None:
    """A window on node 2 stays equal to rooms.members while members on node 1 join,
    change status, go offline (then by last seen) and leave."""
    one, two = nodes
    room = name("lobby")
    people = await populate(one, connect, room, 6)
    watcher = await connect(two, name("watcher"))
    snapshot = await sub_window(watcher, room, 0, 3)
    assert snapshot["full"] is True and snapshot["total"] == 6 and len(snapshot["users"]) == 4
    keys = [key_of(u) for u in snapshot["users"]]
    assert keys == sorted(keys), "members in the window order"
    await matches_rest(watcher, two, room)
    await people[5].request({"op": "status", "status": "busy"})
    await people[4].request({"op": "activity", "state": "away"})
    await people[0].close()
    await people[1].close()
    late = await connect(one, name("a-late"))
    await late.request({"op": "join", "room": room})
    held = await matches_rest(watcher, two, room)
    assert held.frames > 0, "kept by window frames, not by snapshots"
    await people[2].request({"op": "leave", "room": room})
    await people[3].request({"op": "status", "status": "offline"})
    await matches_rest(watcher, two, room)
    # Every member, online first and offline last (the most recently seen first).
    page = await members(two, room, 0, 100)
    statuses = [m["status"] for m in page["members"]]
    assert statuses == sorted(statuses, key=["online", "away", "busy", "offline"].index)
    seen = [m.get("lastSeen", 0) for m in page["members"] if m["status"] == "offline"]
    assert seen == sorted(seen, reverse=True)


async def test_moving_the_range_while_members_change(
    nodes: tuple[Hub, Hub], connect: Connect
) -> None:
    """A client moving its window while members keep changing ends on the right members."""
    one, two = nodes
    room = name("scroll")
    people = await populate(one, connect, room, 14)
    watcher = await connect(two, name("watcher"))
    await sub_window(watcher, room, 0, 3)
    stop = asyncio.Event()
    rng = random.Random(18)

    async def churn() -> None:
        while not stop.is_set():
            member = rng.choice(people)
            await member.request({"op": "status", "status": rng.choice(
                ["online", "away", "busy", "offline"])})  # fmt: skip

    task = asyncio.create_task(churn())
    try:
        for first, last in ((4, 7), (8, 13), (2, 5), (10, 20)):
            mark = watcher.mark()
            scope = {"room": room, "range": [first, last]}
            await watcher.request({"op": "range", **scope})
            moved = await watcher.wait_for(
                lambda f, s=scope: f.get("op") == "snapshot" and f["scope"] == s, after=mark
            )
            assert len(moved["users"]) == min(last, 13) - first + 1
    finally:
        stop.set()
        await task
    held = await matches_rest(watcher, two, room)
    assert held.range == (10, 20) and len(held.users) == 4


async def test_a_window_after_a_burst_of_1000_changes(
    nodes: tuple[Hub, Hub], connect: Connect
) -> None:
    """After 1,000 status changes made through REST on node 1, three windows on two nodes
    hold exactly what rooms.members lists for their ranges."""
    one, two = nodes
    room = name("burst")
    people = await populate(one, connect, room, 40)
    for gone in people[30:]:
        await gone.close()
    watchers = [await connect(two, name("w1")), await connect(two, name("w2")),
                await connect(one, name("w3"))]  # fmt: skip
    ranges = [(0, 9), (10, 24), (25, 39)]
    for client, (first, last) in zip(watchers, ranges, strict=True):
        await sub_window(client, room, first, last)
    ids = [p.ready["user"]["id"] for p in people[:30]]
    rng = random.Random(1000)
    changes = [(rng.choice(ids), rng.choice(["online", "away", "busy", "offline"]),
                f"t{n % 7}") for n in range(1000)]  # fmt: skip
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=one.url, trust_env=False, timeout=20) as http:

        async def change(user: str, status: str, text: str) -> None:
            async with gate:
                await set_status(http, user, status=status, message=text)

        await asyncio.gather(*(change(*c) for c in changes))
    for client, hub in zip(watchers, (two, two, one), strict=True):
        held = await matches_rest(client, hub, room)
        assert held.total == 40


async def test_window_input_is_checked(nodes: tuple[Hub, Hub], connect: Connect) -> None:
    """A bad range names the field, a range op without a window is not_subscribed, and
    neither changes the window the connection holds."""
    one, _ = nodes
    room = name("bad")
    await populate(one, connect, room, 2)
    client = await connect(one, name("client"))
    for bad, word in (([3, 1], "range"), ([0, 500], "at most 500"), ("0-9", "range"),
                      ([-1, 3], "range"), ([0, True], "range")):  # fmt: skip
        error = await client.request({"op": "sub", "room": room, "range": bad}, expect="error")
        assert error["code"] == "bad_field" and word in error["message"], error
    error = await client.request({"op": "range", "room": room, "range": [0, 1]}, expect="error")
    assert error["code"] == "not_subscribed"
    error = await client.request({"op": "sub", "room": room, "range": [0, 1], "since": 5},
                                 expect="error")  # fmt: skip
    assert error["code"] == "bad_field" and "since" in error["message"]
    error = await client.request({"op": "sub", "users": ["a"], "counts": True}, expect="error")
    assert error["code"] == "bad_field" and "counts" in error["message"]
    await sub_window(client, room, 0, 1)
    mark = client.mark()
    error = await client.request({"op": "range", "room": room, "range": [1, 0]}, expect="error")
    assert error["code"] == "bad_field"
    assert not any(f.get("op") == "snapshot" for f in client.frames[mark:])
    held = window(client, room)
    assert held is not None and held.range == (0, 1)


async def test_rest_pages_follow_a_cursor_while_members_move(
    nodes: tuple[Hub, Hub], connect: Connect
) -> None:
    """rooms.members pages by cursor: a member leaving before the cursor shifts nobody, and
    the pages together hold every member that stayed put, once, in order."""
    one, two = nodes
    room = name("pages")
    people = await populate(one, connect, room, 9)
    first = await members(two, room, 0, 3)
    assert first["offset"] == 0 and first["count"] == 3 and first["cursor"]
    await people[0].request({"op": "leave", "room": room})
    await people[1].request({"op": "leave", "room": room})
    left = {people[0].ready["user"]["id"], people[1].ready["user"]["id"]}
    seen = [m["id"] for m in first["members"]]
    cursor = first["cursor"]
    async with httpx.AsyncClient(base_url=two.url, trust_env=False, timeout=10) as http:
        while cursor:
            reply = await http.get("/api/v1/rooms.members", headers=ADMIN_HEADERS,
                                   params={"room": room, "cursor": cursor, "count": 3})  # fmt: skip
            assert reply.status_code == 200, reply.text
            page = reply.json()
            seen += [m["id"] for m in page["members"]]
            cursor = page["cursor"]
        bad = await http.get("/api/v1/rooms.members", headers=ADMIN_HEADERS,
                             params={"room": room, "cursor": "not-a-cursor"})  # fmt: skip
        big = await http.get("/api/v1/rooms.members", headers=ADMIN_HEADERS,
                             params={"room": room, "count": 10_001})  # fmt: skip
    everyone = sorted(p.ready["user"]["id"] for p in people)
    assert sorted(set(seen) - left) == sorted(set(everyone) - left)
    assert len(seen) == len(set(seen)), "nobody twice"
    assert bad.status_code == 400 and "cursor" in bad.json()["error"]
    assert big.status_code == 400 and "count" in big.json()["error"]
