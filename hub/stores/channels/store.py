"""Channel subscriptions across every hub node, and the bus that carries channel events.

:class:`ChannelState` holds, per app and channel, which sockets (on which node) are
subscribed and, on presence channels, each member's connection count and ``user_info``.
Each subscribe and unsubscribe is one atomic step that reports the transitions it made
(first subscriber, a user's first or last connection, last subscriber), so exactly one
node (the one that made it) publishes ``member_added``/``member_removed`` and sends the
webhook, however many nodes there are. Nodes heartbeat per app; any node reaps the
subscriptions of a node whose heartbeat expired, one unsubscribe at a time, and as each is
idempotent only one reaper publishes each transition.

On Redis every key of an app lives in one slot, ``{<prefix>pusher:<app id>}``:

========================  =====  ==========================================================
``T:s:<channel>``         hash   socket id -> ``<node>\\t<user id>`` (empty user: no member)
``T:m:<channel>``         hash   user id -> connections in the channel (presence channels)
``T:i:<channel>``         hash   user id -> ``user_info`` JSON
``T:occ``                 set    occupied channels
``T:n:<node>``            set    ``<channel>\\t<socket id>`` of the node (for reaping)
``T:nodes``               zset   node id -> heartbeat expiry ms (Redis clock)
========================  =====  ==========================================================

The bus is Redis pub/sub on ``<HUB_CHANNEL>:pusher`` (JSON messages), in-process with the
memory store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol

from hub.ops.config import Settings


@dataclass(frozen=True, slots=True)
class Joined:
    status: int  # 1 subscribed, 0 already was, -1 over the member limit
    occupied: bool
    added: bool


@dataclass(frozen=True, slots=True)
class Left:
    removed: bool
    user_id: str
    member_removed: bool
    vacated: bool


NOT_SUBSCRIBED = Left(False, "", False, False)


class ChannelState(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(
        self,
        app: str,
        channel: str,
        socket: str,
        node: str,
        user_id: str,
        user_info: str,
        limit: int,
    ) -> Joined: ...

    async def unsubscribe(self, app: str, channel: str, socket: str) -> Left: ...

    async def members(self, app: str, channel: str) -> dict[str, Any]:
        """user id -> user_info of a presence channel."""

    async def members_json(self, app: str, channel: str) -> dict[str, str]:
        """user id -> user_info as the JSON text it was stored as (no parsing)."""

    async def member_count(self, app: str, channel: str) -> int: ...

    async def has_member(self, app: str, channel: str, user_id: str) -> bool: ...

    async def subscription_count(self, app: str, channel: str) -> int: ...

    async def occupied(self, app: str) -> list[str]: ...

    async def heartbeat(self, app: str, node: str, ttl_ms: int) -> bool:
        """False when the app did not list the node (new, or reaped)."""

    async def expired_nodes(self, app: str) -> list[str]: ...

    async def node_subscriptions(self, app: str, node: str) -> list[tuple[str, str]]:
        """(channel, socket id) of every subscription the node holds."""

    async def forget_node(self, app: str, node: str) -> None: ...


class Bus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, message: dict[str, Any]) -> None: ...

    def messages(self) -> AsyncIterator[dict[str, Any] | None]:
        """Every message from every node; None after messages may have been lost."""
        ...


# -- memory -----------------------------------------------------------------------------


class MemoryChannels:
    """One process: the same rules as the Redis scripts, in dicts."""

    def __init__(self) -> None:
        self.subs: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
        self.counts: dict[tuple[str, str], dict[str, int]] = {}
        self.info: dict[tuple[str, str], dict[str, str]] = {}
        self.nodes: dict[tuple[str, str], set[tuple[str, str]]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def subscribe(
        self,
        app: str,
        channel: str,
        socket: str,
        node: str,
        user_id: str,
        user_info: str,
        limit: int,
    ) -> Joined:
        key = (app, channel)
        subs = self.subs.setdefault(key, {})
        if socket in subs:
            return Joined(0, False, False)
        added = False
        if user_id:
            counts = self.counts.setdefault(key, {})
            if user_id not in counts:
                if len(counts) >= limit:
                    return Joined(-1, False, False)
                added = True
            counts[user_id] = counts.get(user_id, 0) + 1
            self.info.setdefault(key, {})[user_id] = user_info
        occupied = not subs
        subs[socket] = (node, user_id)
        self.nodes.setdefault((app, node), set()).add((channel, socket))
        return Joined(1, occupied, added)

    async def unsubscribe(self, app: str, channel: str, socket: str) -> Left:
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
        return Left(True, user_id, gone, vacated)

    async def members(self, app: str, channel: str) -> dict[str, Any]:
        return {u: json.loads(i) for u, i in self.info.get((app, channel), {}).items()}

    async def members_json(self, app: str, channel: str) -> dict[str, str]:
        return dict(self.info.get((app, channel), {}))

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


class MemoryBus:
    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, message: dict[str, Any]) -> None:
        for queue in self._queues:
            queue.put_nowait(message)

    async def messages(self) -> AsyncIterator[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._queues.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.discard(queue)


# -- Redis ------------------------------------------------------------------------------


@cache
def _script(name: str) -> str:
    return resources.files("hub.stores.channels").joinpath("lua", f"{name}.lua").read_text("utf-8")


class RedisChannels:
    def __init__(self, url: str, prefix: str) -> None:
        from hub.stores.presence.redis import command_client

        self.prefix = prefix
        self._redis = command_client(url)
        reg = self._redis.register_script
        self._subscribe = reg(_script("subscribe"))
        self._unsubscribe = reg(_script("unsubscribe"))
        self._heartbeat = reg(_script("heartbeat"))
        self._expired = reg(_script("expired"))

    def _tag(self, app: str) -> str:
        return f"{{{self.prefix}pusher:{app}}}"

    def _channel_keys(self, app: str, channel: str, node_key: str) -> list[str]:
        t = self._tag(app)
        return [f"{t}:s:{channel}", f"{t}:m:{channel}", f"{t}:i:{channel}", f"{t}:occ", node_key]

    async def start(self) -> None:
        from redis.asyncio.cluster import RedisCluster

        from hub.stores.presence.redis import unavailable

        with unavailable():
            if isinstance(self._redis, RedisCluster):
                await self._redis.initialize()
            for name in ("subscribe", "unsubscribe", "heartbeat", "expired"):
                await self._redis.script_load(_script(name))

    async def close(self) -> None:
        await self._redis.aclose()

    async def subscribe(
        self,
        app: str,
        channel: str,
        socket: str,
        node: str,
        user_id: str,
        user_info: str,
        limit: int,
    ) -> Joined:
        from hub.stores.presence.redis import unavailable

        keys = self._channel_keys(app, channel, f"{self._tag(app)}:n:{node}")
        with unavailable():
            row = await self._subscribe(
                keys=keys, args=[channel, socket, node, user_id, user_info, limit]
            )
        return Joined(int(row[0]), bool(int(row[1])), bool(int(row[2])))

    async def unsubscribe(self, app: str, channel: str, socket: str) -> Left:
        from hub.stores.presence.redis import unavailable

        t = self._tag(app)
        with unavailable():
            entry = await self._redis.hget(f"{t}:s:{channel}", socket)
            if entry is None:
                return NOT_SUBSCRIBED
            node = str(entry).split("\t", 1)[0]
            row = await self._unsubscribe(
                keys=self._channel_keys(app, channel, f"{t}:n:{node}"), args=[channel, socket]
            )
        return Left(bool(int(row[0])), str(row[1]), bool(int(row[2])), bool(int(row[3])))

    async def members(self, app: str, channel: str) -> dict[str, Any]:
        return {u: json.loads(i) for u, i in (await self.members_json(app, channel)).items()}

    async def members_json(self, app: str, channel: str) -> dict[str, str]:
        from hub.stores.presence.redis import unavailable

        with unavailable():
            raw = await self._redis.hgetall(f"{self._tag(app)}:i:{channel}")
        return {str(user): str(info) for user, info in raw.items()}

    async def member_count(self, app: str, channel: str) -> int:
        from hub.stores.presence.redis import unavailable

        with unavailable():
            return int(await self._redis.hlen(f"{self._tag(app)}:m:{channel}"))

    async def has_member(self, app: str, channel: str, user_id: str) -> bool:
        from hub.stores.presence.redis import unavailable

        with unavailable():
            return bool(await self._redis.hexists(f"{self._tag(app)}:m:{channel}", user_id))

    async def subscription_count(self, app: str, channel: str) -> int:
        from hub.stores.presence.redis import unavailable

        with unavailable():
            return int(await self._redis.hlen(f"{self._tag(app)}:s:{channel}"))

    async def occupied(self, app: str) -> list[str]:
        from hub.stores.presence.redis import unavailable

        with unavailable():
            return sorted(str(c) for c in await self._redis.smembers(f"{self._tag(app)}:occ"))

    async def heartbeat(self, app: str, node: str, ttl_ms: int) -> bool:
        from hub.stores.presence.redis import unavailable

        with unavailable():
            return bool(
                await self._heartbeat(keys=[f"{self._tag(app)}:nodes"], args=[node, ttl_ms])
            )

    async def expired_nodes(self, app: str) -> list[str]:
        from hub.stores.presence.redis import unavailable

        with unavailable():
            return [str(n) for n in await self._expired(keys=[f"{self._tag(app)}:nodes"])]

    async def node_subscriptions(self, app: str, node: str) -> list[tuple[str, str]]:
        from hub.stores.presence.redis import unavailable

        with unavailable():
            raw = await self._redis.smembers(f"{self._tag(app)}:n:{node}")
        out: list[tuple[str, str]] = []
        for item in raw:
            channel, _, socket = str(item).rpartition("\t")
            out.append((channel, socket))
        return sorted(out)

    async def forget_node(self, app: str, node: str) -> None:
        from hub.stores.presence.redis import unavailable

        t = self._tag(app)
        with unavailable():
            await self._redis.zrem(f"{t}:nodes", node)
            await self._redis.delete(f"{t}:n:{node}")


class RedisBus:
    def __init__(self, url: str, channel: str) -> None:
        from hub.stores.presence.redis import command_client

        self.url = url
        self.channel = channel
        self._redis = command_client(url)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self._redis.aclose()

    async def publish(self, message: dict[str, Any]) -> None:
        from hub.stores.presence.redis import unavailable

        with unavailable():
            await self._redis.publish(self.channel, json.dumps(message, separators=(",", ":")))

    async def messages(self) -> AsyncIterator[dict[str, Any] | None]:
        from hub.stores.feed import GAP
        from hub.stores.presence.redis import subscription

        sub = subscription(self.url, [self.channel], "pusher bus")
        try:
            async for item in sub.messages():
                if item is GAP:
                    yield None
                    continue
                assert isinstance(item, tuple)
                try:
                    message = json.loads(item[1])
                except ValueError:
                    continue
                if isinstance(message, dict):
                    yield message
        finally:
            await sub.close()


def open_channels(settings: Settings) -> tuple[ChannelState, Bus]:
    if settings.store.startswith("memory://"):
        return MemoryChannels(), MemoryBus()
    return (
        RedisChannels(settings.store, settings.key_prefix),
        RedisBus(settings.store, f"{settings.channel}:pusher"),
    )
