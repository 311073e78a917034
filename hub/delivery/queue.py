"""Deliveries from an in-process queue: webhooks on ``memory://`` (one process, no Redis).

The node hands every change batch to :meth:`QueueSource.put` (a synchronous batch hook);
what a batch holds is the producer's (presence entries here, Pusher events in
:mod:`hub.delivery.pusher`): the queue only counts them and hands them to its encoder.
Each endpoint has its own queue, which lives as long as the process (a restart loses what
was not delivered yet: there is no durable store to keep it in). Each tick's batches go as
one delivery. Delivery ids have the stream's shape, ``<ms>-<seq>``, strictly increasing.
At most ``max_batches`` wait per endpoint; past that the oldest are dead-lettered.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from hub.delivery.core import Delivery, DeliveryStats

#: What one queued item is (a presence entry, a Pusher event).
T = TypeVar("T")

#: Batches waiting per endpoint before the oldest are dead-lettered.
MAX_BATCHES = 100_000
#: Dead letters kept in memory per endpoint (the newest).
MAX_DEAD = 1_000


@dataclass(frozen=True)
class Queued(Generic[T]):
    cursor: int
    users: list[T]
    born: float


@dataclass(frozen=True)
class DeadLetter:
    id: str
    body: bytes
    reason: str
    at: float


class QueueSource(Generic[T]):
    """An endpoint's deliveries from batches put in this process, in order."""

    def __init__(
        self,
        encode: Callable[[str, int, list[T]], bytes | None],
        *,
        tick_s: float = 0.05,
        max_batches: int = MAX_BATCHES,
        max_entries: int = 1000,
        stats: DeliveryStats | None = None,
    ) -> None:
        self.encode = encode
        self.tick_s = tick_s
        self.max_batches = max_batches
        self.max_entries = max_entries
        self.stats = stats or DeliveryStats()
        self.dead_letters: collections.deque[DeadLetter] = collections.deque(maxlen=MAX_DEAD)
        self._queue: collections.deque[Queued[T]] = collections.deque()
        self._ready = asyncio.Event()
        self._current: Delivery | None = None
        self._last = (0, 0)

    def put(self, cursor: int, users: list[T]) -> None:
        self._queue.append(Queued(cursor, users, time.time()))
        self.stats.queued += 1
        if len(self._queue) > self.max_batches:
            old = self._queue.popleft()
            self.stats.dead_lettered += 1
            self.dead_letters.append(
                DeadLetter(self._next_id(old.cursor), b"", "queue full", time.time())
            )
        self._ready.set()

    def holding(self) -> bool:
        return True

    async def next(self) -> Delivery | None:
        while self._current is None:
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
                # Let the rest of this tick's batches arrive: one POST per tick.
                await asyncio.sleep(self.tick_s)
            self._current = self._take()
        return self._current

    def _take(self) -> Delivery | None:
        taken: list[Queued[T]] = []
        entries = 0
        while self._queue and (
            not taken or entries + len(self._queue[0].users) <= self.max_entries
        ):
            item = self._queue.popleft()
            taken.append(item)
            entries += len(item.users)
        if not taken:
            return None
        users = [u for item in taken for u in item.users]
        cursor = max(item.cursor for item in taken)
        delivery_id = self._next_id(cursor)
        body = self.encode(delivery_id, cursor, users)
        if body is None:  # the endpoint's filter left nothing
            return None
        return Delivery(id=delivery_id, body=body, born=taken[0].born)

    def _next_id(self, cursor: int) -> str:
        ms, seq = self._last
        self._last = (cursor, 0) if cursor > ms else (ms, seq + 1)
        return f"{self._last[0]}-{self._last[1]}"

    async def delivered(self, delivery: Delivery) -> None:
        self._current = None

    async def dead(self, delivery: Delivery, reason: str) -> None:
        self.dead_letters.append(DeadLetter(delivery.id, delivery.body, reason, time.time()))
        self._current = None

    @property
    def waiting(self) -> int:
        return len(self._queue) + (self._current is not None)
