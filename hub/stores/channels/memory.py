"""The in-memory channel store: one process, the same rules as the Redis scripts, in dicts.

Each subscribe and unsubscribe runs without an await, so it is as atomic as a script, and
emits its member change on the in-process feed in the same step.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from hub.stores.channels.base import (
    NOT_SUBSCRIBED,
    ChannelEvent,
    ChannelFeedEvent,
    ChannelGap,
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
    ) -> Joined:
        key = (app, channel)
        subs = self.subs.setdefault(key, {})
        if socket in subs:
            return Joined(0, False, False, self.versions.get(app, 0))
        added = False
        if user_id:
            counts = self.counts.setdefault(key, {})
            if user_id not in counts:
                if len(counts) >= limit:
                    if not subs:
                        del self.subs[key]
                    return Joined(-1, False, False, self.versions.get(app, 0))
                added = True
            counts[user_id] = counts.get(user_id, 0) + 1
            self.info.setdefault(key, {})[user_id] = user_info
        occupied = not subs
        subs[socket] = (node, user_id)
        self.nodes.setdefault((app, node), set()).add((channel, socket))
        version = self.versions.get(app, 0)
        if added:
            version = self._bump(app)
            self._feed.emit(MemberChange(app, channel, version, user_id, user_info, socket))
        return Joined(1, occupied, added, version)

    async def unsubscribe(self, app: str, channel: str, socket: str, hooks_ms: int = 0) -> Left:
        key = (app, channel)
        subs = self.subs.get(key, {})
        entry = subs.pop(socket, None)
        if entry is None:
            return NOT_SUBSCRIBED
        node, user_id = entry
        self.nodes.get((app, node), set()).discard((channel, socket))
        gone = False
        if user_id:
            counts = self.counts[key]
            counts[user_id] -= 1
            if counts[user_id] <= 0:
                del counts[user_id]
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
        return Left(True, user_id, gone, vacated, version)

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

    async def publish(self, event: ChannelEvent | Terminate | Probe) -> None:
        self._feed.emit(event)

    def events(self) -> AsyncIterator[ChannelFeedEvent]:
        return self._feed.events()
