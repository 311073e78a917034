"""What is Pusher's in a Pusher webhook: its body, its signature headers, its batching.

The POSTing, retrying, ordering and dead-lettering are the hub's general delivery
(:mod:`hub.delivery.core`); this module only gives it Pusher's format:

- the body ``{"time_ms": <ms when the batch was made>, "events": [...]}``
  (:func:`pusher_encoder`);
- the headers ``X-Pusher-Key`` (the app key) and ``X-Pusher-Signature`` (hex HMAC-SHA256 of
  the body, keyed by the app secret) (:func:`pusher_signer`);
- the batching: events wait at most :data:`BATCH_S`, at most :data:`BATCH_MAX` per POST;
- the retry time: at least :data:`MIN_RETRY_S` (Pusher retries for at least 5 minutes).
"""

from __future__ import annotations

import json
import time
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

#: One Pusher webhook event: ``{"name": "member_added", "channel": ..., ...}``.
Event = dict[str, Any]


def body(events: list[Event], time_ms: int) -> bytes:
    return json.dumps({"time_ms": time_ms, "events": events}, separators=(",", ":")).encode()


def pusher_encoder() -> Callable[[str, int, list[Event]], bytes | None]:
    """The body of one batch: made once, so every retry sends the same bytes (and the same
    ``time_ms``, the time the batch was made)."""

    def encode(delivery_id: str, cursor: int, events: list[Event]) -> bytes | None:
        return body(events, int(time.time() * 1000)) if events else None

    return encode


def pusher_signer(app: App) -> Signer:
    """``X-Pusher-Key`` and ``X-Pusher-Signature`` (no timestamp: Pusher's format has none)."""

    def signer(data: bytes, timestamp: int) -> Mapping[str, str]:
        return {"X-Pusher-Key": app.key, "X-Pusher-Signature": sign(app.secret, data.decode())}

    return signer


def retry_time(configured_s: float) -> float:
    """``HUB_WEBHOOK_RETRY_S``, but never under Pusher's 5 minutes."""
    return max(MIN_RETRY_S, configured_s)
