"""The ASGI websocket endpoint ``/ws``, for the app served by another ASGI server.

``presence-hub serve`` serves ``/ws`` with :mod:`hub.transport.engine` (frame once, write once) and
never reaches this module; it keeps the app whole under any ASGI server. The rules are the
same: both drive the pure :class:`hub.session.core.Session`.

A session authenticates with the first frame (``hello``, within ``HUB_HELLO_TIMEOUT_S``),
registers its connection in the store, then reads frames until the socket closes. A
separate writer task drains the session's bounded outbox, so a slow client never blocks
the reader or the fan-out; when the outbox overflowed, the writer answers with fresh
snapshots. The writer lives only while the outbox has something to write: an idle
connection holds no task but its reader (memory per idle connection is what bounds a node).
Every frame that took effect is answered with ``ack`` (when it had a ``ref``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from typing import Any

from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from hub.model.auth import Claims
from hub.model.presence import Entry
from hub.node.fanout import RESYNC, Outbox
from hub.node.node import DRAIN_RETRY_AFTER_S, Node
from hub.session.core import HUB_DIALECTS, Admit, Close, Limits, Run, Send, Session
from hub.stores.presence.base import LiveConnection, StoreUnavailable
from hub.transport.engine import set_status as apply_status
from hub.transport.engine import snapshot as scope_snapshot
from hub.wire import hub as p

log = logging.getLogger("hub.ws")
_counter = itertools.count(1)


class WsSession:
    """One authenticated websocket connection."""

    def __init__(
        self, node: Node, websocket: WebSocket, codec: p.Codec, claims: Claims, session: Session
    ) -> None:
        self.node = node
        self.session = session
        self.websocket = websocket
        self.codec = codec
        self.claims = claims
        self.user = claims.user
        self.conn = f"{node.id}.{next(_counter)}"
        self.state = "online"
        self.outbox = Outbox(node.settings.outbox_frames)
        self.outbox.notify = self._kick
        self._writing: asyncio.Task[None] | None = None
        self.closing = False
        self.dropped = False  # the store already removed this connection (kick, ban)

    @property
    def scopes(self) -> dict[tuple[str, ...], p.Scope]:
        return self.session.scopes or {}

    # -- node.Session --------------------------------------------------------------

    def live(self) -> LiveConnection:
        return LiveConnection(self.conn, self.claims.profile(), self.state)

    async def close(self, code: int, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        if code in (p.CloseCode.DEACTIVATED, p.CloseCode.DISCONNECTED):
            self.dropped = True
        self.outbox.close()
        with contextlib.suppress(Exception):
            if self.websocket.application_state == WebSocketState.CONNECTED:
                await self.websocket.close(code, reason)

    # -- sending -------------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        """Queue an answer to the client's own frame (never dropped by overflow)."""
        self.outbox.put_control(self.codec.encode(frame))

    async def _write(self, data: str | bytes) -> None:
        if isinstance(data, str):
            await self.websocket.send_text(data)
        else:
            await self.websocket.send_bytes(data)

    def _kick(self) -> None:
        """The outbox got an item: start a writer unless one is running."""
        if self._writing is None and not self.closing:
            self._writing = asyncio.get_running_loop().create_task(self.writer())

    async def writer(self) -> None:
        """Drain the outbox, then end; the next item starts a new writer."""
        try:
            while not self.closing:
                item = self.outbox.pop()
                if item is None:
                    return
                if item is RESYNC:
                    await self._resync()
                    continue
                assert isinstance(item, str | bytes)
                await self._write(item)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.closing = True
        finally:
            self._writing = None

    async def _resync(self) -> None:
        for scope in list(self.scopes.values()):
            try:
                users, full, cursor = await self.snapshot(scope, None)
            except StoreUnavailable:
                self.outbox.request_resync()
                await asyncio.sleep(0.5)
                return
            await self._write(self.codec.encode(p.snapshot(scope, full, users, cursor)))

    # -- snapshots -----------------------------------------------------------------

    async def snapshot(self, scope: p.Scope, since: int | None) -> tuple[list[Entry], bool, int]:
        return await scope_snapshot(self.node, scope, since)

    # -- handling frames -----------------------------------------------------------

    async def apply(self, msg: p.Message) -> None:
        """Carry out a frame the session let through (:class:`hub.session.core.Run`)."""
        store = self.node.store
        if isinstance(msg, p.SetStatus):
            await apply_status(store, self.user, msg)
        elif isinstance(msg, p.Activity):
            self.state = msg.state
            await store.activity(self.node.id, self.conn, self.user, msg.state)
        elif isinstance(msg, p.Sub):
            await self.subscribe(msg.scope, msg.since)
        elif isinstance(msg, p.Unsub):
            self.node.fanout.unsubscribe(self, msg.scope)
        elif isinstance(msg, p.Join | p.Leave):
            rooms = self.node.rooms
            if rooms is None:
                raise p.ProtocolError(p.ErrorCode.BAD_FIELD, "rooms are not enabled on this hub")
            await (rooms.join if isinstance(msg, p.Join) else rooms.leave)(self, msg.room)

    async def subscribe(self, scope: p.Scope, since: int | None) -> None:
        fanout = self.node.fanout
        fanout.unsubscribe(self, scope)  # a second sub of a scope starts it afresh
        sub = fanout.subscribe(self, scope)
        try:
            users, full, cursor = await self.snapshot(scope, since)
        except BaseException:
            fanout.unsubscribe(self, scope)
            raise
        self.outbox.put_control(self.codec.encode(p.snapshot(scope, full, users, cursor)))
        fanout.go_live(sub, self.codec, cursor)

    async def reader(self) -> None:
        ws = self.websocket
        session = self.session
        loop = asyncio.get_running_loop()
        while not self.closing:
            data = await _receive(ws)
            for action in session.receive(data, loop.time()):
                if isinstance(action, Send):
                    self.outbox.put_control(action.data)
                elif isinstance(action, Close):
                    await self.close(action.code, action.reason)
                    return
                elif isinstance(action, Run):
                    await self.run(action.message)

    async def run(self, msg: p.Message) -> None:
        session = self.session
        try:
            await self.apply(msg)
        except p.ProtocolError as exc:
            answers = session.failed(msg, exc.code, exc.message)
        except StoreUnavailable:
            answers = session.failed(msg, p.ErrorCode.UNAVAILABLE, "presence store unreachable")
        else:
            answers = session.done(msg)
        for action in answers:
            if isinstance(action, Send):
                self.outbox.put_control(action.data)


async def _receive(ws: WebSocket) -> str | bytes:
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is not None:
        return str(text)
    return bytes(message.get("bytes") or b"")


async def _hello(ws: WebSocket, node: Node, session: Session) -> Claims | None:
    """Wait for ``hello`` and verify its token; close with 4001 (or 4003) otherwise."""
    loop = asyncio.get_running_loop()
    try:
        data = await asyncio.wait_for(_receive(ws), max(0.0, session.deadline - loop.time()))
        actions = session.receive(data, loop.time())
    except TimeoutError:
        actions = session.expired(session.deadline)
    first = actions[0] if actions else None
    if isinstance(first, Close):
        _refused(ws, first.code, first.reason)
        await ws.close(first.code, first.reason)
        return None
    assert isinstance(first, Admit)
    claims = first.claims
    gate = node.gate
    if gate is not None:
        refusal = await gate(claims)
        if refusal is not None:
            _refused(ws, refusal[0], refusal[1], user=claims.user)
            session.refused(refusal[0], refusal[1])
            await ws.close(refusal[0], refusal[1])
            return None
    return claims


def _peer(ws: WebSocket) -> str:
    return ws.client.host if ws.client is not None else ""


def _refused(ws: WebSocket, code: int, reason: str, user: str = "") -> None:
    # The reason names what was wrong with the token, never the token itself.
    log.info(
        "session refused",
        extra={"event": "ws.refused", "code": int(code), "reason": reason, "user": user,
               "peer": _peer(ws)},
    )  # fmt: skip


def _expire_later(session: WsSession) -> asyncio.TimerHandle | None:
    """An expiring token closes its socket with 4001 when it expires."""
    exp = session.claims.exp
    if exp is None:
        return None
    loop = asyncio.get_running_loop()
    delay = max(0.0, exp - time.time())
    return loop.call_later(
        delay,
        lambda: loop.create_task(session.close(p.CloseCode.NOT_AUTHENTICATED, "token expired")),
    )


async def refuse_draining(ws: WebSocket) -> None:
    """HTTP 503 with ``Retry-After`` instead of the upgrade (the ASGI websocket denial
    response); a server without that extension can only close, as 1012 does."""
    if "websocket.http.response" not in ws.scope.get("extensions", {}):
        await ws.close(p.CloseCode.RESTARTING, "node restarting")
        return
    await ws.send_denial_response(
        PlainTextResponse(
            "node restarting\n", 503, headers={"Retry-After": str(DRAIN_RETRY_AFTER_S)}
        )
    )


async def websocket_endpoint(ws: WebSocket) -> None:
    node: Node = ws.app.state.node
    offered = list(ws.scope.get("subprotocols") or [])
    codec = p.codec_for(offered)
    if node.draining:
        # Refused before the upgrade, so a proxy can send the client to a live hub.
        await refuse_draining(ws)
        return
    await ws.accept(subprotocol=codec.name if codec.name in offered else None)
    s = node.settings
    limits = Limits(s.secret, s.max_frame_bytes, s.rate_per_s, s.hello_timeout_s, s.window_s)
    rules = Session(HUB_DIALECTS[codec.name], limits, asyncio.get_running_loop().time())
    try:
        claims = await _hello(ws, node, rules)
    except WebSocketDisconnect:
        return
    if claims is None:
        return
    session = WsSession(node, ws, codec, claims, rules)
    node.connecting.add(session.conn)
    try:
        user = await node.store.connect(node.id, session.conn, claims.profile(), "online")
        # From here on the store holds the connection: the session must be registered so
        # that closing it (or the node's reconciliation) removes it again.
        node.add(session)
        node.remember(user.entry())
        cursor = await node.store.now()
    except StoreUnavailable:
        node.connecting.discard(session.conn)
        if session.conn in node.sessions:
            node.remove(session)
            await node.connection_closed(session)
        log.warning(
            "session refused: store unreachable",
            extra={"event": "ws.refused", "code": 1013, "user": claims.user, "peer": _peer(ws)},
        )
        with contextlib.suppress(Exception):
            await ws.send_text(json.dumps(p.error(p.ErrorCode.UNAVAILABLE, "store down")))
            await ws.close(1013, "presence store unreachable, retry later")
        return
    node.connecting.discard(session.conn)
    started = time.monotonic()
    client_code: int | None = None
    log.info(
        "session open",
        extra={"event": "ws.connect", "conn": session.conn, "user": session.user,
               "codec": codec.name, "peer": _peer(ws)},
    )  # fmt: skip
    expiry = _expire_later(session)
    for action in rules.admitted(session.conn, user.entry(), cursor):
        if isinstance(action, Send):
            session.outbox.put_control(action.data)
    try:
        await session.reader()
    except WebSocketDisconnect as exc:
        client_code = exc.code
    except (RuntimeError, OSError):
        pass
    finally:
        log.info(
            "session closed",
            extra={"event": "ws.disconnect", "conn": session.conn, "user": session.user,
                   "code": client_code, "dropped": session.dropped,
                   "duration_s": round(time.monotonic() - started, 3),
                   "subscriptions": len(session.scopes),
                   "overflows": session.outbox.overflows},
        )  # fmt: skip
        session.closing = True
        session.outbox.close()
        if expiry is not None:
            expiry.cancel()
        writer = session._writing
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        node.remove(session)
        node.fanout.drop(session, session.scopes.values())
        await node.connection_closed(session, grace=client_code != p.SIGNED_OUT_CLOSE)
