"""The hub's own wire on the node: admission, status, activity, subscriptions, rooms.

The session (:mod:`hub.session.core`, :mod:`hub.session.rules_hub`) decides whether a
client frame is acceptable; :class:`HubCommands` carries out the ones that were, against
the store, the fan-out and the rooms, for any transport (it is the ``/ws`` wire's
:class:`~hub.session.driver.Handler`). A frame that cannot take effect raises
:class:`~hub.wire.hub.ProtocolError` (answered with ``error`` naming the problem) or
:class:`~hub.stores.presence.base.StoreUnavailable` (answered with ``unavailable``).

A subscription registers with the fan-out first (buffering), then reads its snapshot, then
goes live: deltas of changes made while the snapshot was read are held and sent after it,
so a client never sees a delta before the snapshot it belongs to, and never misses one.
Full snapshots are shared (:mod:`hub.node.shared`): subscribers asking for the same scope
at the same time get one read and one encoding per codec, each written to every socket.
Counts and member windows go to the fan-out's :class:`~hub.node.views.Views`; a plain room
subscription of a room above ``HUB_ROOM_FULL_LIST_MAX`` members is refused with ``limit``.
A ``users`` snapshot lists every known user of the scope (offline ones too, with their
last seen when shown) and, in ``unknown``, the ids the hub never saw.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from hub.model.auth import Claims
from hub.model.presence import Entry, in_window
from hub.node.connection import Busy, UserConnection
from hub.node.node import Node, RoomService
from hub.node.shared import SharedReads
from hub.node.views import Views
from hub.session.driver import Driver, Refused, refused
from hub.session.rules_hub import HubRules
from hub.stores.presence.base import StoreUnavailable, UserView
from hub.wire import hub as p

log = logging.getLogger("hub.ws")

#: A snapshot: (entries, full, cursor).
Snapshot = tuple[list[Entry], bool, int]
#: A snapshot and, for a ``users`` scope, the ids the hub never saw.
Read = tuple[list[Entry], bool, int, list[str] | None]
#: Back off this long before a resync whose snapshot read failed tries again.
RESYNC_RETRY_S = 0.5


def _connection(driver: Driver) -> UserConnection:
    c = driver.state
    assert isinstance(c, UserConnection)
    return c


def _rules(driver: Driver) -> HubRules:
    rules = driver.session.rules
    assert isinstance(rules, HubRules)
    return rules


class HubCommands:
    """The hub wire's frames, carried out on one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.snapshots: SharedReads[tuple[str, ...], Read] = SharedReads(
            lambda: node.fanout.version
        )

    # -- the connection ----------------------------------------------------------------

    async def admit(self, driver: Driver, claims: Claims | None) -> tuple[str, Entry, int]:
        assert claims is not None
        node = self.node
        peer = driver.transport.peer
        if node.draining:
            raise Refused(p.CloseCode.RESTARTING, "node restarting")
        if node.gate is not None:
            refusal = await node.gate(claims)
            if refusal is not None:
                refused(refusal[0], refusal[1], claims.user, peer)
                raise Refused(*refusal)
        c = UserConnection(node.new_conn(), claims.profile(), driver)
        driver.state = c
        try:
            view = await node.attach(c)
            # From here on the store holds the connection: closing the socket removes it.
            driver.admitted = True
            cursor = await node.store.now()
        except Busy:
            refused(p.CloseCode.TRY_AGAIN, "hub busy", claims.user, peer)
            raise Refused(p.CloseCode.TRY_AGAIN, "hub busy, retry later") from None
        except StoreUnavailable:
            refused(p.CloseCode.TRY_AGAIN, "store unreachable", claims.user, peer)
            driver.send(_rules(driver).error(p.ErrorCode.UNAVAILABLE, "store down"))
            raise Refused(
                p.CloseCode.TRY_AGAIN, "presence store unreachable, retry later"
            ) from None
        c.started = time.monotonic()
        log.info(
            "session open",
            extra={"event": "ws.connect", "conn": c.conn, "user": c.user,
                   "codec": driver.codec.name, "peer": peer},
        )  # fmt: skip
        return c.conn, view.entry(), cursor

    async def detach(self, driver: Driver) -> None:
        c = _connection(driver)
        held = _rules(driver).scopes
        scopes = list(held.values()) if held else []
        log.info(
            "session closed",
            extra={"event": "ws.disconnect", "conn": c.conn, "user": c.user,
                   "code": driver.close_code, "dropped": c.dropped,
                   "duration_s": round(time.monotonic() - c.started, 3),
                   "subscriptions": len(scopes), "overflows": driver.outbox.overflows},
        )  # fmt: skip
        node = self.node
        node.fanout.drop(driver, scopes)
        # A client that closes with the sign-out code goes offline at once, without grace.
        await node.detach(c, grace=driver.close_code != p.SIGNED_OUT_CLOSE)

    async def resync(self, driver: Driver) -> None:
        """The outbox overflowed (or the feed lost events): fresh snapshots, written before
        anything that queued meanwhile."""
        scopes = _rules(driver).scopes
        for scope in list(scopes.values()) if scopes else []:
            if driver.lost:
                return
            try:
                frame = await self.snapshot_frame(driver, scope)
            except StoreUnavailable:
                await asyncio.sleep(RESYNC_RETRY_S)
                driver.outbox.request_resync()
                return
            driver.transport.write(frame)

    # -- frames ------------------------------------------------------------------------

    async def run(self, driver: Driver, msg: Any) -> None:
        """Carry out one frame the session let through (a ``Run``)."""
        node = self.node
        c = _connection(driver)
        if isinstance(msg, p.SetStatus):
            await self.set_status(c.user, msg)
        elif isinstance(msg, p.Activity):
            c.state = msg.state
            if driver.admitted:  # never about a connection the store already let go
                await node.store.activity(node.id, c.conn, c.user, msg.state)
        elif isinstance(msg, p.Sub):
            await self.subscribe(driver, msg.scope, msg.since)
        elif isinstance(msg, p.Range):
            await self.move(driver, msg)
        elif isinstance(msg, p.Unsub):
            node.fanout.unsubscribe(driver, msg.scope)
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

    async def subscribe(self, driver: Driver, scope: p.Scope, since: int | None) -> None:
        """A ``sub``: the snapshot (or delta since the cursor), then live deltas; for
        counts and windows, their first frame, then their changes."""
        fanout = self.node.fanout
        fanout.unsubscribe(driver, scope)  # a second sub of a scope starts it afresh
        if scope.view != "list":
            views = self._views()
            if scope.view == "counts":
                await views.subscribe_counts(driver, scope)
            else:
                await views.subscribe_window(driver, scope.room, *scope.window)
            if driver.lost:  # closed while its first frame was read: nobody to follow
                fanout.unsubscribe(driver, scope)
            return
        if scope.kind == "room":
            await self._check_size(scope.room)
        sub = fanout.subscribe(driver, scope)
        try:
            if since is None:
                frame, cursor = await self._shared(driver.codec, scope)
            else:
                users, full, cursor, unknown = await self._read(scope, since)
                frame = driver.codec.encode(p.snapshot(scope, full, users, cursor, unknown=unknown))
        except BaseException:
            fanout.unsubscribe(driver, scope)
            raise
        if driver.lost:
            fanout.unsubscribe(driver, scope)
            return
        driver.send(frame)
        fanout.go_live(sub, driver.codec, cursor)

    async def move(self, driver: Driver, msg: p.Range) -> None:
        """A ``range``: this connection's window of the room moves (a fresh snapshot)."""
        views = self._views()
        if views.window_of(driver, msg.room) is None:
            raise p.ProtocolError(
                p.ErrorCode.NOT_SUBSCRIBED,
                f"no window of room {msg.room!r}: subscribe with range: [from, to] first",
                msg.ref,
            )
        await views.subscribe_window(driver, msg.room, *msg.window)

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

    async def snapshot_frame(self, driver: Driver, scope: p.Scope) -> str | bytes:
        """A fresh full snapshot of ``scope``, encoded for ``driver`` (a resync after
        overflow); for counts and windows, what the next frames continue from."""
        if scope.view != "list":
            frame = await self._views().snapshot_frame(driver, scope)
            if frame is None:
                frame = p.error(p.ErrorCode.NOT_SUBSCRIBED, f"not subscribed to {scope.wire()}")
            return driver.codec.encode(frame)
        data, _ = await self._shared(driver.codec, scope)
        return data

    async def _read(
        self, scope: p.Scope, since: int | None
    ) -> tuple[list[Entry], bool, int, list[str] | None]:
        """A snapshot of ``scope``, with the unknown ids of a ``users`` scope."""
        if scope.kind == "users":
            return await self.watchlist(scope, since)
        users, full, cursor = await self.snapshot(scope, since)
        return users, full, cursor, None

    async def _shared(self, codec: p.Codec, scope: p.Scope) -> tuple[str | bytes, int]:
        """The full snapshot of ``scope``, read and encoded once for everyone asking now."""
        shared = await self.snapshots.get(scope.key(), lambda: self._read(scope, None))
        users, full, cursor, unknown = shared.value
        frame = shared.encode(
            codec.name,
            lambda v: codec.encode(p.snapshot(scope, full, users, cursor, unknown=unknown)),
        )
        return frame, cursor

    async def snapshot(self, scope: p.Scope, since: int | None) -> Snapshot:
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
