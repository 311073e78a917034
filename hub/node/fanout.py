"""Fan-out: from the change feed to each subscriber's outbox, coalesced per tick.

Changes arriving from the store feed are merged into one pending map (per user, the entry
with the larger ``at`` wins). At most once per tick (``HUB_TICK_MS``) the pending map is
flushed: every ``all`` subscriber gets the same frame, encoded once per codec; a ``users``
or ``room`` subscriber gets one frame per scope holding only its users, encoded once per
distinct payload. So a subscriber receives at most one delta frame per tick and scope,
whatever the change rate.

Each connection's :class:`Outbox` is bounded (frames and bytes). A subscriber too slow to
drain it loses its pending frames and is marked for resync: its writer sends a fresh
``snapshot`` per scope once it catches up. Memory never grows with a slow reader.

A new subscription starts *buffering*: deltas are held until its snapshot has been queued,
so a client never sees a delta before the snapshot it belongs to.

Counts and member windows (``counts: true``, ``range``) are the :class:`~hub.node.views.Views`
the fan-out carries: they follow the store's moves, and flush on the same tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from hub.model.presence import Entry
from hub.node.views import Views
from hub.session.outbox import RESYNC, Outbox
from hub.stores.presence.base import Batch, Moves
from hub.wire.hub import ALL, Codec, Scope, delta

__all__ = ["RESYNC", "Fanout", "Outbox", "Sink", "Subscription"]

log = logging.getLogger("hub.fanout")


class Sink(Protocol):
    """A connection as fan-out sees it."""

    codec: Codec
    outbox: Outbox


@dataclass(eq=False)
class Subscription:
    sink: Sink
    scope: Scope
    buffer: list[Entry] | None = field(default_factory=list)

    def hold(self, entries: Iterable[Entry]) -> None:
        assert self.buffer is not None
        self.buffer.extend(entries)


class Fanout:
    """The local subscriber index and the per-tick coalescing flush."""

    def __init__(self, tick_ms: int = 50, views: Views | None = None) -> None:
        self.tick_s = tick_ms / 1000
        self.views = views
        self._pending: dict[str, Entry] = {}
        self._cursor = 0
        self._all: dict[Sink, Subscription] = {}
        self._by_user: dict[str, dict[tuple[Sink, str], Subscription]] = {}
        self._by_room: dict[str, dict[Sink, Subscription]] = {}
        self._room_members: dict[str, set[str]] = {}
        self._room_pending: dict[str, dict[str, Entry]] = {}
        self._wake = asyncio.Event()
        self._last_flush = 0.0
        self.frames_sent = 0
        self.deltas_published = 0
        #: How many times changes were fed (presence or rooms): a snapshot read that began at
        #: an equal version misses nothing a subscriber registered since would need.
        self.version = 0
        #: Entries left out of a frame because they could not be encoded (a lone surrogate
        #: in a text, say): counted and logged, never a reason to stop the flush.
        self.entries_dropped = 0
        self.flush_errors = 0
        if views is not None:
            views.attach(self._wake)

    # -- subscriptions -------------------------------------------------------------

    def subscribe(self, sink: Sink, scope: Scope) -> Subscription:
        """Register a buffering subscription; call :meth:`go_live` after its snapshot."""
        sub = Subscription(sink, scope)
        if scope.kind == "all":
            self._all[sink] = sub
        elif scope.kind == "users":
            key = (sink, scope.name)
            for uid in set(scope.users):
                self._by_user.setdefault(uid, {})[key] = sub
        else:
            self._by_room.setdefault(scope.room, {})[sink] = sub
        return sub

    def go_live(self, sub: Subscription, codec: Codec, cursor: int) -> None:
        """Release the deltas held while the snapshot was being made. Outside a room, an
        entry stamped at or before the snapshot's cursor is in the snapshot already (the
        presence store's one clock stamps both); a room's entries also carry membership
        stamps from the registry's clock, so they all go."""
        held, sub.buffer = sub.buffer, None
        if held and sub.scope.kind != "room":
            held = [e for e in held if e["at"] > cursor]
        if held:
            data = self._encode(codec, sub.scope, _latest(held), max(cursor, self._cursor))
            if data is not None:
                sub.sink.outbox.put(data)

    def unsubscribe(self, sink: Sink, scope: Scope) -> bool:
        if scope.view != "list":
            return self.views is not None and self.views.unsubscribe(sink, scope)
        if scope.kind == "all":
            return self._all.pop(sink, None) is not None
        if scope.kind == "users":
            found = False
            key = (sink, scope.name)
            for uid in set(scope.users):
                subs = self._by_user.get(uid)
                if subs is not None and subs.pop(key, None) is not None:
                    found = True
                    if not subs:
                        del self._by_user[uid]
            return found
        subs_r = self._by_room.get(scope.room)
        if subs_r is None or subs_r.pop(sink, None) is None:
            return False
        if not subs_r:
            # Nobody here watches the room any more: its member set would only go stale.
            del self._by_room[scope.room]
            self._room_members.pop(scope.room, None)
        return True

    def drop(self, sink: Sink, scopes: Iterable[Scope]) -> None:
        for scope in list(scopes):
            self.unsubscribe(sink, scope)

    def subscriptions(self) -> Iterable[Subscription]:
        yield from self._all.values()
        seen: set[int] = set()
        for subs in self._by_user.values():
            for sub in subs.values():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield sub
        for rsubs in self._by_room.values():
            yield from rsubs.values()

    @property
    def subscriber_count(self) -> int:
        views = self.views.subscriber_count if self.views is not None else 0
        return sum(1 for _ in self.subscriptions()) + views

    # -- the feed ------------------------------------------------------------------

    def feed(self, entries: Iterable[Entry], cursor: int) -> None:
        """Merge changes from the store feed into the pending map."""
        self.version += 1
        pending = self._pending
        for e in entries:
            cur = pending.get(e["id"])
            if cur is None or e["at"] >= cur["at"]:
                pending[e["id"]] = e
        if cursor > self._cursor:
            self._cursor = cursor
        self._wake.set()

    def observe(self, event: Batch | Moves) -> None:
        """A feed event for the counts and windows (moves, and presence changes)."""
        if self.views is not None:
            self.views.observe(event)

    def lost(self) -> None:
        """The feed lost messages: counts and windows are read again."""
        if self.views is not None:
            self.views.lost()

    def feed_room(self, room: str, entries: Iterable[Entry], cursor: int) -> None:
        """Membership changes of ``room`` (entries with ``member``) for its subscribers."""
        self.version += 1
        pending = self._room_pending.setdefault(room, {})
        for e in entries:
            cur = pending.get(e["id"])
            if cur is None or e["at"] >= cur["at"]:
                pending[e["id"]] = e
        if cursor > self._cursor:
            self._cursor = cursor
        self._wake.set()

    def set_room_members(self, room: str, members: Iterable[str]) -> None:
        self._room_members[room] = set(members)

    def room_members(self, room: str) -> set[str]:
        return self._room_members.setdefault(room, set())

    def knows_room(self, room: str) -> bool:
        """True when this node holds ``room``'s member set (it has subscribers for it)."""
        return room in self._room_members

    def has_room_subscribers(self, room: str) -> bool:
        return room in self._by_room

    def forget_rooms(self) -> list[str]:
        """Drop every member set (the room feed lost events); the rooms that had one."""
        self.version += 1
        rooms = list(self._room_members)
        self._room_members.clear()
        self._room_pending.clear()
        return rooms

    def resync_rooms(self) -> None:
        """Every room subscriber gets a fresh snapshot."""
        sinks = {sub.sink for subs in self._by_room.values() for sub in subs.values()}
        for sink in sinks:
            sink.outbox.request_resync()

    def resync_all(self) -> None:
        """Every subscriber gets a fresh snapshot (after the feed lost too much)."""
        self.version += 1
        self._pending.clear()
        self._room_pending.clear()
        sinks = {sub.sink for sub in self.subscriptions()}
        for sink in sinks:
            sink.outbox.request_resync()

    # -- flushing ------------------------------------------------------------------

    async def run(self) -> None:
        """Flush at most once per tick, right away when the last flush is a tick old."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            wait = self._last_flush + self.tick_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_flush = time.monotonic()
            try:
                self.flush()
            except Exception:
                # One bad tick must not end fan-out for the whole node: every subscriber
                # would silently stop getting deltas. The next tick starts afresh.
                self.flush_errors += 1
                log.exception("fan-out flush failed; the next tick goes on")

    def flush(self) -> None:
        if self.views is not None:
            self.views.flush()
        changes = self._pending
        room_changes = self._room_pending
        if not changes and not room_changes:
            return
        self._pending = {}
        self._room_pending = {}
        cursor = self._cursor
        entries = list(changes.values())
        self.deltas_published += len(entries)
        if entries and self._all:
            self._flush_all(entries, cursor)
        if entries and self._by_user:
            self._flush_users(entries, cursor)
        if self._by_room:
            self._flush_rooms(changes, room_changes, cursor)

    def _encode(
        self, codec: Codec, scope: Scope, entries: list[Entry], cursor: int
    ) -> str | bytes | None:
        """One delta frame, wire-ready; an entry that cannot be encoded is left out (and
        logged and counted) so that it harms nobody else. None when nothing is left."""
        try:
            return _wire_ready(codec.encode(delta(scope, entries, cursor)))
        except (ValueError, TypeError, OverflowError):
            pass
        good = []
        for e in entries:
            try:
                _wire_ready(codec.encode(delta(scope, [e], cursor)))
            except (ValueError, TypeError, OverflowError) as exc:
                self.entries_dropped += 1
                log.warning(
                    "dropped an entry that cannot be encoded",
                    extra={"event": "fanout.bad_entry", "user": repr(e.get("id"))[:80],
                           "codec": codec.name, "error": type(exc).__name__},
                )  # fmt: skip
                continue
            good.append(e)
        if not good:
            return None
        return _wire_ready(codec.encode(delta(scope, good, cursor)))

    def _flush_all(self, entries: list[Entry], cursor: int) -> None:
        encoded: dict[str, str | bytes | None] = {}
        for sub in self._all.values():
            if sub.buffer is not None:
                sub.hold(entries)
                continue
            codec = sub.sink.codec
            name = codec.name
            if name in encoded:
                data = encoded[name]
            else:
                data = encoded[name] = self._encode(codec, ALL, entries, cursor)
            if data is not None and sub.sink.outbox.put(data):
                self.frames_sent += 1

    def _flush_users(self, entries: list[Entry], cursor: int) -> None:
        per_sub: dict[Subscription, list[Entry]] = {}
        by_user = self._by_user
        for e in entries:
            subs = by_user.get(e["id"])
            if subs:
                for sub in subs.values():
                    per_sub.setdefault(sub, []).append(e)
        self._send_each(per_sub, cursor)

    def _flush_rooms(
        self, changes: dict[str, Entry], room_changes: dict[str, dict[str, Entry]], cursor: int
    ) -> None:
        per_sub: dict[Subscription, list[Entry]] = {}
        for room, subs in self._by_room.items():
            members = self._room_members.get(room, set())
            payload = dict(room_changes.get(room, {}))
            # Walk the smaller side: a room may have far more members than a tick has
            # changes, or the other way round.
            found = (
                (uid for uid in changes if uid in members)
                if len(changes) <= len(members)
                else (uid for uid in members if uid in changes)
            )
            for uid in found:
                e = changes[uid]
                if uid not in payload or e["at"] >= payload[uid]["at"]:
                    payload[uid] = {**e, "member": True}
            if payload:
                for sub in subs.values():
                    per_sub[sub] = list(payload.values())
        self._send_each(per_sub, cursor)

    def _send_each(self, per_sub: dict[Subscription, list[Entry]], cursor: int) -> None:
        cache: dict[tuple[object, ...], str | bytes | None] = {}
        for sub, es in per_sub.items():
            if sub.buffer is not None:
                sub.hold(es)
                continue
            codec = sub.sink.codec
            key = (codec.name, sub.scope.token, *(id(e) for e in es))
            if key in cache:
                data = cache[key]
            else:
                data = cache[key] = self._encode(codec, sub.scope, es, cursor)
            if data is not None and sub.sink.outbox.put(data):
                self.frames_sent += 1


def _wire_ready(data: str | bytes) -> str | bytes:
    """``data`` itself, once it is known to survive the trip to the socket: a text frame
    is UTF-8 on the wire, and a lone surrogate in a JSON string only fails there."""
    if isinstance(data, str):
        data.encode("utf-8")
    return data


def _latest(entries: list[Entry]) -> list[Entry]:
    out: dict[str, Entry] = {}
    for e in entries:
        cur = out.get(e["id"])
        if cur is None or e["at"] >= cur["at"]:
            out[e["id"]] = e
    return list(out.values())
