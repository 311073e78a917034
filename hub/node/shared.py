"""Reads shared by everyone who asks the same question at the same time.

When 2,000 clients subscribe to ``all`` in the same moment, each needs the same snapshot:
reading and encoding it 2,000 times is what made a subscribe storm take 42 s. A
:class:`SharedReads` answers every caller of one key from one read:

- callers that arrive while no read of the key runs join the next one, which starts on the
  next turn of the event loop (so everyone who asked in the same turn shares it);
- callers that arrive while a read runs wait for the one after it: they may have
  registered for live updates after the running read began, and only a read that began
  after they registered is sure to contain every change they were not told of;
- a finished read keeps answering while ``version()`` says nothing happened since it began
  (the fan-out counts the changes it was fed), so a storm with no change in between costs
  one read in all.

The value is whatever the read returns (callers encode it once per codec themselves,
see :class:`Shared`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class Shared(Generic[V]):
    """One read's result and the encodings made of it (one per codec or shape)."""

    value: V
    version: int
    encoded: dict[Any, Any] = field(default_factory=dict)

    def encode(self, how: Hashable, make: Callable[[V], Any]) -> Any:
        """``make(value)``, made once per ``how`` for everyone who shares this read."""
        try:
            return self.encoded[how]
        except KeyError:
            out = self.encoded[how] = make(self.value)
            return out


class SharedReads(Generic[K, V]):
    """Coalesces concurrent reads of the same key."""

    def __init__(self, version: Callable[[], int], *, keep: int = 64) -> None:
        self.version = version
        self.keep = keep
        self.reads = 0
        self.shared = 0
        self._done: dict[K, Shared[V]] = {}
        self._next: dict[K, tuple[asyncio.Future[Shared[V]], Callable[[], Awaitable[V]]]] = {}
        self._running: set[K] = set()

    async def get(
        self,
        key: K,
        read: Callable[[], Awaitable[V]],
        fresh: Callable[[Shared[V]], bool] | None = None,
    ) -> Shared[V]:
        """One read's result for ``key``; ``fresh`` says whether a finished read still
        answers this caller (default: nothing was fed since it began)."""
        done = self._done.get(key)
        if done is not None and (fresh(done) if fresh else done.version == self.version()):
            self.shared += 1
            return done
        queued = self._next.get(key)
        if queued is not None:
            self.shared += 1
            return await asyncio.shield(queued[0])
        future: asyncio.Future[Shared[V]] = asyncio.get_running_loop().create_future()
        self._next[key] = (future, read)
        if key not in self._running:
            asyncio.get_running_loop().call_soon(self._start, key)
        return await asyncio.shield(future)

    def forget(self, key: K | None = None) -> None:
        """Drop the finished read of ``key`` (or every one: the feed lost events)."""
        if key is None:
            self._done.clear()
        else:
            self._done.pop(key, None)

    def _start(self, key: K) -> None:
        queued = self._next.pop(key, None)
        if queued is None or key in self._running:
            return
        self._running.add(key)
        asyncio.get_running_loop().create_task(self._run(key, *queued))

    async def _run(
        self, key: K, future: asyncio.Future[Shared[V]], read: Callable[[], Awaitable[V]]
    ) -> None:
        version = self.version()
        self.reads += 1
        try:
            value = await read()
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved here too: the waiters may all be gone
            if not isinstance(exc, Exception):
                raise
        else:
            shared = Shared(value, version)
            if len(self._done) >= self.keep:
                self._done.pop(next(iter(self._done)))
            self._done[key] = shared
            if not future.done():
                future.set_result(shared)
        finally:
            self._running.discard(key)
            if key in self._next:
                self._start(key)
