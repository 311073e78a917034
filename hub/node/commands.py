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
from hub.session.driver import Driver, Refused, refused
from hub.session.rules_hub import HubRules
from hub.stores.presence.base import StoreUnavailable, UserView
from hub.wire import hub as p

log = logging.getLogger("hub.ws")

#: A snapshot: (entries, full, cursor).
Snapshot = tuple[list[Entry], bool, int]
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
        self.snapshots: SharedReads[tuple[str, ...], Snapshot] = SharedReads(
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
        """A ``sub``: the snapshot (or delta since the cursor), then live deltas."""
        fanout = self.node.fanout
        fanout.unsubscribe(driver, scope)  # a second sub of a scope starts it afresh
        sub = fanout.subscribe(driver, scope)
        try:
            if since is None:
                frame, cursor = await self._shared(driver.codec, scope)
            else:
                users, full, cursor = await self.snapshot(scope, since)
                frame = driver.codec.encode(p.snapshot(scope, full, users, cursor))
        except BaseException:
            fanout.unsubscribe(driver, scope)
            raise
        if driver.lost:
            fanout.unsubscribe(driver, scope)
            return
        driver.send(frame)
        fanout.go_live(sub, driver.codec, cursor)

    async def snapshot_frame(self, driver: Driver, scope: p.Scope) -> str | bytes:
        """A fresh full snapshot of ``scope``, encoded for ``driver`` (a resync)."""
        frame, _ = await self._shared(driver.codec, scope)
        return frame

    async def _shared(self, codec: p.Codec, scope: p.Scope) -> tuple[str | bytes, int]:
        """The full snapshot of ``scope``, read and encoded once for everyone asking now."""
        shared = await self.snapshots.get(scope.key(), lambda: self.snapshot(scope, None))
        users, full, cursor = shared.value
        frame = shared.encode(
            codec.name, lambda v: codec.encode(p.snapshot(scope, full, users, cursor))
        )
        return frame, cursor

    async def snapshot(self, scope: p.Scope, since: int | None) -> Snapshot:
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
