"""The in-memory channel store: one process, the same rules as the Redis scripts, in dicts.

Each subscribe and unsubscribe runs without an await, so it is as atomic as a script, and
emits its member change (and its subscription count) on the in-process feed in the same
step. Cached events expire on the monotonic clock.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from hub.stores.channels.base import (
    NOT_SUBSCRIBED,
    Cached,
    ChannelEvent,
    ChannelFeedEvent,
    ChannelGap,
    CountChange,
    Joined,
    Left,
    MemberChange,
    Members,
    Probe,
    Terminate,
)
from hub.stores.local_feed import LocalFeed


class MemoryChannels:
    """A :class:`~hub.stores.channels.base.ChannelStore` in this process."""

    #: Webhook events of transitions are the caller's to record (an in-process queue).
    records_hooks = False

    def __init__(self) -> None:
        self.subs: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
        self.counts: dict[tuple[str, str], dict[str, int]] = {}
        self.info: dict[tuple[str, str], dict[str, str]] = {}
        self.nodes: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self.versions: dict[str, int] = {}
        #: (app, channel) -> (expiry, event id, frame); (app, channel) -> miss window end.
        self.cache: dict[tuple[str, str], tuple[float, str, str]] = {}
        self.misses: dict[tuple[str, str], float] = {}
        self._prune_at = 1024
        self._feed: LocalFeed[ChannelFeedEvent] = LocalFeed(ChannelGap())

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _bump(self, app: str) -> int:
        version = self.versions.get(app, 0) + 1
        self.versions[app] = version
        return version

    async def subscribe(
        self,
        app: str,
        channel: str,
        socket: str,
        node: str,
        user_id: str,
        user_info: str,
        limit: int,
        hooks_ms: int = 0,
        counts: bool = False,
    ) -> Joined:
        key = (app, channel)
        subs = self.subs.setdefault(key, {})
        if socket in subs:
            return Joined(0, False, False, self.versions.get(app, 0), len(subs))
        added = False
        if user_id:
            users = self.counts.setdefault(key, {})
            if user_id not in users:
                if len(users) >= limit:
                    if not subs:
                        del self.subs[key]
                    return Joined(-1, False, False, self.versions.get(app, 0), len(subs))
                added = True
            users[user_id] = users.get(user_id, 0) + 1
            self.info.setdefault(key, {})[user_id] = user_info
        occupied = not subs
        subs[socket] = (node, user_id)
        self.nodes.setdefault((app, node), set()).add((channel, socket))
        version = self.versions.get(app, 0)
        if added:
            version = self._bump(app)
            self._feed.emit(MemberChange(app, channel, version, user_id, user_info, socket))
        if counts:
            self._feed.emit(CountChange(app, channel, len(subs)))
        return Joined(1, occupied, added, version, len(subs))

    async def unsubscribe(
        self, app: str, channel: str, socket: str, hooks_ms: int = 0, counts: bool = False
    ) -> Left:
        key = (app, channel)
        subs = self.subs.get(key, {})
        entry = subs.pop(socket, None)
        if entry is None:
            return NOT_SUBSCRIBED
        node, user_id = entry
        self.nodes.get((app, node), set()).discard((channel, socket))
        gone = False
        if user_id:
            users = self.counts[key]
            users[user_id] -= 1
            if users[user_id] <= 0:
                del users[user_id]
                self.info[key].pop(user_id, None)
                gone = True
        vacated = not subs
        if vacated:
            self.subs.pop(key, None)
            self.counts.pop(key, None)
            self.info.pop(key, None)
        version = self.versions.get(app, 0)
        if gone:
            version = self._bump(app)
            self._feed.emit(MemberChange(app, channel, version, user_id, None))
        if counts:
            self._feed.emit(CountChange(app, channel, len(subs)))
        return Left(True, user_id, gone, vacated, version, len(subs))

    async def members(self, app: str, channel: str) -> Members:
        return Members(self.versions.get(app, 0), dict(self.info.get((app, channel), {})))

    async def member_count(self, app: str, channel: str) -> int:
        return len(self.counts.get((app, channel), {}))

    async def has_member(self, app: str, channel: str, user_id: str) -> bool:
        return user_id in self.counts.get((app, channel), {})

    async def subscription_count(self, app: str, channel: str) -> int:
        return len(self.subs.get((app, channel), {}))

    async def occupied(self, app: str) -> list[str]:
        return sorted(c for (a, c), subs in self.subs.items() if a == app and subs)

    async def heartbeat(self, app: str, node: str, ttl_ms: int) -> bool:
        return True

    async def expired_nodes(self, app: str) -> list[str]:
        return []

    async def node_subscriptions(self, app: str, node: str) -> list[tuple[str, str]]:
        return sorted(self.nodes.get((app, node), set()))

    async def forget_node(self, app: str, node: str) -> None:
        self.nodes.pop((app, node), None)

    async def cache_put(
        self, app: str, channel: str, event_id: str, frame: str, ttl_ms: int
    ) -> None:
        key = (app, channel)
        now = time.monotonic()
        self.cache[key] = (now + ttl_ms / 1000, event_id, frame)
        self.misses.pop(key, None)
        if len(self.cache) + len(self.misses) > self._prune_at:
            # Channels nobody reads again would otherwise keep their last event forever.
            self.cache = {k: v for k, v in self.cache.items() if v[0] > now}
            self.misses = {k: t for k, t in self.misses.items() if t > now}
            self._prune_at = 2 * (len(self.cache) + len(self.misses)) + 1024

    async def cache_get(self, app: str, channel: str, miss_ms: int) -> Cached:
        key = (app, channel)
        now = time.monotonic()
        held = self.cache.get(key)
        if held is not None:
            if held[0] > now:
                return Cached(held[2], held[1])
            del self.cache[key]
        if self.misses.get(key, 0.0) > now:
            return Cached(None)
        self.misses[key] = now + miss_ms / 1000
        return Cached(None, first_miss=True)

    async def publish(self, event: ChannelEvent | Terminate | Probe) -> None:
        self._feed.emit(event)

    def events(self) -> AsyncIterator[ChannelFeedEvent]:
        return self._feed.events()
