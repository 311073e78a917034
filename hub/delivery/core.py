"""Ordered, retried, signed POSTs to one endpoint: the core every webhook producer shares.

A :class:`Source` hands out :class:`Delivery` objects one at a time, in order; the
:class:`Deliverer` POSTs each until a 2xx answer, retrying with exponential backoff and full
jitter until the delivery's deadline (its birth plus the retry time), then dead-letters it.
Nothing after a delivery is sent before it is done: order per endpoint is kept by never
having two in flight. The body is signed by the producer's signer; the hub's own
(:func:`hub_signer`) sends ``X-Hub-Timestamp: <unix seconds>`` and
``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``, with a
fresh timestamp per attempt, so receivers can reject replays while the delivery id stays stable.

What a delivery carries is up to the producer (the presence changes of
:mod:`hub.delivery.webhooks`, or another format such as Pusher's): the core only sees bytes.
A source that loses its right to deliver (another node took the endpoint over) makes the
deliverer stop retrying without settling, so the new holder delivers it instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from hub.ops.tasks import cancel_requested, stop_task

log = logging.getLogger("hub.delivery")
# httpx logs every request with its URL at INFO; a webhook URL may carry a token.
logging.getLogger("httpx").setLevel(logging.WARNING)

TIMESTAMP_HEADER = "X-Hub-Timestamp"
SIGNATURE_HEADER = "X-Hub-Signature-256"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


Signer = Callable[[bytes, int], Mapping[str, str]]


def hub_signer(secret: str) -> Signer:
    """The hub's signature headers for a body at a unix time (another format, e.g. Pusher's
    ``X-Pusher-Key``/``X-Pusher-Signature``, passes its own signer to the Deliverer)."""

    def sign(body: bytes, timestamp: int) -> Mapping[str, str]:
        return {TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: signature(secret, timestamp, body)}  # fmt: skip

    return sign


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        timestamp = int(headers[TIMESTAMP_HEADER])
        given = headers[SIGNATURE_HEADER]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(given, signature(secret, timestamp, body))


@dataclass
class Delivery:
    """One POST to make: ``id`` is stable across retries and nodes; ``born`` (unix seconds)
    starts its retry time; ``token`` is the source's (what to acknowledge)."""

    id: str
    body: bytes
    born: float
    token: Any = None
    attempts: int = 0


class Source(Protocol):
    """Where an endpoint's deliveries come from, in order."""

    async def next(self) -> Delivery | None:
        """The next delivery (the same one again until settled); None: nothing yet."""
        ...

    def holding(self) -> bool:
        """Whether this process may deliver now (it holds the endpoint)."""
        ...

    async def delivered(self, delivery: Delivery) -> None: ...

    async def dead(self, delivery: Delivery, reason: str) -> None:
        """Keep a delivery that finally failed where an operator finds it, then settle it."""
        ...


@dataclass
class DeliveryStats:
    """Counters of one endpoint on this process (exported by hub.ops.metrics)."""

    queued: int = 0
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    #: Seconds from a delivery's birth to its 2xx answer, summed over ``delivered``.
    latency_s_sum: float = 0.0
    last_latency_s: float = 0.0
    #: Unix time of the latest 2xx (0: none yet).
    last_delivered_at: float = 0.0
    gaps: int = 0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits U(0, min(max, min * 2^n))."""

    min_s: float = 0.5
    max_s: float = 60.0

    def delay(self, attempt: int) -> float:
        cap = min(self.max_s, self.min_s * 2 ** min(attempt, 30))
        return random.uniform(self.min_s / 2, max(self.min_s / 2, cap))


class Deliverer:
    """POSTs one endpoint's deliveries, one at a time, in the order the source gives them."""

    def __init__(
        self,
        name: str,
        url: str,
        signer: Signer,
        source: Source,
        *,
        retry_s: float = 3600.0,
        backoff: Backoff | None = None,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        stats: DeliveryStats | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self._sign = signer
        self.source = source
        self.retry_s = retry_s
        self.backoff = backoff or Backoff()
        self.timeout_s = timeout_s
        self.headers = dict(headers or {"Content-Type": "application/json"})
        self.stats = stats or DeliveryStats()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"webhook-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None

    async def run(self) -> None:
        failures = 0
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as http:
            while True:
                try:
                    delivery = await self.source.next()
                    if delivery is not None:
                        await self.deliver(http, delivery)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a store outage: back off, then go on
                    if cancel_requested():
                        raise asyncio.CancelledError from exc
                    kind = type(exc).__name__
                    self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1
                    if failures % 30 == 0:  # once per outage, then every 30th failure
                        log.warning("webhook %s: %s: %s; retrying", self.name, kind, exc)
                    failures += 1
                    await asyncio.sleep(min(5.0, self.backoff.delay(failures)))

    async def deliver(self, http: httpx.AsyncClient, delivery: Delivery) -> None:
        """POST until a 2xx, the deadline (dead letter) or the loss of the endpoint."""
        deadline = delivery.born + self.retry_s
        while True:
            if not self.source.holding():
                return  # another process holds the endpoint now; it delivers this
            reason = await self._attempt(http, delivery)
            if reason is None:
                now = time.time()
                latency = max(0.0, now - delivery.born)
                self.stats.delivered += 1
                self.stats.last_delivered_at = now
                self.stats.latency_s_sum += latency
                self.stats.last_latency_s = latency
                await self.source.delivered(delivery)
                return
            wait = self.backoff.delay(delivery.attempts)
            if time.time() + wait > deadline:
                remaining = deadline - time.time()
                if remaining <= 0:
                    log.warning(
                        "webhook %s: delivery %s dead-lettered after %d attempts: %s",
                        self.name,
                        delivery.id,
                        delivery.attempts,
                        reason,
                    )
                    self.stats.dead_lettered += 1
                    await self.source.dead(delivery, reason)
                    return
                wait = remaining  # one last attempt at the deadline
            self.stats.retried += 1
            await asyncio.sleep(wait)

    async def _attempt(self, http: httpx.AsyncClient, delivery: Delivery) -> str | None:
        """One POST; None on a 2xx, else why it failed."""
        delivery.attempts += 1
        timestamp = int(time.time())
        headers = {**self.headers, **self._sign(delivery.body, timestamp)}
        try:
            response = await http.post(self.url, content=delivery.body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"
