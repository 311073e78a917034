"""Watchlists at scale, across two nodes (memory, Redis, Cluster): one ``sub`` of 10,000
ids; its snapshot lists every known user, offline ones with their last seen (unless
hidden), and names in ``unknown`` the ids the hub never saw; its deltas, named
``{users: true}``, carry only watched users; a watchlist of up to 100 ids is echoed in
full as before."""

from __future__ import annotations

import asyncio
import uuid

from tests.backends.rooms import Connect
from tests.support.hubproc import user_token
from tests.support.inproc import Hub
from tests.support.wsclient import MSGPACK, Frame, connect_user


def name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def test_a_10000_id_watchlist_tells_offline_from_unknown(
    nodes: tuple[Hub, Hub], connect: Connect
) -> None:
    """Known online, known offline (last seen shown or hidden) and never-seen ids come
    apart in the snapshot; later changes come as deltas of watched users only."""
    one, two = nodes
    online = [await connect(one, name("on")) for _ in range(5)]
    gone = [await connect(one, name("off")) for _ in range(3)]
    hidden = await connect(one, name("hid"))
    await hidden.request({"op": "status", "lastSeen": "nobody"})
    outsider = await connect(one, name("outsider"))
    for client in (*gone, hidden):
        await client.close()
    known = [c.ready["user"]["id"] for c in (*online, *gone, hidden)]
    late = name("late")
    unknown = [f"nobody-{n:05d}-{uuid.uuid4().hex[:6]}" for n in range(10_000 - len(known) - 1)]
    ids = [*known, late, *unknown]
    assert len(ids) == 10_000
    watcher = await connect_user(two.ws_url, user_token(name("watcher")), subprotocol=MSGPACK)
    try:
        snapshot = await watcher.subscribe({"users": ids}, timeout=30)
        assert snapshot["full"] is True and len(snapshot["scope"]["users"]) == 10_000
        by_id = {u["id"]: u for u in snapshot["users"]}
        assert set(by_id) == set(known), "every known user, offline ones too"
        assert sorted(snapshot["unknown"]) == sorted([late, *unknown])
        for client in online:
            assert by_id[client.ready["user"]["id"]]["status"] == "online"
        for client in gone:
            entry = by_id[client.ready["user"]["id"]]
            assert entry["status"] == "offline" and entry["lastSeen"] >= entry["at"] > 0
        hid = by_id[hidden.ready["user"]["id"]]
        assert hid["status"] == "offline" and "lastSeen" not in hid
        mark = watcher.mark()
        await asyncio.gather(*(c.request({"op": "status", "status": "busy"}) for c in online))
        await outsider.request({"op": "status", "status": "busy"})
        newcomer = await connect(one, late)
        for client in (*online, newcomer):
            await watcher.wait_status(client.ready["user"]["id"],
                                      "busy" if client is not newcomer else "online",
                                      after=mark, timeout=20)  # fmt: skip
        deltas = [f for f in watcher.frames[mark:] if f.get("op") == "delta"]
        assert deltas and all(f["scope"] == {"users": True} for f in deltas)
        watched = set(ids)
        assert all(u["id"] in watched for f in deltas for u in f["users"])
        changes = sum(len(f["users"]) for f in deltas)
        assert len(deltas) <= changes, "one frame per tick at most, not one per change"
        assert all(len(f) < 4096 for f in (str(d) for d in deltas)), "deltas stay small"
    finally:
        await watcher.close()


async def test_a_short_watchlist_is_echoed_in_full(
    nodes: tuple[Hub, Hub], connect: Connect
) -> None:
    """Up to 100 ids, deltas name the scope as the sub did; an unknown id is listed apart."""
    one, two = nodes
    alice = await connect(one, name("alice"))
    stranger = name("stranger")
    ids = [alice.ready["user"]["id"], stranger]
    watcher = await connect(two, name("watcher"))
    snapshot = await watcher.subscribe({"users": ids})
    assert snapshot["unknown"] == [stranger]
    assert [u["id"] for u in snapshot["users"]] == [ids[0]]
    mark = watcher.mark()
    await alice.request({"op": "status", "status": "away"})
    await watcher.wait_status(ids[0], "away", after=mark)
    delta: Frame = next(f for f in watcher.frames[mark:] if f.get("op") == "delta")
    assert delta["scope"] == {"users": ids}
