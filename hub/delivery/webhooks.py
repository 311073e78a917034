"""Presence webhooks: each tick's changes as one signed POST per endpoint, at least once.

``HUB_WEBHOOKS`` lists the endpoints (``URL|SECRET[|EVENTS]``, comma-separated). The body
is JSON ``{"id": "<delivery id>", "cursor": <int>, "users": [<entries>]}``; the core
(:mod:`hub.delivery.core`) signs, retries and dead-letters it.

On Redis every endpoint is one consumer group, ``webhook:<endpoint id>``, on the change
stream(s) (:mod:`hub.delivery.stream`); the endpoint id is the first 12 hex digits of the
SHA-256 of its URL. Exactly one node delivers an endpoint: the holder of its lease,
``<prefix>webhooks:lease:<endpoint id>`` (``SET NX PX`` with the node TTL, renewed by the
holder every sweep). The holder reads new entries (``XREADGROUP``), posts them, acks them
when a 2xx came back; it keeps at most one delivery in flight, so its pending entries are
exactly the delivery being tried. A node that takes an endpoint over first reclaims those
(``XAUTOCLAIM`` from idle 0): the same entries, so the same delivery id, delivered before
anything newer. The delivery id is the id of the delivery's newest stream entry
(``<ms>-<seq>``): stable, and increasing from one delivery to the next. What fails for
``HUB_WEBHOOK_RETRY_S`` (counted from the first entry's time) is appended to the stream
``<prefix>webhooks:dead:<endpoint id>`` (fields id, reason, body, at) and acked.

On ``memory://`` the store's feed goes to an in-process queue per endpoint
(:mod:`hub.delivery.queue`); a gap in the feed is filled from the change index by cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from hub.delivery.core import Backoff, Deliverer, Delivery, DeliveryStats, hub_signer
from hub.delivery.queue import QueueSource
from hub.delivery.stream import GroupReader, StreamEntry, entry_order, merged, stream_client
from hub.model.presence import Entry
from hub.ops.config import Settings, WebhookEndpoint
from hub.stores.presence.base import Batch, Gap
from hub.stores.presence.keys import Keys

if TYPE_CHECKING:
    from hub.node.node import Node

log = logging.getLogger("hub.delivery.webhooks")

#: Entries (users) per POST at most; a backlog goes as several POSTs, in order.
MAX_ENTRIES = 1000
#: Stream entries read per delivery at most.
MAX_STREAM_ENTRIES = 500
#: Dead letters kept per endpoint (a capped stream: the newest).
DEAD_MAXLEN = 10_000
#: How long a blocking read waits for new entries, ms.
BLOCK_MS = 500
#: memory://: after a feed gap, changes are read again from this long before the cursor.
RECOVERY_SLACK_MS = 2_000

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 2 or 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def endpoint_id(url: str) -> str:
    """Stable name of an endpoint in Redis keys, groups and metrics (not the URL itself,
    which may carry credentials)."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def body(delivery_id: str, cursor: int, users: Sequence[Entry]) -> bytes:
    return json.dumps(
        {"id": delivery_id, "cursor": cursor, "users": list(users)},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def presence_encoder(
    events: frozenset[str] | None,
) -> Callable[[str, int, list[Entry]], bytes | None]:
    """The presence producer: entries whose status passes the filter, or None (no POST)."""

    def encode(delivery_id: str, cursor: int, users: list[Entry]) -> bytes | None:
        kept = users if events is None else [u for u in users if u.get("status") in events]
        return body(delivery_id, cursor, kept) if kept else None

    return encode


class Lease:
    """One node's right to deliver an endpoint: ``SET NX PX`` renewed by its holder."""

    def __init__(self, redis: Redis | RedisCluster, key: str, owner: str, ttl_ms: int) -> None:
        self.key = key
        self.owner = owner
        self.ttl_ms = ttl_ms
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._until = 0.0
        #: Set each time the lease is newly acquired (not on a renewal).
        self.acquired = asyncio.Event()

    def held(self) -> bool:
        return time.monotonic() < self._until

    async def hold(self) -> bool:
        """Acquire or renew; True while held. Counted held for 80 % of the TTL from the
        call (the holder stops before another node can take over)."""
        started = time.monotonic()
        result = int(await self._renew(keys=[self.key], args=[self.owner, self.ttl_ms]))
        if result:
            fresh = result == 2 or not self.held()
            self._until = started + self.ttl_ms * 0.8 / 1000
            if fresh:
                self.acquired.set()
            return True
        self._until = 0.0
        return False

    async def release(self) -> None:
        self._until = 0.0
        await self._release(keys=[self.key], args=[self.owner])


@dataclass
class _Taken:
    entries: list[StreamEntry]


class StreamSource:
    """An endpoint's deliveries from the change stream, while this node holds the lease."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        reader: GroupReader,
        lease: Lease,
        dead_key: str,
        encode: Callable[[str, int, list[Entry]], bytes | None],
        *,
        tick_s: float,
        stats: DeliveryStats,
    ) -> None:
        self.redis = redis
        self.reader = reader
        self.lease = lease
        self.dead_key = dead_key
        self.encode = encode
        self.tick_s = tick_s
        self.stats = stats
        self._current: Delivery | None = None

    def holding(self) -> bool:
        return self.lease.held()

    async def next(self) -> Delivery | None:
        if not self.lease.held():
            self._current = None  # whoever holds the endpoint now delivers it
            self.lease.acquired.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lease.acquired.wait(), timeout=1.0)
            return None
        if self.lease.acquired.is_set():
            # Newly the holder: what the previous one had in flight goes first.
            self.lease.acquired.clear()
            self._current = None
            entries, lost = await self.reader.claim(0, MAX_STREAM_ENTRIES)
            if lost:
                self._lost(lost)
            if entries:
                return self._deliver(entries)
        if self._current is not None:
            return self._current
        if await self.reader.behind():
            self._lost(None)
        entries = await self.reader.read(MAX_STREAM_ENTRIES, BLOCK_MS)
        if self.reader.take_lost():
            self._lost(None)
        if not entries:
            return None
        if len(entries) < MAX_STREAM_ENTRIES:
            # The rest of this tick's changes go in the same POST.
            await asyncio.sleep(self.tick_s)
            more = await self.reader.read(MAX_STREAM_ENTRIES - len(entries), 0)
            entries = merged([entries, more])
        return self._deliver(entries)

    def _lost(self, count: int | None) -> None:
        self.stats.gaps += 1
        log.warning(
            "webhook group %s fell out of the change stream: %s entries were trimmed "
            "before delivery (raise HUB_WINDOW_S to keep a longer backlog)",
            self.reader.group,
            "some" if count is None else count,
        )

    def _deliver(self, entries: list[StreamEntry]) -> Delivery | None:
        self.stats.queued += len(entries)
        users = [u for e in entries for u in e.users]
        cursor = max(e.cursor for e in entries)
        delivery_id = entries[-1].id
        data = self.encode(delivery_id, cursor, users)
        taken = _Taken(entries)
        born = entry_order(entries[0].id)[0] / 1000
        if data is None:
            self._current = Delivery(id=delivery_id, body=b"", born=born, token=taken)
            # Nothing for this endpoint: settle at once (the caller sees an empty body).
            return self._current
        self._current = Delivery(id=delivery_id, body=data, born=born, token=taken)
        return self._current

    async def delivered(self, delivery: Delivery) -> None:
        assert isinstance(delivery.token, _Taken)
        await self.reader.ack(delivery.token.entries)
        if self._current is delivery:
            self._current = None

    async def dead(self, delivery: Delivery, reason: str) -> None:
        assert isinstance(delivery.token, _Taken)
        await self.redis.xadd(
            self.dead_key,
            {
                "id": delivery.id,
                "reason": reason,
                "body": delivery.body,
                "at": str(int(time.time() * 1000)),
            },
            maxlen=DEAD_MAXLEN,
            approximate=True,
        )
        await self.delivered(delivery)


@dataclass
class Endpoint:
    """One configured endpoint on this node: its id, counters and deliverer."""

    id: str
    config: WebhookEndpoint
    stats: DeliveryStats
    deliverer: Deliverer
    source: StreamSource | QueueSource[Entry]


class Webhooks:
    """Every ``HUB_WEBHOOKS`` endpoint of this node; started and stopped with the app."""

    def __init__(self, settings: Settings, node: Node) -> None:
        self.settings = settings
        self.node = node
        self.endpoints: list[Endpoint] = []
        self._redis: Redis | RedisCluster | None = None
        self._leases: list[Lease] = []
        self._renewer: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        store_url = settings.store
        self.durable = not store_url.startswith("memory://")
        if not settings.webhooks:
            return
        backoff = Backoff(settings.webhook_backoff_min_s, settings.webhook_backoff_max_s)
        tick_s = settings.tick_ms / 1000
        if self.durable:
            cluster = store_url.startswith("redis+cluster://")
            keys = Keys(
                settings.key_prefix, settings.buckets or (16 if cluster else 1), cluster=cluster
            )
            self._redis = stream_client(store_url, block_s=BLOCK_MS / 1000)
        for config in settings.webhooks:
            eid = endpoint_id(config.url)
            stats = DeliveryStats()
            encode = presence_encoder(config.events)
            source: StreamSource | QueueSource[Entry]
            if self._redis is not None:
                reader = GroupReader(self._redis, keys.streams, f"webhook:{eid}", node.id)
                lease = Lease(
                    self._redis,
                    f"{settings.key_prefix}webhooks:lease:{eid}",
                    node.id,
                    settings.node_ttl_ms,
                )
                self._leases.append(lease)
                source = StreamSource(
                    self._redis,
                    reader,
                    lease,
                    f"{settings.key_prefix}webhooks:dead:{eid}",
                    encode,
                    tick_s=tick_s,
                    stats=stats,
                )
            else:
                source = QueueSource(encode, tick_s=tick_s, max_entries=MAX_ENTRIES, stats=stats)
            deliverer = Deliverer(
                eid,
                config.url,
                hub_signer(config.secret),
                _Skipping(source),
                retry_s=settings.webhook_retry_s,
                backoff=backoff,
                timeout_s=settings.webhook_timeout_s,
                stats=stats,
            )
            self.endpoints.append(Endpoint(eid, config, stats, deliverer, source))

    async def start(self) -> None:
        if not self.endpoints:
            return
        if self._redis is None:
            self._follower = asyncio.create_task(self._follow(), name="webhook-feed")
        else:
            with contextlib.suppress(Exception):  # Redis down: the renewer retries
                for ep in self.endpoints:
                    assert isinstance(ep.source, StreamSource)
                    await ep.source.reader.ensure()
            self._renewer = asyncio.create_task(self._renew(), name="webhook-leases")
        for ep in self.endpoints:
            ep.deliverer.start()

    def _put(self, cursor: int, users: list[Entry]) -> None:
        for ep in self.endpoints:
            assert isinstance(ep.source, QueueSource)
            ep.source.put(cursor, users)

    async def _follow(self) -> None:
        """memory://: the store's feed into every endpoint's queue. A feed gap (this reader
        fell behind) is filled from the change index by cursor, as the node does."""
        store = self.node.store
        cursor = await store.now()
        while True:
            try:
                async for event in store.events():
                    if isinstance(event, Batch):
                        cursor = max(cursor, event.cursor)
                        self._put(event.cursor, event.users)
                    elif isinstance(event, Gap):
                        changes = await store.changes(cursor - RECOVERY_SLACK_MS)
                        for ep in self.endpoints:
                            ep.stats.gaps += 1
                        if changes.users:
                            self._put(changes.cursor, [u.entry() for u in changes.users])
                        cursor = max(cursor, changes.cursor)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook feed: %s; resubscribing", exc)
                await asyncio.sleep(0.5)

    async def _renew(self) -> None:
        ensured = False
        while True:
            try:
                if not ensured:
                    for ep in self.endpoints:
                        assert isinstance(ep.source, StreamSource)
                        await ep.source.reader.ensure()
                    ensured = True
                for lease in self._leases:
                    await lease.hold()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook leases: %s", exc)
            await asyncio.sleep(self.settings.sweep_s)

    async def stop(self) -> None:
        for task in (self._renewer, self._follower):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for ep in self.endpoints:
            await ep.deliverer.stop()
        # Hand the endpoints over at once: the next holder reclaims what was in flight.
        for lease in self._leases:
            with contextlib.suppress(Exception):
                await lease.release()
        if self._redis is not None:
            await self._redis.aclose()


class _Skipping:
    """A source wrapper that settles deliveries the endpoint's filter emptied (no POST)."""

    def __init__(self, source: StreamSource | QueueSource[Entry]) -> None:
        self.inner = source

    def holding(self) -> bool:
        return self.inner.holding()

    async def next(self) -> Delivery | None:
        delivery = await self.inner.next()
        if delivery is not None and not delivery.body:
            await self.inner.delivered(delivery)
            return None
        return delivery

    async def delivered(self, delivery: Delivery) -> None:
        await self.inner.delivered(delivery)

    async def dead(self, delivery: Delivery, reason: str) -> None:
        await self.inner.dead(delivery, reason)
