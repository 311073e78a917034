"""Pusher-format webhooks: every app's events, durable on Redis, delivered once per cluster.

Every (app, URL) of the configured apps is one endpoint, POSTed by a
:class:`~hub.delivery.core.Deliverer` in Pusher's format (:mod:`hub.wire.pusher_webhook`):
one batch in flight per endpoint, in order, at most 100 events a POST, signed with
``X-Pusher-Key``/``X-Pusher-Signature``, retried with the shared backoff
(``HUB_WEBHOOK_BACKOFF_MIN_S``/``_MAX_S``, full jitter) for ``HUB_WEBHOOK_RETRY_S`` (at
least 5 minutes), then dead-lettered. Only the event kinds an endpoint asked for
(``event_types``) are POSTed to it. Counters are per endpoint id (the first 12 hex digits
of the SHA-256 of the URL, as for ``HUB_WEBHOOKS``; apps posting to one URL share them) and
go to ``/metrics`` as ``hub_webhook_*{endpoint=...}``.

On Redis every app has one stream of webhook events, ``{<prefix>pusher:<app id>}:hooks``
(:mod:`hub.stores.channels.keys`: the app's slot, shared with its channel keys). The
entry format, for every writer:

- one entry per event, one field ``e``: the event as a JSON object with ``name`` and the
  fields Pusher documents for that kind (``channel``, ``user_id``, ``event``, ``data``,
  ``socket_id``...); any key order, any valid JSON (the body is encoded again); an entry
  that is not such an object is acked and skipped;
- appended with ``XADD <stream> MINID ~ <now ms - retention> * e <json>``, retention =
  :func:`~hub.wire.pusher_webhook.retention_ms` (the retry time plus a minute; 0 when the
  app has no webhook: nothing is appended). MINID, not MAXLEN, because the promise is a
  retry time: an event is kept as long as it may still be delivered, however many events a
  burst during a receiver's outage brings, and a quiet app keeps no more than that. The
  stream's size is the app's event rate times the retention.

Transitions (``channel_occupied``, ``channel_vacated``, ``member_added``,
``member_removed``) are appended by the channel store's scripts in the same script as the
transition, with the Lua function of ``hub/stores/channels/lua/hook.lua``
(``hook(stream, retention, event_json)``), so a node's death between the two cannot lose one.
Events made in Python (``client_event``, ``cache_miss``, ``subscription_count``) go through
:meth:`PusherWebhooks.append`: one entry per event, in order, in one script call
(``append_hooks.lua``, the same function).

Every endpoint is one consumer group, ``webhook:<endpoint id>``, on its app's stream, and
is delivered by exactly one node at a time, the holder of its lease
``{<prefix>pusher:<app id>}:hooks:lease:<endpoint id>`` (:mod:`hub.delivery.durable`, as
``HUB_WEBHOOKS``); dead letters go to ``...:hooks:dead:<endpoint id>``. Each event arrives
once per cluster in the normal case; after a node's death the next holder re-delivers the
batch the dead node had in flight (at least once: the receiver may have seen it).

On ``memory://`` (one process) each endpoint has an in-process queue
(:class:`~hub.delivery.queue.QueueSource`), fed by :meth:`PusherWebhooks.append`; a restart
loses what was not delivered yet, and dead letters are kept in memory.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from hub.delivery.core import Backoff, Deliverer, DeliveryStats
from hub.delivery.durable import BLOCK_MS, Keeper, Lease, Skipping, StreamSource
from hub.delivery.queue import QueueSource
from hub.delivery.stream import Reader, entry_order, stream_client
from hub.delivery.webhooks import endpoint_id
from hub.ops.apps import App
from hub.ops.config import Settings
from hub.stores.channels.keys import hooks_dead, hooks_group, hooks_lease, hooks_stream
from hub.stores.presence.base import StoreUnavailable
from hub.wire.pusher_webhook import (
    BATCH_MAX,
    BATCH_S,
    MIN_RETRY_S,
    Event,
    body,
    pusher_encoder,
    pusher_signer,
    retention_ms,
    retry_time,
)

log = logging.getLogger("hub.delivery.pusher")

#: memory://: events waiting per endpoint before the oldest are dead-lettered.
MAX_WAITING = 10_000
#: Failed appends logged: the first of an outage, then every this many.
LOG_EVERY = 100


@cache
def _append_script() -> str:
    folder = resources.files("hub.stores.channels").joinpath("lua")
    return "\n".join(
        folder.joinpath(n).read_text("utf-8") for n in ("hook.lua", "append_hooks.lua")
    )


@dataclass(frozen=True)
class HookEntry:
    """One entry of an app's webhook stream; ``event`` None: not a webhook event."""

    stream: str
    id: str
    event: Event | None


def decode_hooks(stream: str, raw: Iterable[Any]) -> list[HookEntry]:
    """``[(id, {b"e": json}), ...]`` -> entries; one that is not an event is kept as None,
    so it is still acknowledged."""
    out: list[HookEntry] = []
    for item in raw:
        if item is None:
            continue
        entry_id, fields = item
        data = (fields or {}).get(b"e")
        event: Event | None = None
        try:
            value = json.loads(data) if isinstance(data, bytes) else None
        except ValueError:
            value = None
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            event = value
        ident = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        out.append(HookEntry(stream, ident, event))
    return out


def _wanted(entries: list[HookEntry], event_types: frozenset[str]) -> list[Event]:
    return [e.event for e in entries if e.event is not None and e.event["name"] in event_types]


def stream_batch(event_types: frozenset[str]) -> Callable[[list[HookEntry]], bytes | None]:
    """The body of a delivery of stream entries: the kinds the endpoint asked for, at the
    time of the newest entry (None: nothing for it; the entries are acked unsent)."""

    def batch(entries: list[HookEntry]) -> bytes | None:
        events = _wanted(entries, event_types)
        return body(events, entry_order(entries[-1].id)[0]) if events else None

    return batch


@dataclass(frozen=True)
class Durable:
    """Where the apps' webhook streams are (a Redis store URL and key prefix), and who
    this node is (its id, the consumer and lease owner; its TTL, the lease's)."""

    url: str
    prefix: str
    node_id: str
    node_ttl_ms: int
    sweep_s: float


@dataclass
class Endpoint:
    """One app's webhook URL on this node."""

    id: str
    app_id: str
    event_types: frozenset[str]
    stats: DeliveryStats
    source: StreamSource[HookEntry] | QueueSource[Event]
    deliverer: Deliverer


class PusherWebhooks:
    """The webhook endpoints of every app; started and stopped with the Pusher service."""

    def __init__(
        self,
        apps: list[App],
        *,
        retry_s: float = MIN_RETRY_S,
        backoff: Backoff | None = None,
        timeout_s: float = 10.0,
        batch_s: float = BATCH_S,
        durable: Durable | None = None,
    ) -> None:
        self.endpoints: list[Endpoint] = []
        self.durable = durable
        self.retry_s = retry_s
        self._apps = {app.id: app for app in apps}
        self._by_app: dict[str, list[Endpoint]] = {}
        self._redis: Redis | RedisCluster | None = None
        self._keeper: Keeper | None = None
        self._append: AsyncScript | None = None
        self._failures = 0
        if durable is not None and any(app.webhooks for app in apps):
            self._redis = stream_client(durable.url, block_s=BLOCK_MS / 1000)
            self._append = self._redis.register_script(_append_script())
        shared: dict[str, DeliveryStats] = {}
        sources: list[StreamSource[HookEntry]] = []
        for app in apps:
            types: dict[str, frozenset[str]] = {}
            for hook in app.webhooks:  # one endpoint per URL, whatever it lists twice
                types[hook.url] = types.get(hook.url, frozenset()) | hook.event_types
            for url, event_types in types.items():
                eid = endpoint_id(url)
                stats = shared.setdefault(eid, DeliveryStats())
                source: StreamSource[HookEntry] | QueueSource[Event]
                if self._redis is not None and durable is not None:
                    source = self._stream_source(durable, app, eid, event_types, batch_s, stats)
                    sources.append(source)
                else:
                    source = QueueSource(
                        pusher_encoder(), tick_s=batch_s, max_batches=MAX_WAITING,
                        max_entries=BATCH_MAX, stats=stats,
                    )  # fmt: skip
                deliverer = Deliverer(
                    eid, url, pusher_signer(app), Skipping(source), retry_s=retry_s,
                    backoff=backoff, timeout_s=timeout_s, stats=stats,
                )  # fmt: skip
                endpoint = Endpoint(eid, app.id, event_types, stats, source, deliverer)
                self.endpoints.append(endpoint)
                self._by_app.setdefault(app.id, []).append(endpoint)
        if sources:
            self._keeper = Keeper(sources, durable.sweep_s if durable else 1.0, "pusher webhooks")

    @classmethod
    def from_settings(cls, settings: Settings, apps: list[App], node_id: str) -> PusherWebhooks:
        """The apps' webhooks as the settings say: durable unless the store is memory."""
        durable = None
        if not settings.store.startswith("memory://"):
            durable = Durable(
                settings.store, settings.key_prefix, node_id, settings.node_ttl_ms,
                settings.sweep_s,
            )  # fmt: skip
        return cls(
            apps, retry_s=retry_time(settings.webhook_retry_s),
            backoff=Backoff(settings.webhook_backoff_min_s, settings.webhook_backoff_max_s),
            timeout_s=settings.webhook_timeout_s, durable=durable,
        )  # fmt: skip

    def _stream_source(
        self,
        durable: Durable,
        app: App,
        eid: str,
        event_types: frozenset[str],
        batch_s: float,
        stats: DeliveryStats,
    ) -> StreamSource[HookEntry]:
        assert self._redis is not None
        stream = hooks_stream(durable.prefix, app.id)
        reader = Reader(self._redis, [stream], hooks_group(eid), durable.node_id, decode_hooks)
        lease = Lease(
            self._redis, hooks_lease(durable.prefix, app.id, eid), durable.node_id,
            durable.node_ttl_ms,
        )  # fmt: skip
        return StreamSource(
            self._redis, reader, lease, hooks_dead(durable.prefix, app.id, eid),
            stream_batch(event_types), max_entries=BATCH_MAX, batch_s=batch_s, stats=stats,
            hint="the stream keeps events for HUB_WEBHOOK_RETRY_S plus a minute",
            count=lambda entries: len(_wanted(entries, event_types)),
        )  # fmt: skip

    def stream(self, app_id: str) -> str | None:
        """The app's webhook stream (a KEYS entry of the scripts that append), or None
        when there is none: memory, or an unknown app."""
        if self.durable is None or app_id not in self._apps:
            return None
        return hooks_stream(self.durable.prefix, app_id)

    def retention_ms(self, app_id: str) -> int:
        """The ARGV of the scripts that append: 0 when the app has no webhook."""
        app = self._apps.get(app_id)
        return 0 if app is None else retention_ms(app, self.retry_s)

    async def start(self) -> None:
        if self._keeper is not None:
            await self._keeper.start()
        for ep in self.endpoints:
            ep.deliverer.start()

    async def stop(self) -> None:
        for ep in self.endpoints:
            await ep.deliverer.stop()
        if self._keeper is not None:
            await self._keeper.stop()
        if self._redis is not None:
            await self._redis.aclose()

    async def append(self, app_id: str, events: Sequence[Event]) -> None:
        """Record events made outside the channel scripts, in order, for every endpoint of
        the app that asked for their kind. On Redis a store failure is logged and the
        events are dropped: their transition is done, and the caller goes on."""
        endpoints = self._by_app.get(app_id, ())
        wanted = [e for e in events if any(e["name"] in ep.event_types for ep in endpoints)]
        if not wanted:
            return
        if self._redis is None:
            now_ms = int(time.time() * 1000)
            for event in wanted:
                for ep in endpoints:
                    if event["name"] in ep.event_types:
                        assert isinstance(ep.source, QueueSource)
                        ep.source.put(now_ms, [event])
            return
        stream = self.stream(app_id)
        assert stream is not None
        lines = [json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in wanted]
        try:
            await self._store_append(stream, self.retention_ms(app_id), lines)
        except StoreUnavailable as exc:
            if self._failures % LOG_EVERY == 0:
                log.warning("pusher webhook events of app %s not recorded: %s", app_id, exc)
            self._failures += 1
        else:
            self._failures = 0

    async def _store_append(self, stream: str, retention: int, lines: list[str]) -> None:
        from hub.stores.presence.redis import unavailable

        assert self._append is not None
        with unavailable():
            await self._append(keys=[stream], args=[retention, *lines])
