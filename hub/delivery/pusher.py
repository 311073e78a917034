"""Pusher-format webhooks, delivered by the hub's general webhook delivery.

Every (app, URL) of the configured apps is one endpoint: an in-process queue
(:class:`~hub.delivery.queue.QueueSource`) of its events, batched (Pusher's body and
signature from :mod:`hub.wire.pusher_webhook`), POSTed by a
:class:`~hub.delivery.core.Deliverer`: one delivery in flight per endpoint, in order,
retried with the shared backoff (``HUB_WEBHOOK_BACKOFF_MIN_S``/``_MAX_S``, full jitter) for
``HUB_WEBHOOK_RETRY_S`` (at least 5 minutes), then dead-lettered (kept in memory, counted).
Counters are per endpoint id (the first 12 hex digits of the SHA-256 of the URL, as for
``HUB_WEBHOOKS``; apps posting to the same URL share them) and go to ``/metrics`` as
``hub_webhook_*{endpoint=...}``.

Only the node that made a transition calls :meth:`Webhooks.add`, so a cluster sends each
event once. The queue lives in that node's memory: events not yet delivered when it dies
are lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hub.delivery.core import Backoff, Deliverer, DeliveryStats
from hub.delivery.queue import QueueSource
from hub.delivery.webhooks import endpoint_id
from hub.ops.apps import App
from hub.wire.pusher_webhook import (
    BATCH_MAX,
    BATCH_S,
    MIN_RETRY_S,
    Event,
    pusher_encoder,
    pusher_signer,
)

#: Events waiting per endpoint before the oldest are dead-lettered.
MAX_WAITING = 10_000


@dataclass
class Endpoint:
    """One app's webhook URL on this node."""

    id: str
    app_id: str
    event_types: frozenset[str]
    stats: DeliveryStats
    source: QueueSource[Event]
    deliverer: Deliverer


class Webhooks:
    """The webhook endpoints of every app; started and stopped with the Pusher service."""

    def __init__(
        self,
        apps: list[App],
        *,
        retry_s: float = MIN_RETRY_S,
        backoff: Backoff | None = None,
        timeout_s: float = 10.0,
        batch_s: float = BATCH_S,
    ) -> None:
        self.endpoints: list[Endpoint] = []
        self._by_app: dict[str, list[Endpoint]] = {}
        shared: dict[str, DeliveryStats] = {}
        for app in apps:
            types: dict[str, frozenset[str]] = {}
            for hook in app.webhooks:  # one endpoint per URL, whatever it lists twice
                types[hook.url] = types.get(hook.url, frozenset()) | hook.event_types
            for url, event_types in types.items():
                eid = endpoint_id(url)
                stats = shared.setdefault(eid, DeliveryStats())
                source: QueueSource[Event] = QueueSource(
                    pusher_encoder(), tick_s=batch_s, max_batches=MAX_WAITING,
                    max_entries=BATCH_MAX, stats=stats,
                )  # fmt: skip
                deliverer = Deliverer(
                    eid, url, pusher_signer(app), source, retry_s=retry_s, backoff=backoff,
                    timeout_s=timeout_s, stats=stats,
                )  # fmt: skip
                endpoint = Endpoint(eid, app.id, event_types, stats, source, deliverer)
                self.endpoints.append(endpoint)
                self._by_app.setdefault(app.id, []).append(endpoint)

    async def start(self) -> None:
        for ep in self.endpoints:
            ep.deliverer.start()

    async def stop(self) -> None:
        for ep in self.endpoints:
            await ep.deliverer.stop()

    def add(self, app: App, event: Event) -> None:
        """Queue one event for every endpoint of the app that asked for its kind."""
        now_ms = int(time.time() * 1000)
        for ep in self._by_app.get(app.id, ()):
            if event["name"] in ep.event_types:
                ep.source.put(now_ms, [event])
