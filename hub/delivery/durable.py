"""Durable delivery from a Redis stream: one node at a time per endpoint, at least once.

Every webhook producer on Redis (the presence webhooks of :mod:`hub.delivery.webhooks`, the
Pusher webhooks of :mod:`hub.delivery.pusher`) shares this path. An endpoint is one consumer
group on its stream(s), read by a :class:`~hub.delivery.stream.Reader`. Exactly one node
delivers an endpoint: the holder of its :class:`Lease` (``SET NX PX`` with the node TTL,
renewed by the holder every sweep by a :class:`Keeper`). The holder reads new entries
(``XREADGROUP``), hands them to the :class:`~hub.delivery.core.Deliverer` as one delivery,
and acks them when a 2xx came back; it keeps at most one delivery in flight, so its
pending entries are exactly the delivery being tried. A node that takes an endpoint over
first reclaims those (``XAUTOCLAIM`` from idle 0) and delivers them before anything newer:
the same entries, so the same delivery id (the id of the newest entry, ``<ms>-<seq>``). A
node's death therefore costs at most one repeated delivery, never a lost one. What fails
for the retry time (counted from the first entry's time) is appended to the endpoint's
dead-letter stream (fields id, reason, body, at) and acked.

What a delivery's body is (and whether an endpoint wants it at all) is the producer's: it
passes an encoder from entries to bytes, or None for "nothing for this endpoint" (the
entries are acked and skipped, see :class:`Skipping`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from hub.delivery.core import Delivery, DeliveryStats, Source
from hub.delivery.stream import E, Reader, entry_order, merged
from hub.ops.tasks import cancel_requested, stop_task

log = logging.getLogger("hub.delivery")

#: Dead letters kept per endpoint (a capped stream: the newest).
DEAD_MAXLEN = 10_000
#: How long a blocking read waits for new entries, ms.
BLOCK_MS = 500

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
class _Taken(Generic[E]):
    entries: list[E]


class StreamSource(Generic[E]):
    """An endpoint's deliveries from its stream(s), while this node holds the lease.

    ``encode`` makes a delivery's body from its entries (None: nothing for this endpoint);
    ``max_entries`` entries at most go in one delivery, and a read that finds fewer waits
    ``batch_s`` for the rest of the batch. ``count`` says how many of the entries the
    endpoint takes (its ``queued`` counter); ``hint`` ends the warning when entries were
    trimmed unsent (which setting keeps a longer backlog).
    """

    def __init__(
        self,
        redis: Redis | RedisCluster,
        reader: Reader[E],
        lease: Lease,
        dead_key: str,
        encode: Callable[[list[E]], bytes | None],
        *,
        max_entries: int,
        batch_s: float,
        stats: DeliveryStats,
        hint: str,
        count: Callable[[list[E]], int] = len,
    ) -> None:
        self.redis = redis
        self.reader = reader
        self.lease = lease
        self.dead_key = dead_key
        self.encode = encode
        self.max_entries = max_entries
        self.batch_s = batch_s
        self.stats = stats
        self.hint = hint
        self.count = count
        self._current: Delivery | None = None
        #: Reclaimed entries not yet delivered (more than one delivery's worth).
        self._reclaimed: list[E] = []

    def holding(self) -> bool:
        return self.lease.held()

    async def next(self) -> Delivery | None:
        if not self.lease.held():
            self._current = None  # whoever holds the endpoint now delivers it
            self._reclaimed = []
            self.lease.acquired.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lease.acquired.wait(), timeout=1.0)
            return None
        if self.lease.acquired.is_set():
            # Newly the holder: what the previous one had in flight goes first.
            self.lease.acquired.clear()
            self._current = None
            entries, lost = await self.reader.claim(0, self.max_entries)
            if lost:
                self._lost(lost)
            self._reclaimed = entries
        if self._current is not None:
            return self._current
        if self._reclaimed:
            taken = self._reclaimed[: self.max_entries]
            self._reclaimed = self._reclaimed[self.max_entries :]
            return self._deliver(taken)
        if await self.reader.behind():
            self._lost(None)
        entries = await self.reader.read(self.max_entries, BLOCK_MS)
        if self.reader.take_lost():
            self._lost(None)
        if not entries:
            return None
        if len(entries) < self.max_entries:
            # The rest of this batch goes in the same POST.
            await asyncio.sleep(self.batch_s)
            more = await self.reader.read(self.max_entries - len(entries), 0)
            entries = merged([entries, more])
        return self._deliver(entries)

    def _lost(self, count: int | None) -> None:
        self.stats.gaps += 1
        log.warning(
            "webhook group %s fell out of its stream: %s entries were trimmed before delivery (%s)",
            self.reader.group,
            "some" if count is None else count,
            self.hint,
        )

    def _deliver(self, entries: list[E]) -> Delivery:
        self.stats.queued += self.count(entries)
        delivery_id = entries[-1].id
        born = entry_order(entries[0].id)[0] / 1000
        # An empty body: nothing for this endpoint; Skipping settles it without a POST.
        data = self.encode(entries) or b""
        self._current = Delivery(id=delivery_id, body=data, born=born, token=_Taken(entries))
        return self._current

    async def delivered(self, delivery: Delivery) -> None:
        assert isinstance(delivery.token, _Taken)
        await self.reader.ack(delivery.token.entries)
        if self._current is delivery:
            self._current = None

    async def dead(self, delivery: Delivery, reason: str) -> None:
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


class Skipping:
    """A source wrapper that settles deliveries the endpoint's filter emptied (no POST)."""

    def __init__(self, source: Source) -> None:
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


class Keeper:
    """Makes every source's consumer group and holds every lease it can, each sweep; at
    stop, hands the leases over at once (the next holder reclaims what was in flight)."""

    def __init__(self, sources: Sequence[StreamSource[E]], sweep_s: float, name: str) -> None:
        self.sources = list(sources)
        self.sweep_s = sweep_s
        self.name = name
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self.sources:
            return
        with contextlib.suppress(Exception):  # Redis down: the loop retries
            for source in self.sources:
                await source.reader.ensure()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        ensured = False
        while True:
            try:
                if not ensured:
                    for source in self.sources:
                        await source.reader.ensure()
                    ensured = True
                for source in self.sources:
                    await source.lease.hold()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if cancel_requested():
                    raise asyncio.CancelledError from exc
                log.warning("%s: %s", self.name, exc)
            if cancel_requested():  # a stop a client library took in and returned from
                raise asyncio.CancelledError
            await asyncio.sleep(self.sweep_s)

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        for source in self.sources:
            with contextlib.suppress(Exception):
                await source.lease.release()
