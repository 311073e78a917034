"""Prometheus metrics of one hub node and of the cluster, with prometheus-client.

Nothing on the hot path counts for this module: a custom collector (:class:`HubCollector`)
reads, at scrape time, the counters the node, the fan-out and the outboxes keep anyway.
The cluster-wide figures (users by status, live nodes) come from the store through
:class:`~hub.node.queries.Queries` and are cached for ``ttl_s``, so scraping every second
costs one store query every few seconds, not a snapshot per scrape.

Histograms, observed where the hub already is: ``hub_store_seconds`` (every store round
trip, by operation: :class:`TimedStore` wraps the store) and ``hub_feed_delay_seconds``
(from the store stamping a change to this node receiving it on the feed).

Counters of things that end with a connection (outbox overflows) are folded into a
retired total when the connection closes, so they never go down.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from hub import __version__
from hub.delivery.core import DeliveryStats
from hub.model.roster import Part
from hub.node.node import Attached, Node
from hub.node.queries import Queries
from hub.stores.presence.base import (
    Batch,
    Changes,
    Choice,
    Control,
    Event,
    LiveConnection,
    Liveness,
    PresenceStore,
    Profile,
    Slice,
    StoreUnavailable,
    UserView,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Store round trips: a local Redis answers in well under a millisecond; a loaded cluster
#: or a failover takes seconds.
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
#: Feed delays: the fan-out tick is 50 ms; beyond a second something is wrong.
FEED_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@runtime_checkable
class CountsNodes(Protocol):
    """A store that can tell how many nodes have a live heartbeat."""

    async def nodes_alive(self) -> int: ...


def parse(text: str) -> dict[str, float]:
    """Samples of an exposition as ``{'name{a="b"}': value}`` (for tests and ``check``)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
    return out


class Instruments:
    """The registry and the histograms, made before the store so it can be timed."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.store_seconds = Histogram(
            "hub_store_seconds",
            "Round trips to the presence store, by operation.",
            ["op"],
            registry=self.registry,
            buckets=STORE_BUCKETS,
        )
        self.feed_delay = Histogram(
            "hub_feed_delay_seconds",
            "From the store stamping a change to this node receiving it on the feed.",
            registry=self.registry,
            buckets=FEED_BUCKETS,
        )
        ProcessCollector(registry=self.registry)

    def timed(self, store: PresenceStore) -> TimedStore:
        return TimedStore(store, self.store_seconds)


class TimedStore:
    """A :class:`PresenceStore` that observes each round trip in ``hub_store_seconds``."""

    def __init__(self, store: PresenceStore, seconds: Histogram) -> None:
        self.inner = store
        self.window_ms = store.window_ms
        self.grace_ms = store.grace_ms
        self._seconds = seconds
        self._by_op: dict[str, Histogram] = {}

    def _observe(self, op: str, started: float) -> None:
        child = self._by_op.get(op)
        if child is None:
            child = self._by_op[op] = self._seconds.labels(op=op)
        child.observe(time.perf_counter() - started)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    def events(self) -> AsyncIterator[Event]:
        return self.inner.events()

    async def now(self) -> int:
        started = time.perf_counter()
        try:
            return await self.inner.now()
        finally:
            self._observe("now", started)

    async def connect(self, node: str, conn: str, profile: Profile, state: str) -> UserView:
        started = time.perf_counter()
        try:
            return await self.inner.connect(node, conn, profile, state)
        finally:
            self._observe("connect", started)

    async def disconnect(self, node: str, conn: str, user: str, *, grace: bool = True) -> None:
        started = time.perf_counter()
        try:
            await self.inner.disconnect(node, conn, user, grace=grace)
        finally:
            self._observe("disconnect", started)

    async def activity(self, node: str, conn: str, user: str, state: str) -> bool:
        started = time.perf_counter()
        try:
            return await self.inner.activity(node, conn, user, state)
        finally:
            self._observe("activity", started)

    async def set_status(
        self,
        user: str,
        *,
        status: str | None = None,
        text: str | None = None,
        until: int | None = None,
        hide_last_seen: bool | None = None,
    ) -> UserView | None:
        started = time.perf_counter()
        try:
            return await self.inner.set_status(
                user, status=status, text=text, until=until, hide_last_seen=hide_last_seen
            )
        finally:
            self._observe("set_status", started)

    async def expire_statuses(self) -> None:
        started = time.perf_counter()
        try:
            await self.inner.expire_statuses()
        finally:
            self._observe("expire_statuses", started)

    async def set_profile(self, profile: Profile, *, create: bool = True) -> UserView | None:
        started = time.perf_counter()
        try:
            return await self.inner.set_profile(profile, create=create)
        finally:
            self._observe("set_profile", started)

    async def drop_user(self, user: str) -> None:
        started = time.perf_counter()
        try:
            await self.inner.drop_user(user)
        finally:
            self._observe("drop_user", started)

    async def heartbeat(self, node: str, ttl_ms: int, *, epoch: int | None) -> Liveness:
        started = time.perf_counter()
        try:
            return await self.inner.heartbeat(node, ttl_ms, epoch=epoch)
        finally:
            self._observe("heartbeat", started)

    async def restore(
        self,
        node: str,
        live: Sequence[LiveConnection],
        *,
        epoch: int,
        choices: Sequence[Choice] = (),
    ) -> None:
        started = time.perf_counter()
        try:
            await self.inner.restore(node, live, epoch=epoch, choices=choices)
        finally:
            self._observe("restore", started)

    async def node_connections(self, node: str) -> dict[str, str]:
        started = time.perf_counter()
        try:
            return await self.inner.node_connections(node)
        finally:
            self._observe("node_connections", started)

    async def epoch(self) -> int:
        started = time.perf_counter()
        try:
            return await self.inner.epoch()
        finally:
            self._observe("epoch", started)

    async def nodes_alive(self) -> int:
        started = time.perf_counter()
        try:
            return await self.inner.nodes_alive()
        finally:
            self._observe("nodes_alive", started)

    async def sweep(self) -> None:
        started = time.perf_counter()
        try:
            await self.inner.sweep()
        finally:
            self._observe("sweep", started)

    async def remove_node(self, node: str, *, grace: bool) -> None:
        started = time.perf_counter()
        try:
            await self.inner.remove_node(node, grace=grace)
        finally:
            self._observe("remove_node", started)

    async def changes(self, since: int | None) -> Changes:
        started = time.perf_counter()
        try:
            return await self.inner.changes(since)
        finally:
            self._observe("changes", started)

    async def users(self, ids: Sequence[str]) -> list[UserView]:
        started = time.perf_counter()
        try:
            return await self.inner.users(ids)
        finally:
            self._observe("users", started)

    async def get(self, user: str) -> UserView | None:
        started = time.perf_counter()
        try:
            return await self.inner.get(user)
        finally:
            self._observe("get", started)

    async def find_username(self, username: str) -> str | None:
        started = time.perf_counter()
        try:
            return await self.inner.find_username(username)
        finally:
            self._observe("find_username", started)

    async def publish_control(self, message: Control) -> None:
        started = time.perf_counter()
        try:
            await self.inner.publish_control(message)
        finally:
            self._observe("publish_control", started)

    async def room_add(self, room: str, users: Sequence[str]) -> int:
        started = time.perf_counter()
        try:
            return await self.inner.room_add(room, users)
        finally:
            self._observe("room_add", started)

    async def room_remove(self, room: str, users: Sequence[str]) -> int:
        started = time.perf_counter()
        try:
            return await self.inner.room_remove(room, users)
        finally:
            self._observe("room_remove", started)

    async def room_counts(self, room: str | None) -> dict[str, Part]:
        started = time.perf_counter()
        try:
            return await self.inner.room_counts(room)
        finally:
            self._observe("room_counts", started)

    async def room_slice(self, room: str, start: int, count: int) -> Slice:
        started = time.perf_counter()
        try:
            return await self.inner.room_slice(room, start, count)
        finally:
            self._observe("room_slice", started)

    async def room_after(self, room: str, key: str, count: int) -> Slice:
        started = time.perf_counter()
        try:
            return await self.inner.room_after(room, key, count)
        finally:
            self._observe("room_after", started)


class WebhookEndpoint(Protocol):
    """One webhook endpoint as the metrics see it: its id (never its URL) and counters."""

    @property
    def id(self) -> str: ...

    @property
    def stats(self) -> DeliveryStats: ...


class WebhookEndpoints(Protocol):
    """A webhook producer's endpoints (``HUB_WEBHOOKS``'s, the Pusher apps')."""

    @property
    def endpoints(self) -> Sequence[WebhookEndpoint]: ...


class HubMetrics:
    """The metrics of one node; :meth:`exposition` is what ``/metrics`` serves."""

    def __init__(
        self,
        node: Node,
        queries: Queries,
        instruments: Instruments | None = None,
        *,
        ttl_s: float = 5.0,
        webhooks: WebhookEndpoints | None = None,
        pusher_webhooks: WebhookEndpoints | None = None,
    ) -> None:
        self.node = node
        self.webhooks = webhooks
        self.pusher_webhooks = pusher_webhooks
        self.queries = queries
        self.instruments = instruments or Instruments()
        self.ttl_s = ttl_s
        self.closed_connections = 0
        self._retired_overflows = 0
        self.online: dict[str, int] | None = None
        self.alive: int | None = None
        self._alive_at = -math.inf
        node.on_close(self._retire)
        node.on_batch(self._batch)
        self.instruments.registry.register(HubCollector(self))

    async def _retire(self, session: Attached) -> None:
        # Runs before anything awaits in the close path: the session has just left
        # node.sessions, so its overflows move to the retired total with no scrape between.
        self.closed_connections += 1
        self._retired_overflows += _overflows(session)

    def _batch(self, batch: Batch) -> None:
        if not batch.users:
            return
        now_ms = time.time() * 1000
        newest = max(entry["at"] for entry in batch.users)
        self.instruments.feed_delay.observe(max(0.0, (now_ms - newest) / 1000))

    def outbox_overflows(self) -> int:
        live = sum(_overflows(s) for s in self.node.sessions.values())
        return self._retired_overflows + live

    async def refresh(self) -> None:
        """Read the cluster-wide figures the collector shows (cached for ``ttl_s``)."""
        self.online = await self.queries.counts()
        store = self.node.store
        if not isinstance(store, CountsNodes):
            self.alive = 1 if self.node.stats.store_ok else None
        elif time.monotonic() - self._alive_at >= self.ttl_s:
            try:
                self.alive = await store.nodes_alive()
            except StoreUnavailable:
                self.alive = None
            self._alive_at = time.monotonic()

    async def exposition(self) -> bytes:
        await self.refresh()
        return generate_latest(self.instruments.registry)


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=value)


class HubCollector(Collector):
    """Reads the node's counters at scrape time."""

    def __init__(self, metrics: HubMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        m = self.metrics
        node = m.node
        stats = node.stats
        fanout = node.fanout
        build = GaugeMetricFamily(
            "hub_build_info", "Version of the hub; the value is always 1.",
            labels=["version", "python", "store", "node"],
        )  # fmt: skip
        build.add_metric(
            [__version__, platform.python_version(), node.settings.store.split("://", 1)[0],
             node.id], 1,
        )  # fmt: skip
        yield build
        yield _gauge("hub_connections", "Websocket connections open on this node.",
                     len(node.sessions))  # fmt: skip
        yield _counter("hub_connections_closed_total", "Websocket sessions ended on this node.",
                       m.closed_connections)  # fmt: skip
        yield _gauge("hub_subscriptions", "Live subscriptions (sub frames) on this node.",
                     fanout.subscriber_count)  # fmt: skip
        yield _counter("hub_deltas_published_total",
                       "User entries this node's fan-out flushed to its subscribers.",
                       fanout.deltas_published)  # fmt: skip
        yield _counter("hub_frames_delivered_total",
                       "Delta frames handed to connection outboxes (coalesced, at most one per "
                       "subscriber, scope and tick).", fanout.frames_sent)  # fmt: skip
        yield _counter("hub_outbox_overflows_total",
                       "Times a slow connection's outbox overflowed (its deltas were dropped "
                       "and a fresh snapshot sent instead).", m.outbox_overflows())  # fmt: skip
        yield _gauge("hub_store_up", "1 when the last heartbeat reached the store, else 0.",
                     1 if stats.store_ok else 0)  # fmt: skip
        yield _gauge("hub_store_latency_seconds", "Round trip of the last heartbeat to the store.",
                     stats.store_latency_s)  # fmt: skip
        yield _counter("hub_store_errors_total", "Heartbeats that found the store unreachable.",
                       stats.store_errors)  # fmt: skip
        yield _counter("hub_gaps_total",
                       "Times the store feed lost messages and this node recovered by cursor.",
                       stats.gaps)  # fmt: skip
        yield _counter("hub_resyncs_total",
                       "Times every subscriber of this node was sent a fresh snapshot.",
                       stats.resyncs)  # fmt: skip
        yield _counter("hub_restores_total",
                       "Times the store had lost this node and it re-registered its connections.",
                       stats.restores)  # fmt: skip
        yield _counter("hub_reconciled_total",
                       "Stored connections of this node that no socket backed, removed as ghosts.",
                       stats.reconciled)  # fmt: skip
        yield _gauge("hub_draining", "1 while the node drains for shutdown.",
                     1 if node.draining else 0)  # fmt: skip
        if m.alive is not None:
            yield _gauge("hub_nodes_alive",
                         "Hub nodes with a live heartbeat in the store (cluster-wide, cached "
                         f"{m.ttl_s:g} s).", m.alive)  # fmt: skip
        if m.online is not None:
            online = GaugeMetricFamily(
                "hub_online_users",
                f"Users not offline, by status, across the cluster (cached {m.ttl_s:g} s).",
                labels=["status"],
            )
            for status, count in m.online.items():
                online.add_metric([status], count)
            yield online
        producers = [w for w in (m.webhooks, m.pusher_webhooks) if w is not None]
        if producers:
            yield from webhook_families(*producers)


#: Per-endpoint webhook counters: (metric, DeliveryStats attribute, help).
WEBHOOK_COUNTERS = (
    ("hub_webhook_queued_total", "queued",
     "Change batches (Pusher endpoints: events) taken for delivery by this node."),
    ("hub_webhook_delivered_total", "delivered", "Webhook POSTs answered with a 2xx."),
    ("hub_webhook_retries_total", "retried", "Webhook attempts that failed and were retried."),
    ("hub_webhook_dead_letters_total", "dead_lettered", "Webhook deliveries dead-lettered."),
    ("hub_webhook_gaps_total", "gaps",
     "Times an endpoint's group fell out of the change stream (entries trimmed unsent)."),
)  # fmt: skip


def webhook_families(*producers: WebhookEndpoints) -> Iterable[Metric]:
    """The webhook counters of every endpoint of every producer (label ``endpoint``: its id,
    never its URL). Endpoints with one id (one URL posted to by several producers or Pusher
    apps) are one series: their counters summed, the latest delivery's latency."""
    by_id: dict[str, list[DeliveryStats]] = {}
    for producer in producers:
        for ep in producer.endpoints:
            group = by_id.setdefault(ep.id, [])
            if all(stats is not ep.stats for stats in group):
                group.append(ep.stats)
    for name, attr, text in WEBHOOK_COUNTERS:
        family = CounterMetricFamily(name, text, labels=["endpoint"])
        for eid, group in by_id.items():
            family.add_metric([eid], sum(getattr(stats, attr) for stats in group))
        yield family
    latency = SummaryMetricFamily(
        "hub_webhook_delivery_seconds",
        "Seconds from change to 2xx of delivered webhooks (count and sum).",
        labels=["endpoint"],
    )
    last = GaugeMetricFamily("hub_webhook_last_delivery_seconds",
                             "Seconds from change to 2xx of the endpoint's latest delivery.",
                             labels=["endpoint"])  # fmt: skip
    for eid, group in by_id.items():
        latency.add_metric([eid], sum(s.delivered for s in group),
                           sum(s.latency_s_sum for s in group))  # fmt: skip
        latest = max(group, key=lambda s: s.last_delivered_at)
        last.add_metric([eid], latest.last_latency_s)
    yield latency
    yield last


def _overflows(session: object) -> int:
    outbox = getattr(session, "outbox", None)
    value = getattr(outbox, "overflows", 0)
    return value if isinstance(value, int) else 0
