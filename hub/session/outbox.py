"""The bounded per-connection outbox: encoded frames waiting for a slow socket.

A connection whose socket keeps up never queues anything (the engine writes fan-out frames
straight to its transport). Frames wait here only while the transport is paused or a resync
is in flight; when the bound (frames or bytes) is reached the queued deltas are dropped for
one :data:`RESYNC` marker, and the connection is brought back with fresh snapshots. Memory
never grows with a slow reader.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: An outbox item telling the writer to resync its subscriptions with snapshots.
RESYNC = object()


class Outbox:
    """A bounded queue of encoded frames for one connection.

    Every idle connection has one, so it is kept small: a list, not a deque (an empty deque
    is 760 bytes), and no ``asyncio.Event`` (another deque): :meth:`get` parks on a future
    made when it has to wait, and ``notify`` (when set) is called whenever an item arrives,
    so a connection can run a writer only while there is something to write.
    """

    __slots__ = (
        "_bytes",
        "_items",
        "_resync_pending",
        "_waiter",
        "closed",
        "max_bytes",
        "max_frames",
        "notify",
        "overflows",
    )

    def __init__(self, max_frames: int = 256, max_bytes: int = 4 * 1024 * 1024) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._items: list[str | bytes | object] = []
        self._bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self.notify: Callable[[], None] | None = None
        self.overflows = 0
        self._resync_pending = False
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def resync_pending(self) -> bool:
        return self._resync_pending

    def put(self, frame: str | bytes) -> bool:
        """Queue a frame; False (and a resync instead) when the outbox is full."""
        if self.closed:
            return False
        if self._resync_pending:
            return False
        size = len(frame)
        if len(self._items) >= self.max_frames or self._bytes + size > self.max_bytes:
            self._overflow()
            return False
        self._items.append(frame)
        self._bytes += size
        self._wake()
        return True

    def put_control(self, frame: str | bytes) -> None:
        """Queue a frame that must not be dropped by overflow (acks, errors, pongs).

        These are answers to the client's own frames, so their number is bounded by the
        client's rate limit, not by the change rate."""
        if self.closed:
            return
        self._items.append(frame)
        self._bytes += len(frame)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if self.notify is not None:
            self.notify()

    def _overflow(self) -> None:
        self.overflows += 1
        kept = [i for i in self._items if i is RESYNC]
        self._items.clear()
        self._bytes = 0
        self._resync_pending = True
        self._items.extend(kept or [RESYNC])
        self._wake()

    def request_resync(self) -> None:
        """Drop queued deltas and have the writer send fresh snapshots."""
        self._overflow()
        self.overflows -= 1

    def pop(self) -> str | bytes | object | None:
        """The next item without waiting, None when empty; :data:`RESYNC` means "send
        snapshots now"."""
        if not self._items:
            return None
        item = self._items.pop(0)  # at most max_frames items: cheaper than a deque here
        if item is RESYNC:
            self._resync_pending = False
        else:
            assert isinstance(item, str | bytes)
            self._bytes -= len(item)
        return item

    async def get(self) -> str | bytes | object:
        """The next item, waiting for one; :data:`RESYNC` means "send snapshots now"."""
        while not self._items:
            if self._waiter is None or self._waiter.done():
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self.pop()

    def close(self) -> None:
        self.closed = True
        self._items.clear()
        self._bytes = 0
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
