"""The node's counts and windows (:mod:`hub.node.views`) in process, on the memory store's
real feed, with real outboxes and no sockets: frames coalesce per tick, subscribers of one
window share one encoding, a resync snapshot is what later window frames continue, a feed
that lost messages is recovered by reading again, and a window whose margin ran out is
read again and stays exact."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import pytest

from hub.model.window import apply
from hub.node.fanout import Fanout
from hub.node.views import Views
from hub.session.outbox import Outbox
from hub.stores.presence.base import Batch, Moves, Profile
from hub.stores.presence.memory import MemoryStore
from hub.wire import hub as p
from tests.support import eventually


class Sink:
    """A connection as the views see it: a codec and a real outbox."""

    def __init__(self) -> None:
        self.codec = p.JSON_CODEC
        self.outbox = Outbox(max_frames=10_000, max_bytes=64 * 2**20)
        self.frames: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        while (item := self.outbox.pop()) is not None:
            assert isinstance(item, str)
            self.frames.append(json.loads(item))
        return self.frames

    def window(self) -> tuple[list[str], int]:
        """The window this connection holds after its frames (ids, version)."""
        users: list[Any] = []
        version = 0
        for frame in self.drain():
            if frame["op"] == "snapshot":
                users, version = frame["users"], frame["v"]
            elif frame["op"] == "window" and frame["v"] > version:
                users, version = apply(frame["ops"], users), frame["v"]
        return [u["id"] for u in users], version


class Node:
    """The memory store, its feed into a fan-out with views, and the fan-out's tick."""

    def __init__(self, store: MemoryStore, views: Views) -> None:
        self.store = store
        self.views = views
        self.fanout = Fanout(20, views)
        self.feeding = True

    async def run(self) -> None:
        async with aclosing(self.store.events()) as events:
            async for event in events:
                if self.feeding and isinstance(event, (Batch, Moves)):
                    self.fanout.observe(event)


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    store = MemoryStore(grace_ms=0)
    n = Node(store, Views(store, margin=3))
    tasks = [asyncio.create_task(n.run()), asyncio.create_task(n.fanout.run())]

    async def reading() -> bool:  # the feed consumer reads before anything is published
        return store.feed_consumers == 1

    await eventually(reading)
    yield n
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def room(store: MemoryStore, name: str, count: int) -> list[str]:
    ids = [f"m{n:03d}" for n in range(count)]
    for uid in ids:
        await store.connect("n1", f"c-{uid}", Profile(id=uid, name=uid), "online")
    await store.room_add(name, ids)
    return ids


async def exact(store: MemoryStore, sink: Sink, name: str, first: int, last: int) -> None:
    async def same() -> bool:
        piece = await store.room_slice(name, first, last - first + 1)
        assert sink.window()[0] == [e["id"] for _, e in piece.items]
        return True

    await eventually(same)


async def test_counts_frames_coalesce_per_tick(node: Node) -> None:
    """Fifty changes in one go reach a counts subscriber as a handful of frames, the last
    one right."""
    ids = await room(node.store, "r", 50)
    sink = Sink()
    await node.views.subscribe_counts(sink, p.Scope("room", room="r", view="counts"))
    for uid in ids:
        await node.store.set_status(uid, status="busy")

    async def settled() -> dict[str, Any]:
        last = [f for f in sink.drain() if f["op"] == "counts"][-1]
        assert (last["online"], last["busy"], last["total"]) == (0, 50, 50)
        return last

    await eventually(settled)
    assert len([f for f in sink.frames if f["op"] == "counts"]) < 10


async def test_subscribers_of_one_window_share_one_encoding(node: Node) -> None:
    """A thousand subscribers of one window get the same frame object: one diff, one
    encoding per codec."""
    await room(node.store, "r", 30)
    sinks = [Sink() for _ in range(1000)]
    for sink in sinks:
        await node.views.subscribe_window(sink, "r", 0, 9)
    await node.store.set_status("m000", status="away")

    async def sent() -> list[Any]:
        items = [s.outbox.pop() for s in sinks[:3]]
        items = [i for i in items if i is not None]
        if len(items) < 3 or any(json.loads(str(i))["op"] != "window" for i in items):
            for s in sinks[:3]:
                s.drain()
            raise AssertionError("no window frame yet")
        return items

    # The snapshots come first; then the first window frame is one object for all.
    for s in sinks[:3]:
        s.drain()
    frames = await eventually(sent)
    assert frames[0] is frames[1] is frames[2]


async def test_a_resync_snapshot_is_what_later_frames_continue(node: Node) -> None:
    """After an outbox overflow the window's snapshot carries the version the next
    window frames continue from, so the client ends exact."""
    await room(node.store, "r", 20)
    sink = Sink()
    scope = p.Scope("room", room="r", view="range", window=(0, 4))
    await node.views.subscribe_window(sink, "r", 0, 4)
    await node.store.set_status("m001", status="busy")
    sink.outbox.request_resync()  # queued frames dropped, as an overflow does
    frame = await node.views.snapshot_frame(sink, scope)
    assert frame is not None and frame["op"] == "snapshot"
    sink.outbox.pop()  # the RESYNC marker
    sink.outbox.put(json.dumps(frame))
    await node.store.set_status("m002", status="away")
    await exact(node.store, sink, "r", 0, 4)


async def test_a_feed_that_lost_messages_is_read_again(node: Node) -> None:
    """Moves the node never heard are made good by lost(): numbers and windows read anew."""
    ids = await room(node.store, "r", 20)
    counts, window = Sink(), Sink()
    await node.views.subscribe_counts(counts, p.Scope("room", room="r", view="counts"))
    await node.views.subscribe_window(window, "r", 0, 5)
    node.feeding = False
    for uid in ids[:8]:
        await node.store.set_status(uid, status="busy")
    await node.store.room_remove("r", ids[10:12])
    node.feeding = True
    node.views.lost()
    node.fanout._wake.set()

    async def numbers() -> bool:
        last = [f for f in counts.drain() if f["op"] == "counts"][-1]
        assert (last["online"], last["busy"], last["total"]) == (10, 8, 18)
        return True

    await eventually(numbers)
    await exact(node.store, window, "r", 0, 5)


async def test_a_window_whose_margin_ran_out_is_read_again_and_exact(node: Node) -> None:
    """Members leaving before a deep window shift it past its region: it is read again."""
    ids = await room(node.store, "r", 60)
    sink = Sink()
    await node.views.subscribe_window(sink, "r", 30, 39)
    reads = node.views.reads
    await node.store.room_remove("r", ids[:20])
    for uid in ids[40:45]:
        await node.store.set_status(uid, status="offline")
    await exact(node.store, sink, "r", 30, 39)
    assert node.views.reads > reads
