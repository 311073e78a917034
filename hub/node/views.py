"""Counts and member windows: what a node's subscribers see of rooms too big to list.

A ``counts`` subscriber of a room (or of ``all``) gets the room's numbers (online, away,
busy, total) when it subscribes, then at most once a tick when a number changed. A
``range`` subscriber gets a window of the room's ordered members (:mod:`hub.model.roster`)
as a ``snapshot``, then ``window`` frames of operations that keep exactly that window.

Nothing here reads a room's members to follow them. Every store call that moves members
publishes :class:`~hub.stores.presence.base.Moves`: each member's old and new key and its
bucket's new share of the numbers, with a sequence number per room and bucket. So:

- a room's numbers are the sum of its buckets' shares, each the one with the larger
  ``seq`` of what was read and what the feed brought (states, not events: order and
  duplicates do not matter);
- a window is a :class:`~hub.model.window.Region` around it, read once (a slice of the
  order, with each bucket's ``seq`` at the read), then moved by the feed's moves whose
  ``seq`` is newer than the read's; the region is read again only when it no longer
  covers the window (members left before it, say) or the feed lost messages.

Subscribers of one room and one range share one region, one diff and one encoding per
codec per tick: 2,000 subscribers of the top of a room cost one diff a tick. Each window
frame carries a version ``v`` (one counter for the node, so every frame of a window is
numbered above the snapshot it follows); a client applies a frame above the version it
holds, so a frame queued before a resync snapshot is ignored, not applied twice.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.model.presence import Entry
from hub.model.roster import Counts, Part, total_of, user_of
from hub.model.window import Item, Region, diff
from hub.ops.tasks import stop_tasks
from hub.session.outbox import Outbox
from hub.stores.presence.base import Batch, Moves, PresenceStore, RoomMove, Slice
from hub.wire import hub as p

log = logging.getLogger("hub.views")

#: Members read beyond each side of a window, so that members joining or leaving around it
#: are absorbed without a read.
MARGIN = 50
#: A window whose operations would outnumber its members gets a fresh snapshot instead.
MIN_RESNAPSHOT = 16


class Sink(Protocol):
    """A connection as the views see it."""

    codec: p.Codec
    outbox: Outbox


Room = str | None  # None: every user (``all``)


@dataclass(eq=False)
class Numbers:
    """A room's numbers on this node: its buckets' shares, who follows them, what was sent."""

    room: Room
    parts: dict[str, Part] = field(default_factory=dict)
    subs: dict[Sink, p.Scope] = field(default_factory=dict)
    groups: set[Group] = field(default_factory=set)
    sent: Counts | None = None
    ready: asyncio.Future[None] | None = None
    changed: bool = False

    def merge(self, bucket: str, part: Part) -> None:
        held = self.parts.get(bucket)
        if held is None or part.seq > held.seq:
            self.parts[bucket] = part
            self.changed = True

    @property
    def counts(self) -> Counts:
        return total_of(self.parts)


@dataclass(eq=False)
class Group:
    """One window (room, first, last) and the subscribers that hold it."""

    room: str
    first: int
    last: int
    numbers: Numbers
    scope: p.Scope
    region: Region | None = None
    seqs: dict[str, int] = field(default_factory=dict)
    sent: list[Item] | None = None
    sent_total: int = -1
    version: int = 0
    subs: set[Sink] = field(default_factory=set)
    #: Subscribers waiting for the first read (they join ``subs`` with their snapshot).
    waiting: int = 0
    loading: asyncio.Task[None] | None = None
    ready: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    #: Feed events that arrived while the region was being read.
    held: list[Batch | Moves] | None = None
    dirty: bool = False
    changed: bool = False


class Views:
    """The counts and window subscriptions of one node."""

    def __init__(self, store: PresenceStore, *, margin: int = MARGIN) -> None:
        self.store = store
        self.margin = margin
        self.cursor = 0
        self._numbers: dict[Room, Numbers] = {}
        self._groups: dict[tuple[str, int, int], Group] = {}
        self._windows: dict[tuple[Sink, str], Group] = {}
        self._holders: dict[str, set[Group]] = {}
        self._versions = itertools.count(1)
        self._wake: asyncio.Event | None = None
        self._totals_stale = False
        self._totals_read: asyncio.Task[None] | None = None
        self.reads = 0
        self.frames_sent = 0

    def attach(self, wake: asyncio.Event) -> None:
        """The event that runs the next flush (the fan-out's tick)."""
        self._wake = wake

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    @property
    def subscriber_count(self) -> int:
        return sum(len(n.subs) for n in self._numbers.values()) + len(self._windows)

    # -- subscriptions -------------------------------------------------------------

    async def subscribe_counts(self, sink: Sink, scope: p.Scope) -> None:
        """A ``counts`` subscription: its first frame now, then changes once a tick."""
        room: Room = None if scope.kind == "all" else scope.room
        numbers = self._track(room)
        try:
            await self._loaded(numbers)
        except BaseException:
            self._untrack(numbers)
            raise
        numbers.subs[sink] = scope
        if numbers.sent is None:
            numbers.sent = numbers.counts
        sink.outbox.put_control(sink.codec.encode(self._counts_frame(scope, numbers.counts)))

    async def subscribe_window(self, sink: Sink, room: str, first: int, last: int) -> None:
        """A ``range`` subscription (or a move of it): the window's snapshot, then ops."""
        old = self._windows.pop((sink, room), None)
        if old is not None:
            self._leave(old, sink)
        group = self._group(room, first, last)
        self._windows[(sink, room)] = group
        if not group.ready.done():
            group.waiting += 1
            try:
                await asyncio.shield(group.ready)
            except BaseException:
                group.waiting -= 1
                if self._windows.get((sink, room)) is group:
                    del self._windows[(sink, room)]
                self._leave(group, None)  # dropped if nobody else holds it
                raise
            group.waiting -= 1
            if self._windows.get((sink, room)) is not group:
                self._leave(group, None)
                return  # moved or unsubscribed meanwhile
        # The snapshot and the membership in one step: every later frame follows it.
        sink.outbox.put_control(sink.codec.encode(self._window_snapshot(group)))
        group.subs.add(sink)

    def window_of(self, sink: Sink, room: str) -> tuple[int, int] | None:
        """The range of ``sink``'s window of ``room``, or None."""
        group = self._windows.get((sink, room))
        return None if group is None else (group.first, group.last)

    def unsubscribe(self, sink: Sink, scope: p.Scope) -> bool:
        if scope.view == "counts":
            numbers = self._numbers.get(None if scope.kind == "all" else scope.room)
            if numbers is None or numbers.subs.pop(sink, None) is None:
                return False
            self._untrack(numbers)
            return True
        group = self._windows.pop((sink, scope.room), None)
        if group is None:
            return False
        self._leave(group, sink)
        return True

    async def snapshot_frame(self, sink: Sink, scope: p.Scope) -> dict[str, Any] | None:
        """What ``sink`` holds now of ``scope`` (a resync after its outbox overflowed):
        the numbers, or the window as its next ``window`` frame continues it; None when
        ``sink`` no longer has it."""
        if scope.view == "counts":
            numbers = self._numbers.get(None if scope.kind == "all" else scope.room)
            if numbers is None or sink not in numbers.subs:
                return None
            await self._loaded(numbers)
            return self._counts_frame(scope, numbers.counts)
        group = self._windows.get((sink, scope.room))
        if group is None or group.sent is None:
            return None
        return self._window_snapshot(group)

    def _track(self, room: Room) -> Numbers:
        numbers = self._numbers.get(room)
        if numbers is None:
            numbers = self._numbers[room] = Numbers(room)
        return numbers

    def _untrack(self, numbers: Numbers) -> None:
        if not numbers.subs and not numbers.groups and self._numbers.get(numbers.room) is numbers:
            del self._numbers[numbers.room]
            if numbers.ready is not None and not numbers.ready.done():
                numbers.ready.cancel()

    async def _loaded(self, numbers: Numbers) -> None:
        """Read the room's numbers once (every later change comes from the feed)."""
        if numbers.ready is None:
            numbers.ready = asyncio.get_running_loop().create_future()
            task = asyncio.ensure_future(self._read_numbers(numbers))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        await asyncio.shield(numbers.ready)

    async def _read_numbers(self, numbers: Numbers) -> None:
        ready = numbers.ready
        assert ready is not None
        try:
            parts = await self.store.room_counts(numbers.room)
            if not self.cursor:
                self.cursor = await self.store.now()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
                ready.exception()  # the waiters got it; nobody else needs to hear of it
            numbers.ready = None  # the next subscriber reads again
            raise
        self.reads += 1
        for bucket, part in parts.items():
            numbers.merge(bucket, part)
        if not ready.done():
            ready.set_result(None)

    def _group(self, room: str, first: int, last: int) -> Group:
        group = self._groups.get((room, first, last))
        if group is None:
            numbers = self._track(room)
            scope = p.Scope("room", room=room, view="range", window=(first, last))
            group = Group(room, first, last, numbers, scope)
            numbers.groups.add(group)
            self._groups[(room, first, last)] = group
            self._load(group)
        return group

    def _leave(self, group: Group, sink: Sink | None) -> None:
        if sink is not None:
            group.subs.discard(sink)
        key = (group.room, group.first, group.last)
        if group.subs or group.waiting or self._groups.get(key) is not group:
            return
        del self._groups[(group.room, group.first, group.last)]
        if group.loading is not None:
            group.loading.cancel()
        if not group.ready.done():
            group.ready.cancel()
        self._forget(group)
        group.numbers.groups.discard(group)
        self._untrack(group.numbers)

    # -- reading a window ----------------------------------------------------------

    def _load(self, group: Group) -> None:
        """Read the group's region (again), in a task; the feed is held meanwhile."""
        if group.loading is not None:
            return
        group.held = []
        group.loading = asyncio.ensure_future(self._read(group))
        group.loading.add_done_callback(lambda t: self._read_done(group, t))

    def _read_done(self, group: Group, task: asyncio.Task[None]) -> None:
        if group.loading is task:
            group.loading = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        group.held = None
        if not group.ready.done():
            group.ready.set_exception(exc)
            group.ready.exception()
            # A group that never loaded is made anew by the next subscriber.
            if self._groups.get((group.room, group.first, group.last)) is group:
                del self._groups[(group.room, group.first, group.last)]
                group.numbers.groups.discard(group)
                self._untrack(group.numbers)
        else:
            group.dirty = True  # read again at the next tick
            log.warning("window read failed (%s); retried at the next tick", exc)
            self._kick()

    async def _read(self, group: Group) -> None:
        await self._loaded(group.numbers)
        size = group.last - group.first + 1
        region: Region | None = None
        piece: Slice | None = None
        for attempt in range(3):
            total = group.numbers.counts.total
            # Start before the window, but never past the last member, so the region
            # always holds a member when the room has one (see Region.insert).
            start = max(0, min(group.first - self.margin * (attempt + 1), total - 1))
            count = group.last + self.margin * (attempt + 1) - start + 1
            piece = await self.store.room_slice(group.room, start, max(count, size))
            self.reads += 1
            region = Region(piece.start, [k for k, _ in piece.items], piece.at_end,
                            {user_of(k): e for k, e in piece.items})  # fmt: skip
            for bucket, part in piece.parts.items():
                group.numbers.merge(bucket, part)
            if region.covers(group.first, group.last):
                break
        assert region is not None and piece is not None
        self._forget(group)
        group.region = region
        group.seqs = {bucket: part.seq for bucket, part in piece.parts.items()}
        for uid in region.entries:
            self._holders.setdefault(uid, set()).add(group)
        held, group.held = group.held or [], None
        group.dirty = False
        for event in held:
            self._apply(group, event)
        if group.sent is None:
            group.sent = self._content(group) or []
            group.sent_total = group.numbers.counts.total
            group.version = next(self._versions)
        group.changed = True
        if not group.ready.done():
            group.ready.set_result(None)
        self._kick()

    def _forget(self, group: Group) -> None:
        region = group.region
        if region is None:
            return
        for uid in region.entries:
            self._unhold(uid, group)

    # -- the feed ------------------------------------------------------------------

    def observe(self, event: Batch | Moves) -> None:
        """A batch of presence changes or a set of moves from the store feed."""
        if event.cursor > self.cursor:
            self.cursor = event.cursor
        if isinstance(event, Moves):
            if event.totals is not None and None in self._numbers:
                self._numbers[None].merge(event.bucket, event.totals)
                self._kick()
            touched: set[Group] = set()
            tracked = False
            for move in event.rooms:
                numbers = self._numbers.get(move.room)
                if numbers is None:
                    continue
                tracked = True
                numbers.merge(event.bucket, move.part)
                touched.update(numbers.groups)
            for group in touched:
                self._apply(group, event)
            if tracked:
                self._kick()
            return
        if event.users and None in self._numbers:
            # The numbers of all users travel with moves only when a room moved too: after
            # a tick with changes they are read again (a few small reads, once a tick).
            self._totals_stale = True
            self._kick()
        for entry in event.users:
            for group in self._holders.get(entry["id"], ()):
                self._update(group, entry)
        for group in self._groups.values():
            if group.held is not None:
                group.held.append(event)

    def _update(self, group: Group, entry: Entry) -> None:
        region = group.region
        if region is None or group.held is not None:
            return
        held = region.entries.get(entry["id"])
        if held is not None and entry["at"] >= held["at"]:
            region.entries[entry["id"]] = entry
            group.changed = True

    def _apply(self, group: Group, event: Batch | Moves) -> None:
        if group.held is not None:
            group.held.append(event)
            return
        region = group.region
        if region is None or group.dirty:
            return
        if isinstance(event, Batch):
            for entry in event.users:
                self._update(group, entry)
            return
        entries = {e["id"]: e for e in event.users}
        for move in event.rooms:
            if move.room == group.room:
                self._move(group, region, event.bucket, move, entries)

    def _move(self, group: Group, region: Region, bucket: str, move: RoomMove,
              entries: dict[str, Entry]) -> None:  # fmt: skip
        if move.part.seq <= group.seqs.get(bucket, 0):
            return  # the region's read already holds it
        group.seqs[bucket] = move.part.seq
        uid = move.user
        ok = True
        if move.before:
            ok = region.remove(move.before)
        if ok and move.after:
            ok = region.insert(move.after)
        if not ok:
            group.dirty = True
            return
        if move.after and region.has(move.after):
            held = region.entries.get(uid)
            entry = entries.get(uid)
            if entry is None or (held is not None and held["at"] > entry["at"]):
                entry = held
            if entry is None:
                group.dirty = True  # a member placed without its entry: read it
                return
            region.entries[uid] = entry
            self._holders.setdefault(uid, set()).add(group)
        elif region.entries.pop(uid, None) is not None:
            self._unhold(uid, group)
        group.changed = True

    def _unhold(self, uid: str, group: Group) -> None:
        holders = self._holders.get(uid)
        if holders is not None:
            holders.discard(group)
            if not holders:
                del self._holders[uid]

    def lost(self) -> None:
        """The feed lost messages: every room's numbers and every window are read again."""
        for numbers in list(self._numbers.values()):
            if numbers.ready is not None and numbers.ready.done():
                task = asyncio.ensure_future(self._reread_numbers(numbers))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
        for group in self._groups.values():
            group.dirty = True
        self._kick()

    def _totals_done(self, task: asyncio.Task[None]) -> None:
        self._totals_read = None
        if self._totals_stale:
            self._kick()

    async def _reread_numbers(self, numbers: Numbers) -> None:
        try:
            parts = await self.store.room_counts(numbers.room)
        except Exception as exc:
            log.warning("re-reading a room's numbers failed: %s", exc)
            return
        for bucket, part in parts.items():
            numbers.merge(bucket, part)
        self._kick()

    # -- the tick --------------------------------------------------------------------

    def flush(self) -> None:
        """Send what changed since the last tick: numbers, then window operations."""
        everyone = self._numbers.get(None)
        if self._totals_stale and everyone is not None and self._totals_read is None:
            self._totals_stale = False
            self._totals_read = asyncio.ensure_future(self._reread_numbers(everyone))
            self._totals_read.add_done_callback(self._totals_done)
        for numbers in self._numbers.values():
            if numbers.changed and numbers.subs:
                self._send_counts(numbers)
        for group in list(self._groups.values()):
            if group.dirty and group.loading is None:
                self._load(group)
            elif (
                group.region is not None
                and group.held is None
                and not group.dirty
                and (group.changed or group.numbers.changed)
            ):
                self._send_window(group)
        for numbers in self._numbers.values():
            numbers.changed = False

    def _send_counts(self, numbers: Numbers) -> None:
        counts = numbers.counts
        if counts == numbers.sent:
            return
        numbers.sent = counts
        self._send(numbers.subs.items(), lambda scope: self._counts_frame(scope, counts))

    def _send_window(self, group: Group) -> None:
        region = group.region
        assert region is not None
        group.changed = False
        if not region.covers(group.first, group.last):
            group.dirty = True
            self._load(group)
            return
        for key in region.trim(group.first, group.last, 2 * self.margin):
            uid = user_of(key)
            if region.entries.pop(uid, None) is not None:
                self._unhold(uid, group)
        new = self._content(group)
        if new is None:
            group.dirty = True
            self._load(group)
            return
        old = group.sent or []
        ops = diff(old, new)
        total = group.numbers.counts.total
        if not ops and total == group.sent_total:
            return
        group.sent = new
        group.sent_total = total
        group.version = next(self._versions)
        if len(ops) > max(len(new), MIN_RESNAPSHOT):
            frame = self._window_snapshot(group)
        else:
            frame = p.window(group.scope, group.version, ops, total, self.cursor)
        self._send(((sink, group.scope) for sink in group.subs), lambda _scope: frame)

    def _content(self, group: Group) -> list[Item] | None:
        region = group.region
        assert region is not None
        items = []
        for key in region.window(group.first, group.last):
            entry = region.entries.get(user_of(key))
            if entry is None:
                return None
            items.append(Item(key, entry))
        return items

    def _send(self, subs: Iterable[tuple[Sink, p.Scope]], frame_of: Any) -> None:
        encoded: dict[tuple[str, str], str | bytes | None] = {}
        for sink, scope in subs:
            cache = (sink.codec.name, scope.token)
            if cache not in encoded:
                try:
                    encoded[cache] = sink.codec.encode(frame_of(scope))
                except (ValueError, TypeError, OverflowError) as exc:
                    log.warning("a view frame could not be encoded: %s", type(exc).__name__)
                    encoded[cache] = None
            data = encoded[cache]
            if data is not None and sink.outbox.put(data):
                self.frames_sent += 1

    # -- frames ------------------------------------------------------------------------

    def _counts_frame(self, scope: p.Scope, counts: Counts) -> dict[str, Any]:
        return p.counts(scope, counts.online, counts.away, counts.busy, counts.total,
                        self.cursor)  # fmt: skip

    def _window_snapshot(self, group: Group) -> dict[str, Any]:
        users = [item.entry for item in group.sent or []]
        return p.snapshot(group.scope, True, users, self.cursor,
                          total=group.numbers.counts.total, version=group.version)  # fmt: skip

    async def close(self) -> None:
        await stop_tasks([g.loading for g in self._groups.values() if g.loading is not None])
