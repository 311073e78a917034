"""The presence questions several APIs ask, answered in one place.

"Who is online" is the store's snapshot of users not offline: O(users online), never a scan
of every account. Counting by status (the metrics' ``hub_online_users``) reads the same
snapshot but at most once per ``ttl_s``, however often it is asked, with one query in flight.
"""

from __future__ import annotations

import asyncio
import math
import time

from hub.model.presence import Status
from hub.stores.presence.base import PresenceStore, StoreUnavailable, UserView

#: Statuses counted (everyone not offline).
VISIBLE = (Status.ONLINE.value, Status.AWAY.value, Status.BUSY.value)


class Queries:
    """Shared presence queries over one store."""

    def __init__(self, store: PresenceStore, *, ttl_s: float = 5.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._counts: dict[str, int] | None = None
        self._counted_at = -math.inf
        self._lock = asyncio.Lock()

    async def online(self) -> list[UserView]:
        """Every user not offline, across the cluster."""
        return list((await self.store.changes(None)).users)

    async def online_ids(self) -> frozenset[str]:
        return frozenset(v.id for v in await self.online())

    async def counts(self) -> dict[str, int] | None:
        """Users not offline by status, at most ``ttl_s`` old; None when the store is
        unreachable."""
        if time.monotonic() - self._counted_at < self.ttl_s:
            return self._counts
        async with self._lock:
            if time.monotonic() - self._counted_at < self.ttl_s:
                return self._counts
            try:
                counts = dict.fromkeys(VISIBLE, 0)
                for view in await self.online():
                    if view.status in counts:
                        counts[view.status] += 1
                self._counts = counts
            except StoreUnavailable:
                self._counts = None
            self._counted_at = time.monotonic()
        return self._counts
