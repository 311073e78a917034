"""What a frame of the hub's own wire does to the node: status, activity, subscriptions, rooms.

The session (:mod:`hub.session.core`) decides whether a client frame is acceptable; this
module carries out the ones that were, against the store, the fan-out and the rooms, for
any transport. A frame that cannot take effect raises :class:`~hub.wire.hub.ProtocolError`
(answered with ``error`` naming the problem) or
:class:`~hub.stores.presence.base.StoreUnavailable` (answered with ``unavailable``).

A subscription registers with the fan-out first (buffering), then reads its snapshot, then
goes live: deltas of changes made while the snapshot was read are held and sent after it,
so a client never sees a delta before the snapshot it belongs to, and never misses one.
"""

from __future__ import annotations

from typing import Protocol

from hub.model.presence import Entry, in_window
from hub.node.fanout import Sink
from hub.node.node import Node, RoomService
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
        """A ``sub``: the snapshot (or delta since the cursor), then live deltas."""
        fanout = self.node.fanout
        fanout.unsubscribe(c, scope)  # a second sub of a scope starts it afresh
        sub = fanout.subscribe(c, scope)
        try:
            users, full, cursor = await self.snapshot(scope, since)
        except BaseException:
            fanout.unsubscribe(c, scope)
            raise
        if c.lost:
            fanout.unsubscribe(c, scope)
            return
        c.outbox.put_control(c.codec.encode(p.snapshot(scope, full, users, cursor)))
        fanout.go_live(sub, c.codec, cursor)

    async def snapshot_frame(self, c: Connection, scope: p.Scope) -> str | bytes:
        """A fresh full snapshot of ``scope``, encoded for ``c`` (a resync after overflow)."""
        users, full, cursor = await self.snapshot(scope, None)
        return c.codec.encode(p.snapshot(scope, full, users, cursor))

    async def snapshot(self, scope: p.Scope, since: int | None) -> tuple[list[Entry], bool, int]:
        """The state of ``scope``: users changed since ``since`` inside the window, else every
        user of the scope who is not offline."""
        store = self.node.store
        if scope.kind == "all":
            changes = await store.changes(since)
            return [u.entry() for u in changes.users], changes.full, changes.cursor
        if scope.kind == "room":
            return await self._rooms().snapshot(scope.room, since)
        cursor = await store.now()
        views: list[UserView] = await store.users(list(dict.fromkeys(scope.users)))
        # A delta needs a cursor inside the window and from after the store's data began.
        if in_window(since, cursor, store.window_ms) and since >= await store.epoch():
            return [v.entry() for v in views if v.at >= since], False, cursor
        return [v.entry() for v in views if v.status != "offline"], True, cursor

    def _rooms(self) -> RoomService:
        rooms = self.node.rooms
        if rooms is None:
            raise p.ProtocolError(p.ErrorCode.BAD_FIELD, "rooms are not enabled on this hub")
        return rooms
