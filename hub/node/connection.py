"""A user's connection as the node holds it, whatever the wire, and the admission gate.

A :class:`UserConnection` is what keeps a user online: a ``/ws`` socket after its
``hello``, or a Pusher socket that is a presence member (or signed in) as that user. The
node registers it in the store (:meth:`hub.node.node.Node.attach`), the store counts it
towards the user's presence, and the node's drain, kicks, reconciliation and restore treat
every one alike. Its :attr:`driver` is the socket that backs it.

:class:`Pacer` paces registrations: at most ``limit`` store calls in flight, at most
``queue`` more waiting their turn; past that a connection is refused with its wire's "try
again" code (never a false "store unreachable"), so a storm of arrivals queues instead of
timing out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from hub.stores.presence.base import LiveConnection, Profile
from hub.wire.hub import CloseCode

if TYPE_CHECKING:
    from hub.session.driver import Driver

#: Close codes that mean the store already dropped the connection (ban, kick).
DROPPED_CODES = (CloseCode.DEACTIVATED, CloseCode.DISCONNECTED)


class UserConnection:
    """One connection of one user, registered in the store under ``conn``."""

    __slots__ = ("conn", "driver", "dropped", "map_close", "profile", "started", "state")

    def __init__(
        self,
        conn: str,
        profile: Profile,
        driver: Driver,
        *,
        map_close: Callable[[int], int] | None = None,
    ) -> None:
        self.conn = conn
        self.profile = profile
        self.driver = driver
        #: The idle state the client reports: online or away.
        self.state = "online"
        #: The store already removed this connection (kick, ban): closing it asks nothing.
        self.dropped = False
        #: The wire's close code for a hub close code (Pusher has its own ranges).
        self.map_close = map_close
        #: When the node admitted it (monotonic), for the log of its end.
        self.started = 0.0

    @property
    def user(self) -> str:
        return self.profile.id

    @property
    def outbox(self) -> object:
        """The socket's outbox (its overflow count is a metric)."""
        return self.driver.outbox

    def live(self) -> LiveConnection:
        return LiveConnection(self.conn, self.profile, self.state)

    async def close(self, code: int, reason: str = "") -> None:
        """Close the socket behind it (drain 1012, kick 4004, ban 4003...)."""
        if code in DROPPED_CODES:
            self.dropped = True
        self.driver.close(self.map_close(code) if self.map_close else code, reason)

    async def ended(self) -> None:
        """Until the socket behind it is closed."""
        await self.driver.ended()


class Busy(Exception):
    """Admission is full: the client should come back later."""


class Pacer:
    """At most ``limit`` registrations in flight and ``queue`` waiting."""

    def __init__(self, limit: int = 64, queue: int = 10_000) -> None:
        self.limit = limit
        self.queue = queue
        self.waiting = 0
        self.refused = 0
        self._slots = asyncio.Semaphore(limit)

    async def __aenter__(self) -> None:
        if self._slots.locked():
            if self.waiting >= self.queue:
                self.refused += 1
                raise Busy(f"{self.waiting} connections are waiting to be admitted")
            self.waiting += 1
            try:
                await self._slots.acquire()
            finally:
                self.waiting -= 1
        else:
            await self._slots.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._slots.release()
