"""The watchlist index in process, over the memory presence store: what a watcher is told
at start, one frame per tick with only what changed since it was last told, the newer
state winning, and a re-read after lost feed messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from hub.model.presence import entry_of
from hub.node.watchlists import Watchlists
from hub.ops.config import Settings
from hub.stores.presence import open_store
from hub.stores.presence.base import Batch, PresenceStore, Profile

TICK_S = 0.02


@pytest.fixture
async def store() -> AsyncIterator[PresenceStore]:
    presence = open_store(Settings(store="memory://"))
    await presence.start()
    try:
        yield presence
    finally:
        await presence.close()


class Frames(list[dict[str, list[str]]]):
    """What one watcher was sent: ``{"online": [...], "offline": [...]}`` per frame."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()
        self.read = 0

    def send(self, frame: str) -> None:
        outer = json.loads(frame)
        assert outer["event"] == "pusher_internal:watchlist_events"
        events = json.loads(outer["data"])["events"]
        self.append({e["name"]: e["user_ids"] for e in events})
        self.arrived.set()

    async def next(self) -> dict[str, list[str]]:
        """The next frame not read yet (waiting for it if needed)."""
        async with asyncio.timeout(5):
            while len(self) == self.read:
                self.arrived.clear()
                await self.arrived.wait()
        self.read += 1
        return self[self.read - 1]


def _batch(at: int, *states: tuple[str, str]) -> Batch:
    return Batch(at, [entry_of(uid, uid, uid, status, "", at) for uid, status in states])


async def test_a_watcher_is_told_who_is_online_then_each_change_once_a_tick(store):
    """Online (away and busy too) at start; then one frame per tick with what differs from
    what it was told; a user gone and back within a tick is no news."""
    index = Watchlists(store.users, TICK_S)
    for n, user in enumerate(("ann", "bob")):
        await store.connect("n1", f"c{n}", Profile(user), "online")
    await store.set_status("bob", status="busy")
    frames = Frames()
    watcher = await index.watch(("ann", "bob", "cy"), frames.send)
    assert frames == []  # nothing before start
    index.start(watcher)
    assert await frames.next() == {"online": ["ann", "bob"]}

    now = await store.now()
    index.on_batch(_batch(now + 1, ("cy", "online"), ("ann", "offline")))
    index.on_batch(_batch(now + 2, ("bob", "offline"), ("bob", "away")))
    assert await frames.next() == {"online": ["cy"], "offline": ["ann"]}
    index.on_batch(_batch(now + 3, ("ann", "online")))
    index.on_batch(_batch(now + 4, ("ann", "offline")))
    index.on_batch(_batch(now + 5, ("dee", "online"), ("cy", "offline")))  # dee: not watched
    assert await frames.next() == {"offline": ["cy"]}
    assert "dee" not in index.state


async def test_an_older_state_never_undoes_a_newer_one(store):
    """A late or repeated entry (a smaller at) changes nothing; a gap's re-read of the
    store tells what changed while the feed was lost."""
    index = Watchlists(store.users, TICK_S)
    frames = Frames()
    watcher = await index.watch(("ann",), frames.send)
    index.start(watcher)
    assert frames == []  # ann was never seen: offline, nothing to tell
    index.on_batch(_batch(100, ("ann", "online")))
    assert await frames.next() == {"online": ["ann"]}
    index.on_batch(_batch(50, ("ann", "offline")))
    index.on_batch(_batch(200, ("bob", "online")))  # unwatched: no state
    assert index.state == {"ann": (100, True)} and not index.dirty

    # The feed lost messages: ann connected and left meanwhile; the store says offline.
    await store.connect("n1", "c1", Profile("ann"), "online")
    await store.disconnect("n1", "c1", "ann", grace=False)
    index.on_recover()
    assert await frames.next() == {"offline": ["ann"]}


async def test_an_unwatched_list_is_forgotten_and_two_watchers_are_told_apart(store):
    """Two watchers of one id are each told once; the last one leaving drops the id."""
    index = Watchlists(store.users, TICK_S)
    first, second = Frames(), Frames()
    one = await index.watch(("ann",), first.send)
    two = await index.watch(("ann", "bob"), second.send)
    index.start(one)
    index.start(two)
    index.on_batch(_batch(10, ("ann", "online"), ("bob", "online")))
    assert await first.next() == {"online": ["ann"]}
    assert await second.next() == {"online": ["ann", "bob"]}
    index.unwatch(one)
    assert set(index.watchers) == {"ann", "bob"}
    index.unwatch(two)
    assert index.watchers == {} and index.state == {}
    index.close()
