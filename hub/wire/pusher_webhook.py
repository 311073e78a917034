"""What is Pusher's in a Pusher webhook: its body, its signature headers, its batching.

The POSTing, retrying, ordering and dead-lettering are the hub's general delivery
(:mod:`hub.delivery.core`); this module only gives it Pusher's format:

- the body ``{"time_ms": <ms of the batch's newest event>, "events": [...]}``
  (:func:`body`, :func:`pusher_encoder`): the same bytes on every retry and on whichever
  node delivers the batch;
- the headers ``X-Pusher-Key`` (the app key) and ``X-Pusher-Signature`` (hex HMAC-SHA256 of
  the body, keyed by the app secret) (:func:`pusher_signer`);
- the batching: events wait at most :data:`BATCH_S`, at most :data:`BATCH_MAX` per POST;
- the retry time: at least :data:`MIN_RETRY_S` (Pusher retries for at least 5 minutes),
  and how long an app's webhook stream keeps an event (:func:`retention_ms`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from hub.delivery.core import Signer
from hub.model.pusher_auth import sign
from hub.ops.apps import App

#: How long the first event of a batch waits for others, seconds.
BATCH_S = 0.25
#: Events per POST at most; a backlog goes as several POSTs, in order.
BATCH_MAX = 100
#: Pusher webhooks are retried for at least this long, whatever HUB_WEBHOOK_RETRY_S says.
MIN_RETRY_S = 300.0
#: An app's webhook stream keeps an event this much longer than the retry time: room for
#: clock skew between the nodes and Redis, and for the last attempt at the deadline.
RETENTION_SLACK_S = 60.0

#: One Pusher webhook event: ``{"name": "member_added", "channel": ..., ...}``.
Event = dict[str, Any]


def body(events: list[Event], time_ms: int) -> bytes:
    return json.dumps({"time_ms": time_ms, "events": events}, separators=(",", ":")).encode()


def pusher_encoder() -> Callable[[str, int, list[Event]], bytes | None]:
    """The body of one queued batch; ``cursor`` is the ms its newest event was queued."""

    def encode(delivery_id: str, cursor: int, events: list[Event]) -> bytes | None:
        return body(events, cursor) if events else None

    return encode


def pusher_signer(app: App) -> Signer:
    """``X-Pusher-Key`` and ``X-Pusher-Signature`` (no timestamp: Pusher's format has none)."""

    def signer(data: bytes, timestamp: int) -> Mapping[str, str]:
        return {"X-Pusher-Key": app.key, "X-Pusher-Signature": sign(app.secret, data.decode())}

    return signer


def retry_time(configured_s: float) -> float:
    """``HUB_WEBHOOK_RETRY_S``, but never under Pusher's 5 minutes."""
    return max(MIN_RETRY_S, configured_s)


def retention_ms(app: App, configured_s: float) -> int:
    """How long the app's webhook stream keeps an event, ms, for ``HUB_WEBHOOK_RETRY_S`` =
    ``configured_s``: the retry time plus a slack, as every event may still be delivered
    that long; 0 when the app has no webhook (then nothing is appended)."""
    if not app.webhooks:
        return 0
    return int((retry_time(configured_s) + RETENTION_SLACK_S) * 1000)
