"""Watchlists: who of the ids a signed-in user watches is online, told when that changes.

A Pusher sign-in may carry a watchlist (up to 100 user ids). Its connection is told, right
after ``signin_success``, which of them are online, then every change as
``pusher_internal:watchlist_events``. "Online" is the hub's own presence (an effective
status other than ``offline``), so it holds whatever wire the watched user is on (``/ws``,
a Pusher sign-in, a presence channel) and whichever node: the index learns it from the
node's presence feed (every :class:`~hub.stores.presence.base.Batch`), where an offline
transition appears only once the offline grace ran out, so a reload inside it is no
offline.

The index keeps, for the ids watched on this node only, their newest known state (by
``at``, so a late or repeated entry never undoes a newer one) and, per watcher, which ids
it was told are online. Changes are batched: at most one frame per watcher per tick,
holding only what differs from what it was told (a user who went offline and came back
within a tick is no news); a flush looks only at the ids that changed, not at whole lists.
After lost feed messages the watched ids are read again from the store.

Sized for many watchers per node (``bench/watchlist_index.py``): lists rather than sets
per watched id, and per watcher only the ids told online.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from hub.stores.presence.base import Batch, StoreUnavailable, UserView
from hub.wire import pusher as p

log = logging.getLogger("hub.pusher")

#: Ids read from the store in one call when the index re-reads what it watches.
READ_CHUNK = 1000

Reader = Callable[[Sequence[str]], Awaitable[list[UserView]]]


class Watcher:
    """One signed-in connection's watchlist, and what it was told of it."""

    __slots__ = ("ids", "online", "pending", "ready", "send")

    def __init__(self, ids: tuple[str, ...], send: Callable[[str], object]) -> None:
        self.ids = ids
        self.send = send
        #: The ids it was told are online (nothing is told before :meth:`Watchlists.start`).
        self.online: set[str] = set()
        #: Ids whose state changed since the last flush (repeats allowed).
        self.pending: list[str] = []
        self.ready = False


class Watchlists:
    """Every watchlist of this node's connections."""

    def __init__(self, read: Reader, tick_s: float) -> None:
        self.read = read
        self.tick_s = tick_s
        #: id -> its watchers (a list: most ids have few, and a set costs 4x the memory).
        self.watchers: dict[str, list[Watcher]] = {}
        #: id -> (at, online): the newest state known of each watched id.
        self.state: dict[str, tuple[int, bool]] = {}
        self.dirty: set[Watcher] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._refresh: asyncio.Task[None] | None = None

    async def watch(self, ids: tuple[str, ...], send: Callable[[str], object]) -> Watcher:
        """Register a watchlist and learn its ids' presence; :meth:`start` tells it.

        Registered before the read, so a change published meanwhile is not missed (the
        newer of the two states wins)."""
        watcher = Watcher(ids, send)
        for uid in ids:
            self.watchers.setdefault(uid, []).append(watcher)
        try:
            views = await self.read(ids)
        except BaseException:
            self.unwatch(watcher)
            raise
        for view in views:
            self._learn(view.id, view.at, view.status != "offline")
        return watcher

    def start(self, watcher: Watcher) -> None:
        """Tell the watcher who of its list is online now; every change follows."""
        online = [uid for uid in watcher.ids if self._online(uid)]
        watcher.online = set(online)
        watcher.pending = []
        watcher.ready = True
        self.dirty.discard(watcher)
        if online:
            watcher.send(p.watchlist_events(online, []))

    def unwatch(self, watcher: Watcher) -> None:
        watcher.ready = False
        watcher.pending = []
        self.dirty.discard(watcher)
        for uid in watcher.ids:
            watchers = self.watchers.get(uid)
            if watchers is None or watcher not in watchers:
                continue
            watchers.remove(watcher)
            if not watchers:
                del self.watchers[uid]
                self.state.pop(uid, None)

    def _online(self, uid: str) -> bool:
        state = self.state.get(uid)
        return state is not None and state[1]

    def _learn(self, uid: str, at: int, online: bool) -> bool:
        """Keep the newer state; True when the id's online state changed."""
        current = self.state.get(uid)
        if current is not None and at < current[0]:
            return False
        self.state[uid] = (at, online)
        return current is None or current[1] != online

    # -- the presence feed -------------------------------------------------------------

    def on_batch(self, batch: Batch) -> None:
        """Every batch of the node's presence feed (a hook: no await)."""
        if not self.watchers:
            return
        changed = False
        for entry in batch.users:
            uid = entry["id"]
            watchers = self.watchers.get(uid)
            if watchers is not None and self._learn(uid, entry["at"], entry["status"] != "offline"):
                self._changed(uid, watchers)
                changed = True
        if changed:
            self._schedule()

    def _changed(self, uid: str, watchers: list[Watcher]) -> None:
        for watcher in watchers:
            watcher.pending.append(uid)
        self.dirty.update(watchers)

    def on_recover(self) -> None:
        """The presence feed lost messages: read every watched id again."""
        if self.watchers and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.get_running_loop().create_task(self.refresh())

    async def refresh(self) -> None:
        ids = list(self.watchers)
        try:
            for start in range(0, len(ids), READ_CHUNK):
                for view in await self.read(ids[start : start + READ_CHUNK]):
                    watchers = self.watchers.get(view.id)
                    if watchers and self._learn(view.id, view.at, view.status != "offline"):
                        self._changed(view.id, watchers)
        except StoreUnavailable:
            log.warning("watchlists not re-read after a feed gap: the store is unreachable")
        except Exception:
            log.exception("watchlists not re-read after a feed gap")
        if self.dirty:
            self._schedule()

    # -- one frame per watcher per tick ------------------------------------------------

    def _schedule(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.tick_s, self.flush)

    def flush(self) -> None:
        self._timer = None
        dirty, self.dirty = self.dirty, set()
        for watcher in dirty:
            pending, watcher.pending = watcher.pending, []
            if not watcher.ready:
                continue  # told the whole state when it starts
            online: list[str] = []
            offline: list[str] = []
            told = watcher.online
            for uid in dict.fromkeys(pending):
                now = self._online(uid)
                if now and uid not in told:
                    told.add(uid)
                    online.append(uid)
                elif not now and uid in told:
                    told.discard(uid)
                    offline.append(uid)
            if online or offline:
                watcher.send(p.watchlist_events(online, offline))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._refresh is not None:
            self._refresh.cancel()
