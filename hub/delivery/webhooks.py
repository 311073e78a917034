"""Presence webhooks: each tick's changes as one signed POST per endpoint, at least once.

``HUB_WEBHOOKS`` lists the endpoints (``URL|SECRET[|EVENTS]``, comma-separated). The body
is JSON ``{"id": "<delivery id>", "cursor": <int>, "users": [<entries>]}``; the core
(:mod:`hub.delivery.core`) signs, retries and dead-letters it.

On Redis every endpoint is one consumer group, ``webhook:<endpoint id>``, on the change
stream(s) (:mod:`hub.delivery.stream`), delivered by one node at a time, at least once
(:mod:`hub.delivery.durable`); the endpoint id is the first 12 hex digits of the SHA-256
of its URL. Its lease is ``<prefix>webhooks:lease:<endpoint id>``; what fails for
``HUB_WEBHOOK_RETRY_S`` (counted from the first entry's time) goes to the stream
``<prefix>webhooks:dead:<endpoint id>``. The delivery id is the id of the delivery's newest
stream entry (``<ms>-<seq>``): stable, and increasing from one delivery to the next.

On ``memory://`` the store's feed goes to an in-process queue per endpoint
(:mod:`hub.delivery.queue`); a gap in the feed is filled from the change index by cursor.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from hub.delivery.core import Backoff, Deliverer, DeliveryStats, hub_signer
from hub.delivery.durable import BLOCK_MS, Keeper, Lease, Skipping, StreamSource
from hub.delivery.queue import QueueSource
from hub.delivery.stream import GroupReader, StreamEntry, stream_client
from hub.model.presence import Entry
from hub.ops.config import Settings, WebhookEndpoint
from hub.ops.tasks import cancel_requested, stop_task
from hub.stores.presence.base import Batch, Gap
from hub.stores.presence.keys import Keys

if TYPE_CHECKING:
    from hub.node.node import Node

log = logging.getLogger("hub.delivery.webhooks")

#: Entries (users) per POST at most; a backlog goes as several POSTs, in order.
MAX_ENTRIES = 1000
#: Stream entries read per delivery at most.
MAX_STREAM_ENTRIES = 500
#: memory://: after a feed gap, changes are read again from this long before the cursor.
RECOVERY_SLACK_MS = 2_000


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


def presence_batch(
    events: frozenset[str] | None,
) -> Callable[[list[StreamEntry]], bytes | None]:
    """The body of a delivery of change-stream entries (None: the filter left nothing)."""
    encode = presence_encoder(events)

    def batch(entries: list[StreamEntry]) -> bytes | None:
        users = [u for e in entries for u in e.users]
        return encode(entries[-1].id, max(e.cursor for e in entries), users)

    return batch


@dataclass
class Endpoint:
    """One configured endpoint on this node: its id, counters and deliverer."""

    id: str
    config: WebhookEndpoint
    stats: DeliveryStats
    deliverer: Deliverer
    source: StreamSource[StreamEntry] | QueueSource[Entry]


class Webhooks:
    """Every ``HUB_WEBHOOKS`` endpoint of this node; started and stopped with the app."""

    def __init__(self, settings: Settings, node: Node) -> None:
        self.settings = settings
        self.node = node
        self.endpoints: list[Endpoint] = []
        self._redis: Redis | RedisCluster | None = None
        self._keeper: Keeper | None = None
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
        durable: list[StreamSource[StreamEntry]] = []
        for config in settings.webhooks:
            eid = endpoint_id(config.url)
            stats = DeliveryStats()
            source: StreamSource[StreamEntry] | QueueSource[Entry]
            if self._redis is not None:
                reader = GroupReader(self._redis, keys.streams, f"webhook:{eid}", node.id)
                lease = Lease(
                    self._redis,
                    f"{settings.key_prefix}webhooks:lease:{eid}",
                    node.id,
                    settings.node_ttl_ms,
                )
                source = StreamSource(
                    self._redis,
                    reader,
                    lease,
                    f"{settings.key_prefix}webhooks:dead:{eid}",
                    presence_batch(config.events),
                    max_entries=MAX_STREAM_ENTRIES,
                    batch_s=tick_s,
                    stats=stats,
                    hint="raise HUB_WINDOW_S to keep a longer backlog",
                )
                durable.append(source)
            else:
                source = QueueSource(
                    presence_encoder(config.events),
                    tick_s=tick_s,
                    max_entries=MAX_ENTRIES,
                    stats=stats,
                )
            deliverer = Deliverer(
                eid,
                config.url,
                hub_signer(config.secret),
                Skipping(source),
                retry_s=settings.webhook_retry_s,
                backoff=backoff,
                timeout_s=settings.webhook_timeout_s,
                stats=stats,
            )
            self.endpoints.append(Endpoint(eid, config, stats, deliverer, source))
        if durable:
            self._keeper = Keeper(durable, settings.sweep_s, "webhook leases")

    async def start(self) -> None:
        if not self.endpoints:
            return
        if self._keeper is None:
            self._follower = asyncio.create_task(self._follow(), name="webhook-feed")
        else:
            await self._keeper.start()
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
                if cancel_requested():
                    raise asyncio.CancelledError from exc
                log.warning("webhook feed: %s; resubscribing", exc)
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self._follower is not None:
            await stop_task(self._follower)
        for ep in self.endpoints:
            await ep.deliverer.stop()
        if self._keeper is not None:
            await self._keeper.stop()
        if self._redis is not None:
            await self._redis.aclose()
