"""Prometheus metrics: what one hub node and the cluster look like, in the text format.

Nothing on the hot path counts for this module: a scrape reads the counters the node, the
fan-out and the outboxes keep anyway, and the cluster-wide figures (users by status, live
nodes) come from the store, cached for ``ttl_s`` so that scraping every second costs one
store query every few seconds. The exposition format is written by hand: it is a few lines
of text (https://prometheus.io/docs/instrumenting/exposition_formats/), not worth a
dependency.

Counters of things that end with a connection (outbox overflows) are folded into a
retired total when the connection closes, so they never go down.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from hub import __version__
from hub.node import Node, Session
from hub.presence import Status
from hub.store.base import StoreUnavailable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Statuses counted by ``hub_online_users`` (everyone not offline).
VISIBLE = (Status.ONLINE.value, Status.AWAY.value, Status.BUSY.value)

Kind = Literal["counter", "gauge"]


@runtime_checkable
class CountsNodes(Protocol):
    """A store that can tell how many nodes have a live heartbeat."""

    async def nodes_alive(self) -> int: ...


@dataclass
class Family:
    """One metric: a name, a type, a help line and its samples (labels -> value)."""

    name: str
    kind: Kind
    help: str
    samples: list[tuple[Mapping[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Family:
        self.samples.append((labels, value))
        return self


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render(families: Iterable[Family]) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help.replace(chr(10), ' ')}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            if labels:
                inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
                lines.append(f"{family.name}{{{inner}}} {_number(value)}")
            else:
                lines.append(f"{family.name} {_number(value)}")
    return "\n".join(lines) + "\n"


def parse(text: str) -> dict[str, float]:
    """Samples of an exposition as ``{'name{a="b"}': value}`` (for tests and ``check``)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
    return out


def _resident_bytes() -> int | None:
    """This process's resident memory, from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class _Cached:
    """A store figure refreshed at most every ``ttl_s``; one query in flight at a time."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.value: Any = None
        self.at = -math.inf
        self.lock = asyncio.Lock()


class HubMetrics:
    """The collector for one node; :meth:`exposition` is what ``/metrics`` serves."""

    def __init__(self, node: Node, *, ttl_s: float = 5.0, webhooks: Any = None) -> None:
        self.node = node
        self.webhooks = webhooks
        self.ttl_s = ttl_s
        self.started = time.time()
        self.closed_connections = 0
        self._retired_overflows = 0
        self._online = _Cached(ttl_s)
        self._nodes = _Cached(ttl_s)
        node.on_close(self._retire)

    async def _retire(self, session: Session) -> None:
        # Runs before anything awaits in the close path: the session has just left
        # node.sessions, so its overflows move to the retired total with no scrape between.
        self.closed_connections += 1
        self._retired_overflows += _overflows(session)

    def outbox_overflows(self) -> int:
        live = sum(_overflows(s) for s in self.node.sessions.values())
        return self._retired_overflows + live

    async def _refresh(self, cache: _Cached, query: Any) -> Any:
        if time.monotonic() - cache.at < cache.ttl_s:
            return cache.value
        async with cache.lock:
            if time.monotonic() - cache.at < cache.ttl_s:
                return cache.value
            try:
                cache.value = await query()
            except StoreUnavailable:
                cache.value = None
            cache.at = time.monotonic()
        return cache.value

    async def online_users(self) -> dict[str, int] | None:
        """Users by status across the cluster (from the store's full snapshot); None when
        the store cannot answer."""

        async def query() -> dict[str, int]:
            counts = dict.fromkeys(VISIBLE, 0)
            changes = await self.node.store.changes(None)
            for user in changes.users:
                if user.status in counts:
                    counts[user.status] += 1
            return counts

        value: dict[str, int] | None = await self._refresh(self._online, query)
        return value

    async def nodes_alive(self) -> int | None:
        """Nodes with a live heartbeat, when the store can tell; else this node alone."""
        store = self.node.store
        if not isinstance(store, CountsNodes):
            return 1 if self.node.stats.store_ok else None

        async def query() -> int:
            return await store.nodes_alive()

        value: int | None = await self._refresh(self._nodes, query)
        return value

    async def families(self) -> list[Family]:
        node = self.node
        stats = node.stats
        fanout = node.fanout
        settings = node.settings
        store_kind = settings.store.split("://", 1)[0]
        out = [
            Family("hub_build_info", "gauge", "Version of the hub; the value is always 1.").add(
                1,
                version=__version__,
                python=platform.python_version(),
                store=store_kind,
                node=node.id,
            ),
            Family("hub_connections", "gauge", "Websocket connections open on this node.").add(
                len(node.sessions)
            ),
            Family(
                "hub_connections_closed_total", "counter", "Websocket sessions ended on this node."
            ).add(self.closed_connections),
            Family(
                "hub_subscriptions", "gauge", "Live subscriptions (sub frames) on this node."
            ).add(fanout.subscriber_count),
            Family(
                "hub_deltas_published_total",
                "counter",
                "User entries this node's fan-out flushed to its subscribers.",
            ).add(fanout.deltas_published),
            Family(
                "hub_frames_delivered_total",
                "counter",
                "Delta frames handed to connection outboxes (coalesced, at most one per "
                "subscriber, scope and tick).",
            ).add(fanout.frames_sent),
            Family(
                "hub_outbox_overflows_total",
                "counter",
                "Times a slow connection's outbox overflowed (its deltas were dropped and a "
                "fresh snapshot sent instead).",
            ).add(self.outbox_overflows()),
            Family(
                "hub_store_up", "gauge", "1 when the last heartbeat reached the store, else 0."
            ).add(1 if stats.store_ok else 0),
            Family(
                "hub_store_latency_seconds",
                "gauge",
                "Round trip of the last heartbeat to the store.",
            ).add(stats.store_latency_s),
            Family(
                "hub_store_errors_total",
                "counter",
                "Heartbeats that found the store unreachable.",
            ).add(stats.store_errors),
            Family(
                "hub_gaps_total",
                "counter",
                "Times the store feed lost messages and this node recovered by cursor.",
            ).add(stats.gaps),
            Family(
                "hub_resyncs_total",
                "counter",
                "Times every subscriber of this node was sent a fresh snapshot.",
            ).add(stats.resyncs),
            Family(
                "hub_restores_total",
                "counter",
                "Times the store had lost this node and it re-registered its connections.",
            ).add(stats.restores),
            Family(
                "hub_reconciled_total",
                "counter",
                "Stored connections of this node that no socket backed, removed as ghosts.",
            ).add(stats.reconciled),
            Family("hub_draining", "gauge", "1 while the node drains for shutdown.").add(
                1 if node.draining else 0
            ),
            Family(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since the Unix epoch, in seconds.",
            ).add(self.started),
        ]
        resident = _resident_bytes()
        if resident is not None:
            out.append(
                Family(
                    "process_resident_memory_bytes", "gauge", "Resident memory size in bytes."
                ).add(resident)
            )
        out.extend(webhook_families(self.webhooks))
        with contextlib.suppress(StoreUnavailable):
            alive = await self.nodes_alive()
            if alive is not None:
                out.append(
                    Family(
                        "hub_nodes_alive",
                        "gauge",
                        "Hub nodes with a live heartbeat in the store (cluster-wide, "
                        f"cached {self.ttl_s:g} s).",
                    ).add(alive)
                )
        online = await self.online_users()
        if online is not None:
            family = Family(
                "hub_online_users",
                "gauge",
                f"Users not offline, by status, across the cluster (cached {self.ttl_s:g} s).",
            )
            for status, count in online.items():
                family.add(count, status=status)
            out.append(family)
        return out

    async def exposition(self) -> str:
        return render(await self.families())


#: Per-endpoint webhook counters: (metric, DeliveryStats attribute, help).
WEBHOOK_COUNTERS = (
    ("hub_webhook_queued_total", "queued", "Change batches taken for delivery by this node."),
    ("hub_webhook_delivered_total", "delivered", "Webhook POSTs answered with a 2xx."),
    ("hub_webhook_retries_total", "retried", "Webhook attempts that failed and were retried."),
    ("hub_webhook_dead_letters_total", "dead_lettered", "Webhook deliveries dead-lettered."),
    ("hub_webhook_gaps_total", "gaps",
     "Times an endpoint's group fell out of the change stream (entries trimmed unsent)."),
    ("hub_webhook_delivery_seconds_sum", "latency_s_sum",
     "Seconds from change to 2xx, summed over delivered webhooks (divide by delivered)."),
)


def webhook_families(webhooks: Any) -> list[Family]:
    """The webhook counters of every endpoint (label ``endpoint``: its id, not its URL)."""
    endpoints = getattr(webhooks, "endpoints", None) or []
    out = []
    for name, attr, text in WEBHOOK_COUNTERS:
        family = Family(name, "counter", text)
        for ep in endpoints:
            family.add(getattr(ep.stats, attr), endpoint=ep.id)
        out.append(family)
    last = Family("hub_webhook_last_delivery_seconds", "gauge",
                  "Seconds from change to 2xx of the endpoint's latest delivery.")  # fmt: skip
    for ep in endpoints:
        last.add(ep.stats.last_latency_s, endpoint=ep.id)
    out.append(last)
    return out


def _overflows(session: object) -> int:
    outbox = getattr(session, "outbox", None)
    value = getattr(outbox, "overflows", 0)
    return value if isinstance(value, int) else 0
