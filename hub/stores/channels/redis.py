"""The Redis channel store: Pusher channel state shared by every hub on one Redis or Cluster.

Every key of an app lives in one slot, ``{<prefix>pusher:<app id>}`` (``T`` below), so each
script touches one slot:

========================  =======  ========================================================
``T:s:<channel>``         hash     socket id -> ``<node>\\t<user id>`` (empty user: no member)
``T:m:<channel>``         hash     user id -> connections in the channel (presence channels)
``T:i:<channel>``         hash     user id -> ``user_info`` JSON
``T:mv``                  string   the app's member version (see :mod:`.base`)
``T:occ``                 set      occupied channels
``T:n:<node>``            set      ``<channel>\\t<socket id>`` of the node (for reaping)
``T:nodes``               zset     node id -> heartbeat expiry ms (Redis clock)
``T:hooks``               stream   the app's webhook events (:mod:`.keys`,
                                   :mod:`hub.delivery.pusher`): the subscribe and
                                   unsubscribe scripts append their transitions' events
``T:c:<channel>``         string   a cache channel's last event, ``<event id>\\n<frame>``
                                   (expires: ``PX``)
``T:cm:<channel>``        string   a cache channel's miss window (expires: ``PX``)
========================  =======  ========================================================

The feed is Redis pub/sub on ``<HUB_CHANNEL>:pusher``, JSON messages: ``{"k": "e"}`` an
event to deliver, ``{"k": "m"}`` a member change and ``{"k": "n"}`` a subscription count
(both published by the subscribe and unsubscribe scripts themselves, so their order is the
order of the changes), ``{"k": "t"}`` a termination, ``{"k": "p"}`` a node's probe of its
own feed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio.cluster import RedisCluster

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
from hub.stores.channels.keys import app_tag, hooks_stream
from hub.stores.feed import GAP
from hub.stores.presence.redis import command_client, subscription, unavailable

log = logging.getLogger("hub.pusher")

SCRIPTS = ("subscribe", "unsubscribe", "members", "heartbeat", "expired", "cache_put", "cache_get")


#: Scripts that make webhook events: hook.lua goes in front of them.
HOOKED = ("subscribe", "unsubscribe")


@cache
def _script(name: str) -> str:
    folder = resources.files("hub.stores.channels").joinpath("lua")
    text = folder.joinpath(f"{name}.lua").read_text("utf-8")
    if name in HOOKED:
        text = folder.joinpath("hook.lua").read_text("utf-8") + "\n" + text
    return text


class RedisChannels:
    """A :class:`~hub.stores.channels.base.ChannelStore` in Redis or Redis Cluster."""

    #: The subscribe and unsubscribe scripts append their transitions' webhook events.
    records_hooks = True

    def __init__(self, url: str, prefix: str, feed: str) -> None:
        self.url = url
        self.prefix = prefix
        #: The pub/sub channel of the channel feed.
        self.feed = feed
        self._redis = command_client(url)
        reg = self._redis.register_script
        self._scripts = {name: reg(_script(name)) for name in SCRIPTS}

    def _tag(self, app: str) -> str:
        return app_tag(self.prefix, app)

    def _channel_keys(self, app: str, channel: str, node_key: str) -> list[str]:
        t = self._tag(app)
        return [f"{t}:s:{channel}", f"{t}:m:{channel}", f"{t}:i:{channel}", f"{t}:occ", node_key,
                f"{t}:mv", hooks_stream(self.prefix, app)]  # fmt: skip

    async def start(self) -> None:
        with unavailable():
            if isinstance(self._redis, RedisCluster):
                await self._redis.initialize()
            for name in SCRIPTS:
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
        hooks_ms: int = 0,
        counts: bool = False,
    ) -> Joined:
        keys = self._channel_keys(app, channel, f"{self._tag(app)}:n:{node}")
        args: list[str | int] = [channel, socket, node, user_id, user_info, limit, app, self.feed,
                                 hooks_ms, int(counts)]  # fmt: skip
        with unavailable():
            row = await self._scripts["subscribe"](keys=keys, args=args)
        return Joined(int(row[0]), bool(int(row[1])), bool(int(row[2])), int(row[3]),
                      int(row[4]))  # fmt: skip

    async def unsubscribe(
        self, app: str, channel: str, socket: str, hooks_ms: int = 0, counts: bool = False
    ) -> Left:
        t = self._tag(app)
        with unavailable():
            entry = await self._redis.hget(f"{t}:s:{channel}", socket)
            if entry is None:
                return NOT_SUBSCRIBED
            node = str(entry).split("\t", 1)[0]
            row = await self._scripts["unsubscribe"](
                keys=self._channel_keys(app, channel, f"{t}:n:{node}"),
                args=[channel, socket, app, self.feed, hooks_ms, int(counts)],
            )
        return Left(bool(int(row[0])), str(row[1]), bool(int(row[2])), bool(int(row[3])),
                    int(row[4]), int(row[5]))  # fmt: skip

    async def members(self, app: str, channel: str) -> Members:
        t = self._tag(app)
        with unavailable():
            row = await self._scripts["members"](keys=[f"{t}:i:{channel}", f"{t}:mv"])
        flat = row[1:]
        return Members(
            int(row[0]), {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}
        )

    async def member_count(self, app: str, channel: str) -> int:
        with unavailable():
            return int(await self._redis.hlen(f"{self._tag(app)}:m:{channel}"))

    async def has_member(self, app: str, channel: str, user_id: str) -> bool:
        with unavailable():
            return bool(await self._redis.hexists(f"{self._tag(app)}:m:{channel}", user_id))

    async def subscription_count(self, app: str, channel: str) -> int:
        with unavailable():
            return int(await self._redis.hlen(f"{self._tag(app)}:s:{channel}"))

    async def occupied(self, app: str) -> list[str]:
        with unavailable():
            return sorted(str(c) for c in await self._redis.smembers(f"{self._tag(app)}:occ"))

    async def heartbeat(self, app: str, node: str, ttl_ms: int) -> bool:
        with unavailable():
            known = await self._scripts["heartbeat"](
                keys=[f"{self._tag(app)}:nodes"], args=[node, ttl_ms]
            )
        return bool(known)

    async def expired_nodes(self, app: str) -> list[str]:
        with unavailable():
            return [
                str(n) for n in await self._scripts["expired"](keys=[f"{self._tag(app)}:nodes"])
            ]

    async def node_subscriptions(self, app: str, node: str) -> list[tuple[str, str]]:
        with unavailable():
            raw = await self._redis.smembers(f"{self._tag(app)}:n:{node}")
        out: list[tuple[str, str]] = []
        for item in raw:
            channel, _, socket = str(item).rpartition("\t")
            out.append((channel, socket))
        return sorted(out)

    async def forget_node(self, app: str, node: str) -> None:
        t = self._tag(app)
        with unavailable():
            await self._redis.zrem(f"{t}:nodes", node)
            await self._redis.delete(f"{t}:n:{node}")

    # -- cache channels ------------------------------------------------------------------

    async def cache_put(
        self, app: str, channel: str, event_id: str, frame: str, ttl_ms: int
    ) -> None:
        t = self._tag(app)
        with unavailable():
            await self._scripts["cache_put"](
                keys=[f"{t}:c:{channel}", f"{t}:cm:{channel}"], args=[event_id, frame, ttl_ms]
            )

    async def cache_get(self, app: str, channel: str, miss_ms: int) -> Cached:
        t = self._tag(app)
        with unavailable():
            row = await self._scripts["cache_get"](
                keys=[f"{t}:c:{channel}", f"{t}:cm:{channel}"], args=[miss_ms]
            )
        held = row[0]
        if held is None:
            return Cached(None, first_miss=bool(int(row[1])))
        event_id, _, frame = str(held).partition("\n")
        return Cached(frame, event_id)

    # -- the feed ------------------------------------------------------------------------

    async def publish(self, event: ChannelEvent | Terminate | Probe) -> None:
        if isinstance(event, Terminate):
            message: dict[str, Any] = {"k": "t", "a": event.app, "u": event.user}
        elif isinstance(event, Probe):
            message = {"k": "p", "n": event.node}
        else:
            message = {"k": "e", "a": event.app, "c": event.channel, "f": event.frame}
            if event.exclude:
                message["x"] = event.exclude
            if event.cache_id:
                message["i"] = event.cache_id
        with unavailable():
            await self._redis.publish(self.feed, json.dumps(message, separators=(",", ":")))

    async def events(self) -> AsyncIterator[ChannelFeedEvent]:
        sub = subscription(self.url, [self.feed], "pusher feed")
        try:
            async for item in sub.messages():
                if item is GAP:
                    yield ChannelGap()
                    continue
                assert isinstance(item, tuple)
                event = _decode(item[1])
                if event is not None:
                    yield event
        finally:
            await sub.close()


def _decode(data: bytes) -> ChannelFeedEvent | None:
    try:
        m = json.loads(data)
        kind = m["k"]
        if kind == "e":
            return ChannelEvent(str(m["a"]), str(m["c"]), str(m["f"]), str(m.get("x") or ""),
                                str(m.get("i") or ""))  # fmt: skip
        if kind == "n":
            return CountChange(str(m["a"]), str(m["c"]), int(m["n"]))
        if kind == "m":
            info = m.get("i")
            return MemberChange(str(m["a"]), str(m["c"]), int(m["v"]), str(m["u"]),
                                info if isinstance(info, str) else None,
                                str(m.get("x") or ""))  # fmt: skip
        if kind == "t":
            return Terminate(str(m["a"]), str(m["u"]))
        if kind == "p":
            return Probe(str(m["n"]))
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("ignored a malformed message on the pusher feed: %s", exc)
    return None
