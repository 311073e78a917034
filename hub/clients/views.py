"""What the Python SDK keeps of counts, member windows and unknown watchlist ids.

A :class:`CountsView` holds a room's (or everyone's) numbers from its ``counts`` frames; a
:class:`WindowView` holds members ``[first, last]`` of a room in the hub's order, from a
window ``snapshot`` and then the ``window`` frames of the same range whose version ``v``
is above the one it holds (:func:`hub.model.window.apply`): a frame sent before a newer
snapshot is ignored, never applied twice. :class:`Unknown` is what
:meth:`hub.clients.ws.Client.get` answers for an id of a ``users`` subscription the hub
never saw, apart from a known user who is offline. Both views wake their ``changes()``
iterators on every update; the :class:`~hub.clients.ws.Client` feeds them and sends their
``sub`` again after a reconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.model.presence import Entry
from hub.model.window import apply
from hub.wire.hub import Scope


@dataclass(frozen=True)
class Unknown:
    """An id a ``users`` subscription watches that the hub never saw."""

    id: str


@dataclass(frozen=True)
class Counts:
    """A scope's numbers; ``cursor`` is the store clock they are as of."""

    online: int
    away: int
    busy: int
    total: int
    cursor: int


@dataclass(eq=False)
class _View:
    """What counts and windows share: the first frame, and change iterators."""

    scope: Scope
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    requested: bool = False
    _wakes: set[asyncio.Event] = field(default_factory=set)
    _ended: BaseException | None = None
    _closed: bool = False

    def _changed(self) -> None:
        self.synced.set()
        for wake in self._wakes:
            wake.set()

    def end(self, error: BaseException | None) -> None:
        self._ended = error
        self._closed = True
        for wake in self._wakes:
            wake.set()

    async def _updates(self) -> AsyncIterator[None]:
        wake = asyncio.Event()
        if self.synced.is_set():
            wake.set()
        self._wakes.add(wake)
        try:
            while True:
                await wake.wait()
                wake.clear()
                if self._ended is not None:
                    raise self._ended
                if self._closed:
                    return
                yield None
        finally:
            self._wakes.discard(wake)


@dataclass(eq=False)
class CountsView(_View):
    """A room's (or everyone's) numbers, kept current by the hub."""

    value: Counts | None = None

    def apply(self, frame: Mapping[str, Any]) -> bool:
        try:
            self.value = Counts(int(frame["online"]), int(frame["away"]), int(frame["busy"]),
                                int(frame["total"]), int(frame["cursor"]))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return False
        self._changed()
        return True

    async def changes(self) -> AsyncIterator[Counts]:
        """The numbers now, then each time they change (the latest, if you fall behind)."""
        async for _ in self._updates():
            if self.value is not None:
                yield self.value


@dataclass(eq=False)
class WindowView(_View):
    """Members ``range[0]`` to ``range[1]`` of a room, in the hub's order."""

    range: tuple[int, int] = (0, 0)
    users: list[Entry] = field(default_factory=list)
    version: int = 0
    total: int = 0
    #: True once a snapshot of the current range arrived (a move clears it).
    current: bool = False

    def _matches(self, scope: Any) -> bool:
        return (isinstance(scope, Mapping) and scope.get("room") == self.scope.room
                and list(scope.get("range") or ()) == list(self.range))  # fmt: skip

    def move(self, first: int, last: int) -> None:
        self.range = (first, last)
        self.current = False

    def apply(self, frame: Mapping[str, Any]) -> bool:
        """A window ``snapshot`` or ``window`` frame; True when it changed the window."""
        if not self._matches(frame.get("scope")):
            return False
        if frame.get("op") == "snapshot":
            self.users = list(frame.get("users") or ())
            self.version = int(frame.get("v") or 0)
            self.total = int(frame.get("total") or len(self.users))
            self.current = True
        else:
            version = frame.get("v")
            if not self.current or not isinstance(version, int) or version <= self.version:
                return False
            self.users = apply(frame.get("ops") or (), self.users)
            self.version = version
            self.total = int(frame.get("total") or self.total)
        self._changed()
        return True

    def frame(self) -> dict[str, Any]:
        """The ``sub`` that (re)creates this window at its current range."""
        return {"op": "sub", "room": self.scope.room, "range": list(self.range)}

    async def changes(self) -> AsyncIterator[list[Entry]]:
        """The window now, then after each update (the latest, if you fall behind)."""
        async for _ in self._updates():
            if self.current:
                yield list(self.users)
