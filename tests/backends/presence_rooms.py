# ruff: noqa: F811 (the suite's fixtures are imported, then named as parameters)
"""The store contract for the room index, on every backend (memory, Redis, Redis Cluster):
the same fixtures as :mod:`tests.backends.presence_store`, so one suite for every store.

A room's numbers and order change in the same call as the presence change that moves a
member (read right after the call, no waiting); the order is online, away, busy, then
offline by last seen, ties by name then id, whatever the bucket count; slices by index and
pages after a key are exact; every move is published with its keys and a sequence number
that only grows per room and bucket, so a reader that applies the moves newer than its
read to that read sees what a fresh read shows.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

from hub.model.roster import Counts, Part, key_of, total_of, user_of
from hub.model.window import Region
from hub.stores.presence import PresenceStore
from hub.stores.presence.base import Moves
from tests.backends.presence_store import (  # noqa: F401 (fixtures of the one suite)
    Backend,
    Feed,
    StoreFactory,
    backend,
    feed_of,
    make_store,
    profile,
    store,
)
from tests.support import eventually


async def order_of(store: PresenceStore, room: str) -> list[str]:
    """Every member of ``room``, by one slice."""
    piece = await store.room_slice(room, 0, 10_000)
    assert piece.at_end and piece.start == 0
    return [user_of(key) for key, _ in piece.items]


async def expected_order(store: PresenceStore, room_members: list[str]) -> list[str]:
    """The documented order, computed from each member's presence entry."""
    views = {v.id: v.entry() for v in await store.users(room_members)}
    keys = [key_of(views[u]) if u in views else f"3{'f' * 12}\x00{u}" for u in room_members]
    return [user_of(k) for k in sorted(keys)]


async def test_numbers_change_in_the_same_call(store: PresenceStore) -> None:
    """Joins, status changes, disconnects and leaves show in the room's numbers at once."""
    await store.connect("n1", "c1", profile("ann"), "online")
    await store.connect("n1", "c2", profile("bob"), "away")
    assert await store.room_add("r", ["ann", "bob", "ghost"]) == 3
    assert await store.room_add("r", ["ann"]) == 0, "a member placed twice counts once"
    assert total_of(await store.room_counts("r")) == Counts(1, 1, 0, 3)
    await store.set_status("ann", status="busy")
    assert total_of(await store.room_counts("r")) == Counts(0, 1, 1, 3)
    await store.disconnect("n1", "c2", "bob", grace=False)
    assert total_of(await store.room_counts("r")) == Counts(0, 0, 1, 3)
    await store.connect("n1", "c3", profile("ghost"), "online")
    assert total_of(await store.room_counts("r")) == Counts(1, 0, 1, 3)
    assert await store.room_remove("r", ["ann", "nobody"]) == 1
    assert total_of(await store.room_counts("r")) == Counts(1, 0, 0, 2)
    assert total_of(await store.room_counts("elsewhere")) == Counts()


async def test_numbers_of_every_user(store: PresenceStore) -> None:
    """``room_counts(None)`` counts every known user: new ones in the total, statuses live."""
    before = total_of(await store.room_counts(None))
    await store.connect("n1", "c1", profile("ann"), "online")
    await store.connect("n1", "c2", profile("bob"), "online")
    await store.set_status("bob", status="away")
    after = total_of(await store.room_counts(None))
    assert after == Counts(before.online + 1, before.away + 1, before.busy, before.total + 2)
    await store.disconnect("n1", "c1", "ann", grace=False)
    gone = total_of(await store.room_counts(None))
    assert gone == Counts(before.online, before.away + 1, before.busy, before.total + 2)


async def test_the_order_is_online_away_busy_then_offline_by_last_seen(
    make_store: StoreFactory,
) -> None:
    """Members sort as documented (ties by name, then id), hidden last seen last."""
    store = await make_store(grace_ms=0)
    people = {"u1": "Zoe", "u2": "adam", "u3": "Adam", "u4": "Bea", "u5": "Bea", "u6": "Cy"}
    for n, (uid, name) in enumerate(people.items()):
        await store.connect("n1", f"c{n}", profile(uid, name=name), "online")
    await store.room_add("r", [*people, "never-seen"])
    await store.set_status("u1", status="busy")
    await store.activity("n1", "c3", "u4", "away")
    await store.disconnect("n1", "c5", "u6", grace=False)
    await store.disconnect("n1", "c2", "u3", grace=False)  # offline after u6: seen later
    await store.set_status("u2", hide_last_seen=True)
    await store.disconnect("n1", "c1", "u2", grace=False)
    order = await order_of(store, "r")
    # Unknown and hidden last seen tie at the end, then by name ("" before "adam").
    assert order == ["u5", "u4", "u1", "u3", "u6", "never-seen", "u2"]
    assert order == await expected_order(store, list(order))


async def test_slices_and_pages_agree_with_the_whole_order(make_store: StoreFactory) -> None:
    """Any slice by index, and pages after a key, are exact pieces of the order."""
    store = await make_store(grace_ms=0)
    rng = random.Random(7)
    ids = [f"m{n:03d}" for n in range(90)]
    for n, uid in enumerate(ids):
        await store.connect("n1", f"c{n}", profile(uid, name=f"N{rng.randrange(30)}"),
                            rng.choice(["online", "away"]))  # fmt: skip
    await store.room_add("r", ids)
    for uid in rng.sample(ids, 30):
        await store.set_status(uid, status=rng.choice(["busy", "offline", "online"]))
    whole = await order_of(store, "r")
    assert sorted(whole) == sorted(ids)
    for start, count in ((0, 5), (17, 9), (44, 30), (85, 20), (89, 1), (120, 3)):
        piece = await store.room_slice("r", start, count)
        got = [user_of(k) for k, _ in piece.items]
        assert piece.start == min(start, len(whole)), "past the end: empty, at the end"
        assert got == whole[piece.start : piece.start + count]
        assert piece.at_end == (piece.start + len(got) >= len(whole))
    paged: list[str] = []
    key = ""
    piece = await store.room_slice("r", 0, 7)
    while True:
        paged += [user_of(k) for k, _ in piece.items]
        if piece.at_end or not piece.items:
            break
        key = piece.items[-1][0]
        piece = await store.room_after("r", key, 7)
        assert piece.start == len(paged)
    assert paged == whole


async def test_moves_applied_to_a_read_equal_a_fresh_read(
    make_store: StoreFactory, feed_of: Callable[[PresenceStore], Awaitable[Feed]]
) -> None:
    """Moves published after a read, applied by sequence number, reproduce a new read."""
    store = await make_store(grace_ms=0)
    feed = await feed_of(store)
    ids = [f"w{n:02d}" for n in range(40)]
    for n, uid in enumerate(ids):
        await store.connect("n1", f"c{n}", profile(uid), "online")
    await store.room_add("r", ids[:30])

    async def every_bucket_heard() -> bool:
        # On a cluster each master's moves reach the feed over its own bus link.
        buckets = {e.bucket for e in feed.events if isinstance(e, Moves) and e.rooms}
        parts = await store.room_counts("r")
        return buckets >= {b for b, part in parts.items() if part.counts.total}

    await eventually(every_bucket_heard)
    piece = await store.room_slice("r", 5, 20)
    region = Region(piece.start, [k for k, _ in piece.items], piece.at_end)
    seqs = {b: part.seq for b, part in piece.parts.items()}
    rng = random.Random(3)
    for _ in range(60):
        uid = rng.choice(ids)
        action = rng.randrange(4)
        if action == 0:
            await store.set_status(uid, status=rng.choice(["online", "away", "busy"]))
        elif action == 1:
            await store.room_add("r", [uid])
        elif action == 2:
            await store.room_remove("r", [uid])
        else:
            await store.set_profile(profile(uid, name=f"Name {rng.randrange(9)}"))
    final = await store.room_counts("r")

    async def all_moves() -> list[Moves]:
        # Complete once every bucket's last move of the room has arrived.
        found = [e for e in feed.events if isinstance(e, Moves)]
        newest: dict[str, int] = {}
        for e in found:
            for m in e.rooms:
                if m.room == "r":
                    newest[e.bucket] = max(newest.get(e.bucket, 0), m.part.seq)
        assert all(newest.get(b, 0) >= p.seq for b, p in final.items() if p.seq), newest
        return found

    ok = True
    last: dict[str, int] = {}
    for event in await eventually(all_moves):
        for move in event.rooms:
            if move.room != "r":
                continue
            assert move.part.seq > last.get(event.bucket, 0), "seq grows per room and bucket"
            last[event.bucket] = move.part.seq
            if move.part.seq <= seqs.get(event.bucket, 0) or not ok:
                continue
            if move.before:
                ok = region.remove(move.before)
            if ok and move.after:
                ok = region.insert(move.after)
    fresh = await order_of(store, "r")
    assert ok, "this region never needed a read again"
    assert [user_of(k) for k in region.keys] == fresh[
        region.start : region.start + len(region.keys)
    ]
    assert total_of(final).total == len(fresh)
    assert all(isinstance(p, Part) for p in final.values())


async def test_a_room_whose_last_member_left_starts_again(store: PresenceStore) -> None:
    """A room emptied and filled again has the right numbers and a newer sequence number."""
    await store.connect("n1", "c1", profile("ann"), "online")
    await store.room_add("r", ["ann"])
    first = max(p.seq for p in (await store.room_counts("r")).values())
    await store.room_remove("r", ["ann"])
    assert total_of(await store.room_counts("r")) == Counts()
    await store.room_add("r", ["ann"])
    parts = await store.room_counts("r")
    assert total_of(parts) == Counts(1, 0, 0, 1)
    assert max(p.seq for p in parts.values()) > first


async def test_a_thousand_changes_leave_the_order_exact(make_store: StoreFactory) -> None:
    """After a burst of 1,000 presence changes the order is the documented one."""
    store = await make_store(grace_ms=0)
    ids = [f"b{n:02d}" for n in range(50)]
    for n, uid in enumerate(ids):
        await store.connect("n1", f"c{n}", profile(uid), "online")
    await store.room_add("r", ids)
    rng = random.Random(1000)
    for n in range(1000):
        uid = rng.choice(ids)
        if n % 10 == 0:
            await store.set_profile(profile(uid, name=f"P{rng.randrange(5)}"))
        else:
            await store.set_status(uid, status=rng.choice(["online", "away", "busy", "offline"]))

    async def exact() -> bool:
        order = await order_of(store, "r")
        assert order == await expected_order(store, order)
        counts = total_of(await store.room_counts("r"))
        statuses = [v.status for v in await store.users(ids)]
        assert counts == Counts(statuses.count("online"), statuses.count("away"),
                                statuses.count("busy"), len(ids))  # fmt: skip
        return True

    await eventually(exact)
