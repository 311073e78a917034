"""What a frame of the hub's own wire does to the node: status, activity, subscriptions, rooms.

The session (:mod:`hub.session.core`) decides whether a client frame is acceptable; this
module carries out the ones that were, against the store, the fan-out and the rooms, for
any transport. A frame that cannot take effect raises :class:`~hub.wire.hub.ProtocolError`
(answered with ``error`` naming the problem) or
:class:`~hub.stores.presence.base.StoreUnavailable` (answered with ``unavailable``).

A subscription registers with the fan-out first (buffering), then reads its snapshot, then
goes live: deltas of changes made while the snapshot was read are held and sent after it,
so a client never sees a delta before the snapshot it belongs to, and never misses one.
Counts and member windows go to the fan-out's :class:`~hub.node.views.Views`; a plain room
subscription of a room above ``HUB_ROOM_FULL_LIST_MAX`` members is refused with ``limit``.
A ``users`` snapshot lists every known user of the scope (offline ones too, with their
last seen when shown) and, in ``unknown``, the ids the hub never saw.
"""

from __future__ import annotations

from typing import Protocol

from hub.model.presence import Entry, in_window
from hub.node.fanout import Sink
from hub.node.node import Node, RoomService
from hub.node.views import Views
from hub.stores.presence.base import UserView
from hub.wire import hub as p


class Connection(Sink, Protocol):
    """A ``/ws`` connection as the commands see it (fan-out's sink, the node's session)."""

    conn: str
    user: str
    state: str
    registered: bool
    lost: bool


class HubCommands:
    """The hub wire's frames, carried out on one node."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def run(self, c: Connection, msg: p.Message) -> None:
        """Carry out one frame the session let through (a ``Run``)."""
        node = self.node
        if isinstance(msg, p.SetStatus):
            await self.set_status(c.user, msg)
        elif isinstance(msg, p.Activity):
            c.state = msg.state
            if c.registered:  # never about a connection the store already let go
                await node.store.activity(node.id, c.conn, c.user, msg.state)
        elif isinstance(msg, p.Sub):
            await self.subscribe(c, msg.scope, msg.since)
        elif isinstance(msg, p.Range):
            await self.move(c, msg)
        elif isinstance(msg, p.Unsub):
            node.fanout.unsubscribe(c, msg.scope)
        elif isinstance(msg, p.Join):
            await self._rooms().join(c, msg.room)
        elif isinstance(msg, p.Leave):
            await self._rooms().leave(c, msg.room)

    async def set_status(self, user: str, msg: p.SetStatus) -> None:
        """A ``status`` frame: chosen status, text, expiry and last-seen privacy."""
        hide = None if msg.last_seen is None else msg.last_seen == "nobody"
        try:
            await self.node.store.set_status(user, status=msg.status, text=msg.text,
                                             until=msg.until, hide_last_seen=hide)  # fmt: skip
        except ValueError as exc:  # an until in the past or too far ahead (on the store clock)
            raise p.ProtocolError(p.ErrorCode.BAD_FIELD, str(exc), msg.ref) from None

    async def subscribe(self, c: Connection, scope: p.Scope, since: int | None) -> None:
        """A ``sub``: the snapshot (or delta since the cursor), then live deltas; for
        counts and windows, their first frame, then their changes."""
        fanout = self.node.fanout
        fanout.unsubscribe(c, scope)  # a second sub of a scope starts it afresh
        if scope.view != "list":
            views = self._views()
            if scope.view == "counts":
                await views.subscribe_counts(c, scope)
            else:
                await views.subscribe_window(c, scope.room, *scope.window)
            if c.lost:  # closed while its first frame was read: nobody to follow it for
                fanout.unsubscribe(c, scope)
            return
        if scope.kind == "room":
            await self._check_size(scope.room)
        unknown: list[str] | None = None
        sub = fanout.subscribe(c, scope)
        try:
            if scope.kind == "users":
                users, full, cursor, unknown = await self.watchlist(scope, since)
            else:
                users, full, cursor = await self.snapshot(scope, since)
        except BaseException:
            fanout.unsubscribe(c, scope)
            raise
        if c.lost:
            fanout.unsubscribe(c, scope)
            return
        frame = p.snapshot(scope, full, users, cursor, unknown=unknown)
        c.outbox.put_control(c.codec.encode(frame))
        fanout.go_live(sub, c.codec, cursor)

    async def move(self, c: Connection, msg: p.Range) -> None:
        """A ``range``: this connection's window of the room moves (a fresh snapshot)."""
        views = self._views()
        if views.window_of(c, msg.room) is None:
            raise p.ProtocolError(
                p.ErrorCode.NOT_SUBSCRIBED,
                f"no window of room {msg.room!r}: subscribe with range: [from, to] first",
                msg.ref,
            )
        await views.subscribe_window(c, msg.room, *msg.window)

    async def _check_size(self, room: str) -> None:
        limit = self.node.settings.room_full_list_max
        size = await self._rooms().member_count(room)
        if size > limit:
            raise p.ProtocolError(
                p.ErrorCode.LIMIT,
                f"room {room!r} has {size} members, more than HUB_ROOM_FULL_LIST_MAX "
                f"({limit}): subscribe with counts: true for its numbers or with "
                f"range: [from, to] for a window of its members",
            )

    async def snapshot_frame(self, c: Connection, scope: p.Scope) -> str | bytes:
        """A fresh full snapshot of ``scope``, encoded for ``c`` (a resync after overflow);
        for counts and windows, what ``c``'s next frames continue from."""
        if scope.view != "list":
            frame = await self._views().snapshot_frame(c, scope)
            if frame is None:
                frame = p.error(p.ErrorCode.NOT_SUBSCRIBED, f"not subscribed to {scope.wire()}")
            return c.codec.encode(frame)
        if scope.kind == "users":
            users, full, cursor, unknown = await self.watchlist(scope, None)
            return c.codec.encode(p.snapshot(scope, full, users, cursor, unknown=unknown))
        users, full, cursor = await self.snapshot(scope, None)
        return c.codec.encode(p.snapshot(scope, full, users, cursor))

    async def snapshot(self, scope: p.Scope, since: int | None) -> tuple[list[Entry], bool, int]:
        """The state of ``scope``: users changed since ``since`` inside the window, else every
        user of the scope who is not offline (every known one, for a ``users`` scope)."""
        store = self.node.store
        if scope.kind == "all":
            changes = await store.changes(since)
            return [u.entry() for u in changes.users], changes.full, changes.cursor
        if scope.kind == "room":
            return await self._rooms().snapshot(scope.room, since)
        users, full, cursor, _ = await self.watchlist(scope, since)
        return users, full, cursor

    async def watchlist(
        self, scope: p.Scope, since: int | None
    ) -> tuple[list[Entry], bool, int, list[str]]:
        """A ``users`` scope: its known users (offline ones included: a watchlist shows
        who is offline and since when), full or changed since ``since``, and the ids the
        hub never saw."""
        store = self.node.store
        cursor = await store.now()
        ids = list(dict.fromkeys(scope.users))
        views: list[UserView] = await store.users(ids)
        known = {v.id for v in views}
        unknown = [uid for uid in ids if uid not in known]
        # A delta needs a cursor inside the window and from after the store's data began.
        if in_window(since, cursor, store.window_ms) and since >= await store.epoch():
            return [v.entry() for v in views if v.at >= since], False, cursor, unknown
        return [v.entry() for v in views], True, cursor, unknown

    def _views(self) -> Views:
        views = self.node.fanout.views
        if views is None:
            raise p.ProtocolError(p.ErrorCode.BAD_FIELD, "counts and windows are not enabled")
        return views

    def _rooms(self) -> RoomService:
        rooms = self.node.rooms
        if rooms is None:
            raise p.ProtocolError(p.ErrorCode.BAD_FIELD, "rooms are not enabled on this hub")
        return rooms
