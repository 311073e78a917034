"""The in-process counterpart of a pub/sub feed, for the memory backends.

Each consumer gets a bounded queue. A consumer that falls :data:`FEED_LIMIT` events behind
loses the rest until it has drained what it has, then receives the gap marker once, and
recovers from the index as it would after a Redis reconnect. Memory stays bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

#: Events a slow consumer may queue before it is told to recover from the index.
FEED_LIMIT = 10_000

E = TypeVar("E")


class LocalFeed(Generic[E]):
    """Fan events out to every current consumer of :meth:`events`."""

    def __init__(self, gap: E, limit: int = FEED_LIMIT) -> None:
        self.gap = gap
        self.limit = limit
        self._consumers: set[_Consumer[E]] = set()

    @property
    def consumers(self) -> int:
        """How many consumers are reading now."""
        return len(self._consumers)

    def emit(self, event: E) -> None:
        for consumer in self._consumers:
            consumer.put(event)

    async def events(self) -> AsyncIterator[E]:
        consumer: _Consumer[E] = _Consumer(self.limit)
        self._consumers.add(consumer)
        try:
            while True:
                if consumer.lost and consumer.queue.empty():
                    consumer.lost = False
                    yield self.gap
                    continue
                yield await consumer.queue.get()
        finally:
            self._consumers.discard(consumer)


class _Consumer(Generic[E]):
    def __init__(self, limit: int) -> None:
        self.queue: asyncio.Queue[E] = asyncio.Queue(limit)
        self.lost = False

    def put(self, event: E) -> None:
        if self.lost:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lost = True
