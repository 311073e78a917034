"""Fan-out without sockets: coalescing per tick, encode once, scopes, buffering, overflow.

A :class:`Client` is a real implementation of fan-out's ``Sink`` (a codec and a bounded
outbox), so these tests read exactly the frames a websocket writer would send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from typing import Any

import msgpack
import pytest

from hub.model.presence import Entry
from hub.node.fanout import RESYNC, Fanout, Outbox
from hub.wire.hub import ALL, JSON_CODEC, MSGPACK_CODEC, Codec, Scope


class Client:
    """A subscriber as fan-out sees it: a codec and an outbox."""

    def __init__(
        self, codec: Codec = JSON_CODEC, max_frames: int = 256, max_bytes: int = 4 * 1024 * 1024
    ) -> None:
        self.codec = codec
        self.outbox = Outbox(max_frames, max_bytes)

    async def drain(self) -> list[Any]:
        """Everything queued right now: decoded frames, and RESYNC markers as they are."""
        out: list[Any] = []
        while len(self.outbox):
            item = await asyncio.wait_for(self.outbox.get(), 1)
            if item is RESYNC:
                out.append(RESYNC)
            elif isinstance(item, bytes):
                out.append(msgpack.unpackb(item, raw=False))
            else:
                assert isinstance(item, str)
                out.append(json.loads(item))
        return out


def entry(uid: str, at: int, status: str = "online", text: str = "") -> Entry:
    return {
        "id": uid,
        "username": uid,
        "name": uid.upper(),
        "status": status,
        "text": text,
        "at": at,
    }


def live(fanout: Fanout, client: Client, scope: Scope = ALL, cursor: int = 0) -> None:
    sub = fanout.subscribe(client, scope)
    fanout.go_live(sub, client.codec, cursor)


# -- coalescing ----------------------------------------------------------------------------


async def test_many_feeds_in_one_tick_make_one_frame_per_subscriber_and_scope():
    """300 changes fed before one flush reach each subscriber as one frame per scope."""
    fanout = Fanout(tick_ms=50)
    a, b = Client(), Client(MSGPACK_CODEC)
    live(fanout, a)
    live(fanout, a, Scope("users", users=("u1", "u2")))
    live(fanout, b)
    changes = [entry(f"u{i % 10}", 1_000 + i) for i in range(300)]
    for i, e in enumerate(changes):
        fanout.feed([e], cursor=2_000 + i)
    fanout.flush()
    frames_a, frames_b = await a.drain(), await b.drain()
    assert [f["scope"] for f in frames_a] == [{"all": True}, {"users": ["u1", "u2"]}]
    assert len(frames_b) == 1
    all_frame = frames_a[0]
    assert all_frame["op"] == "delta" and all_frame["cursor"] == 2_299
    assert sorted(u["id"] for u in all_frame["users"]) == sorted(f"u{i}" for i in range(10))
    assert frames_b[0]["users"] == all_frame["users"]


async def test_coalescing_keeps_the_entry_with_the_larger_at_not_the_last_fed():
    """Fed out of order, each user's entry in the frame is its newest by ``at``."""
    fanout = Fanout()
    client = Client()
    live(fanout, client)
    history = [
        entry("u1", at, status)
        for at, status in [(10, "online"), (30, "busy"), (20, "away"), (25, "offline")]
    ]
    history += [entry("u2", 7, "away"), entry("u2", 5, "online")]
    rnd = random.Random(7)
    rnd.shuffle(history)
    for e in history:
        fanout.feed([e], cursor=40)
    fanout.flush()
    (frame,) = await client.drain()
    assert {u["id"]: (u["at"], u["status"]) for u in frame["users"]} == {
        "u1": (30, "busy"), "u2": (7, "away"),
    }  # fmt: skip


async def test_flush_without_changes_sends_nothing():
    """A flush with nothing pending queues no frame, and a flushed change is sent once."""
    fanout = Fanout()
    client = Client()
    live(fanout, client)
    fanout.flush()
    assert len(client.outbox) == 0
    fanout.feed([entry("u1", 5)], cursor=5)
    fanout.flush()
    fanout.flush()
    assert len(await client.drain()) == 1


async def test_run_flushes_at_most_once_per_tick():
    """Under the real run loop, a burst after a flush waits for the tick and goes out whole."""
    fanout = Fanout(tick_ms=200)
    client = Client()
    live(fanout, client)
    task = asyncio.create_task(fanout.run())
    try:
        fanout.feed([entry("u0", 1)], cursor=1)
        first = await asyncio.wait_for(client.outbox.get(), 10)
        for i in range(1, 50):
            fanout.feed([entry(f"u{i}", 1 + i)], cursor=1 + i)
        second = await asyncio.wait_for(client.outbox.get(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [u["id"] for u in json.loads(first)["users"]] == ["u0"]
    assert sorted(u["id"] for u in json.loads(second)["users"]) == sorted(
        f"u{i}" for i in range(1, 50)
    )
    assert fanout.frames_sent == 2


# -- encode once -------------------------------------------------------------------------


async def test_all_subscribers_of_a_codec_share_one_encoded_frame():
    """Every ``all`` subscriber of one codec gets the very same bytes/str object."""
    fanout = Fanout()
    jsons = [Client(JSON_CODEC) for _ in range(4)]
    packs = [Client(MSGPACK_CODEC) for _ in range(3)]
    for c in jsons + packs:
        live(fanout, c)
    fanout.feed([entry("u1", 10, "busy", "meeting"), entry("u2", 11)], cursor=12)
    fanout.flush()
    json_items = [await c.outbox.get() for c in jsons]
    pack_items = [await c.outbox.get() for c in packs]
    assert all(item is json_items[0] for item in json_items)
    assert all(item is pack_items[0] for item in pack_items)
    assert isinstance(json_items[0], str) and isinstance(pack_items[0], bytes)
    assert json.loads(json_items[0]) == msgpack.unpackb(pack_items[0], raw=False)
    assert fanout.frames_sent == 7


async def test_same_users_scope_shares_one_encoded_frame():
    """Two subscribers of the same users scope and codec share the encoded frame."""
    fanout = Fanout()
    a, b = Client(), Client()
    scope = Scope("users", users=("u1", "u2"))
    live(fanout, a, scope)
    live(fanout, b, scope)
    fanout.feed([entry("u1", 3)], cursor=3)
    fanout.flush()
    assert (await a.outbox.get()) is (await b.outbox.get())


# -- scopes ------------------------------------------------------------------------------


async def test_users_scope_gets_only_its_users():
    """A users subscriber receives only its users, and no frame at all when none changed."""
    fanout = Fanout()
    watcher, other, everyone = Client(), Client(), Client()
    live(fanout, watcher, Scope("users", users=("u1", "u3")))
    live(fanout, other, Scope("users", users=("u9",)))
    live(fanout, everyone)
    fanout.feed([entry(f"u{i}", 100 + i) for i in range(6)], cursor=200)
    fanout.flush()
    (frame,) = await watcher.drain()
    assert frame["scope"] == {"users": ["u1", "u3"]}
    assert sorted(u["id"] for u in frame["users"]) == ["u1", "u3"]
    assert frame["cursor"] == 200
    assert await other.drain() == []
    (all_frame,) = await everyone.drain()
    assert len(all_frame["users"]) == 6


async def test_unsubscribe_stops_delivery():
    """After unsubscribe a scope receives nothing; the sink's other scope still does."""
    fanout = Fanout()
    client = Client()
    users = Scope("users", users=("u1",))
    live(fanout, client)
    live(fanout, client, users)
    assert fanout.subscriber_count == 2
    assert fanout.unsubscribe(client, ALL)
    assert not fanout.unsubscribe(client, ALL), "a second unsubscribe finds nothing"
    fanout.feed([entry("u1", 1), entry("u2", 2)], cursor=2)
    fanout.flush()
    (frame,) = await client.drain()
    assert frame["scope"] == {"users": ["u1"]}
    fanout.drop(client, [users])
    assert fanout.subscriber_count == 0


async def test_room_scope_gets_member_changes_and_membership():
    """A room subscriber gets its members' changes (member: true) and leave events."""
    fanout = Fanout()
    client = Client()
    fanout.set_room_members("lobby", ["u1", "u2"])
    live(fanout, client, Scope("room", room="lobby"))
    fanout.feed([entry("u1", 5), entry("u7", 6)], cursor=6)
    fanout.flush()
    (frame,) = await client.drain()
    assert frame["scope"] == {"room": "lobby"}
    assert [(u["id"], u["member"]) for u in frame["users"]] == [("u1", True)]
    fanout.feed_room("lobby", [{**entry("u2", 8), "member": False}], cursor=8)
    fanout.flush()
    (frame,) = await client.drain()
    assert [(u["id"], u["member"]) for u in frame["users"]] == [("u2", False)]


# -- buffering ---------------------------------------------------------------------------


async def test_new_subscription_buffers_until_go_live():
    """Deltas during the snapshot are held, then released as one delta after go_live."""
    fanout = Fanout()
    client = Client()
    sub = fanout.subscribe(client, ALL)
    fanout.feed([entry("u1", 10, "online")], cursor=10)
    fanout.flush()
    fanout.feed([entry("u1", 12, "busy"), entry("u2", 11)], cursor=12)
    fanout.flush()
    assert len(client.outbox) == 0, "nothing may precede the snapshot"
    snapshot = JSON_CODEC.encode(
        {"op": "snapshot", "scope": {"all": True}, "full": True, "users": [], "cursor": 9}
    )
    client.outbox.put_control(snapshot)
    fanout.go_live(sub, client.codec, cursor=9)
    frames = await client.drain()
    assert [f["op"] for f in frames] == ["snapshot", "delta"]
    assert {u["id"]: u["status"] for u in frames[1]["users"]} == {"u1": "busy", "u2": "online"}
    assert frames[1]["cursor"] == 12, "the cursor covers every held change"
    fanout.feed([entry("u3", 13)], cursor=13)
    fanout.flush()
    (after,) = await client.drain()
    assert [u["id"] for u in after["users"]] == ["u3"]


async def test_go_live_with_nothing_held_sends_nothing():
    """A subscription that saw no change while buffering sends no empty delta."""
    fanout = Fanout()
    client = Client()
    sub = fanout.subscribe(client, Scope("users", users=("u1",)))
    fanout.feed([entry("u2", 1)], cursor=1)
    fanout.flush()
    fanout.go_live(sub, client.codec, cursor=1)
    assert len(client.outbox) == 0


# -- bounded outboxes --------------------------------------------------------------------


async def test_outbox_overflow_becomes_one_resync_marker():
    """A full outbox drops its frames for one RESYNC marker and stays bounded."""
    box = Outbox(max_frames=4)
    accepted = [box.put(f"frame{i}") for i in range(10)]
    assert accepted[:4] == [True] * 4
    assert not any(accepted[4:])
    assert len(box) == 1 and box.overflows == 1
    assert await box.get() is RESYNC
    assert box.put("fresh"), "after the resync the outbox accepts frames again"
    assert await box.get() == "fresh"


async def test_outbox_byte_bound():
    """The byte limit triggers the same resync as the frame limit."""
    box = Outbox(max_frames=1_000, max_bytes=100)
    assert box.put("x" * 60)
    assert not box.put("y" * 60)
    assert len(box) == 1 and (await box.get()) is RESYNC


async def test_control_frames_survive_overflow():
    """Acks and errors (put_control) are queued even while a resync is pending."""
    box = Outbox(max_frames=2)
    for i in range(5):
        box.put(f"delta{i}")
    box.put_control('{"op":"ack","ref":1}')
    assert [await box.get(), await box.get()] == [RESYNC, '{"op":"ack","ref":1}']


async def test_slow_subscriber_is_bounded_and_resynced_while_others_get_everything():
    """A subscriber that never drains holds at most its bound; a fast one misses nothing."""
    fanout = Fanout()
    slow, fast = Client(max_frames=8), Client()
    live(fanout, slow)
    live(fanout, fast)
    received = 0
    for i in range(100):
        fanout.feed([entry(f"u{i}", i + 1)], cursor=i + 1)
        fanout.flush()
        assert len(slow.outbox) <= 8
        received += len(await fast.drain())
    assert received == 100
    items = await slow.drain()
    assert items == [RESYNC], "the slow subscriber gets one resync instead of stale deltas"
    assert slow.outbox.overflows >= 1


async def test_resync_all_marks_every_subscriber():
    """resync_all() drops pending changes and queues a RESYNC for every sink."""
    fanout = Fanout()
    a, b = Client(), Client()
    live(fanout, a)
    live(fanout, b, Scope("users", users=("u1",)))
    a.outbox.put("stale")
    fanout.feed([entry("u1", 1)], cursor=1)
    fanout.resync_all()
    fanout.flush()
    assert await a.drain() == [RESYNC]
    assert await b.drain() == [RESYNC]
    assert a.outbox.overflows == 0, "a requested resync is not counted as an overflow"


@pytest.mark.parametrize("codec", [JSON_CODEC, MSGPACK_CODEC], ids=["json", "msgpack"])
async def test_closed_outbox_refuses_everything(codec):
    """A closed outbox (socket gone) accepts no frame, so nothing piles up after close."""
    client = Client(codec)
    client.outbox.close()
    assert not client.outbox.put(codec.encode({"op": "delta"}))
    client.outbox.put_control(codec.encode({"op": "ack", "ref": 1}))
    assert len(client.outbox) == 0


# -- one bad entry harms nobody ---------------------------------------------------------------


@pytest.mark.parametrize("codec", [JSON_CODEC, MSGPACK_CODEC], ids=["json", "msgpack"])
async def test_an_entry_that_cannot_be_encoded_is_dropped_and_fan_out_goes_on(codec):
    """A lone surrogate in one entry's text is left out of the frame (counted); the other
    entries of that tick arrive, the fan-out task lives on, later changes still arrive."""
    fanout = Fanout(tick_ms=5)
    client, other = Client(codec), Client(JSON_CODEC if codec is MSGPACK_CODEC else MSGPACK_CODEC)
    live(fanout, client)
    live(fanout, other)
    live(fanout, client, Scope("users", users=("bad", "good")))
    task = asyncio.create_task(fanout.run())
    try:
        fanout.feed([entry("bad", 1_000, text="\ud800"), entry("good", 1_001)], cursor=1)
        for c in (client, other):
            first = await asyncio.wait_for(c.outbox.get(), 5)
            assert first is not RESYNC
        assert fanout.entries_dropped >= 1
        fanout.feed([entry("later", 2_000)], cursor=2)
        seen: list[str] = []
        deadline = asyncio.get_running_loop().time() + 5
        while "later" not in seen and asyncio.get_running_loop().time() < deadline:
            item = await asyncio.wait_for(client.outbox.get(), 5)
            assert isinstance(item, str | bytes)
            frame = (
                msgpack.unpackb(item, raw=False) if isinstance(item, bytes) else json.loads(item)
            )
            seen += [u["id"] for u in frame["users"]]
        assert "later" in seen and "bad" not in seen
        assert not task.done(), "the fan-out task must survive a bad entry"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_good_entries_of_a_tick_with_a_bad_one_still_arrive():
    """The flush that meets a bad entry sends every other entry of the tick."""
    fanout = Fanout()
    client = Client(MSGPACK_CODEC)
    live(fanout, client)
    fanout.feed([entry("bad", 1_000, text="x\udfffy"), entry("good", 1_001)], cursor=1)
    fanout.flush()
    frames = await client.drain()
    assert [[u["id"] for u in f["users"]] for f in frames] == [["good"]]
    assert fanout.entries_dropped == 1
