"""The websocket transport of ``/ws``: bytes <-> :class:`hub.session.core.Session`, inside uvicorn.

uvicorn hands an upgraded connection to the protocol class given as ``Config(ws=...)``;
:func:`protocol_class` makes that class. Each :class:`Connection` is an asyncio
``Protocol`` holding python-websockets' sans-I/O ``ServerProtocol`` (handshake, frame
parsing, control frames, closing handshake) and the pure session (the hub's rules). It
only moves bytes; no ASGI, no Starlette, no coroutine parked per connection:

- **frame once, write once.** Fan-out hands the same encoded payload to every subscriber;
  :func:`framed` turns it into a complete unmasked websocket frame once (a server frame's
  header is the same for every receiver) and each subscriber costs one ``transport.write``
  of those bytes, from the fan-out flush itself: no task, no await, no copy per receiver.
- **backpressure, exact.** A subscriber whose transport is paused (``pause_writing``)
  queues into its bounded :class:`hub.session.outbox.Outbox`; when that is full its deltas are
  dropped for a resync, answered with fresh snapshots once the transport drains. Nothing is
  ever buffered without bound.
- **tasks only while there is work.** Frames that need the store (hello, status, sub...) run
  in a task that lives while such frames are pending, in order; an idle connection holds no
  task, no timer (keepalive pings are one node-wide timer) and no per-connection dict.

Every other websocket path (the Pusher endpoint ``/app/{key}``) is handed, request bytes and
all, to uvicorn's own ASGI websocket protocol, and so to the Starlette app.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
import time
from typing import Any, ClassVar

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol as WsProtocol
from websockets.protocol import State as WsState
from websockets.server import ServerProtocol

from hub.model.auth import Claims
from hub.model.presence import Entry, in_window
from hub.node.node import DRAIN_RETRY_AFTER_S, Node
from hub.session.core import (
    HUB_DIALECTS,
    Action,
    Admit,
    Close,
    HubDialect,
    Limits,
    Run,
    Send,
    Session,
)
from hub.session.outbox import RESYNC, Outbox
from hub.stores.presence.base import LiveConnection, PresenceStore, StoreUnavailable, UserView
from hub.wire import hub as p

log = logging.getLogger("hub.ws")
uvicorn_log = logging.getLogger("uvicorn.error")
#: python-websockets' own protocol log (it says "connection open" at INFO for every socket;
#: the hub's ws.connect line says more): warnings only, unless set otherwise.
wire_log = logging.getLogger("hub.ws.wire")
_counter = itertools.count(1)

#: How long a closing handshake may take before the TCP connection is cut.
CLOSE_TIMEOUT_S = 5.0
#: Pending store frames of one connection beyond which its socket is not read.
MAX_PENDING = 32
#: How many framed payloads :func:`framed` remembers (one flush reuses a handful).
FRAMED_CACHE = 16

_framed: dict[int, tuple[str | bytes, bytes]] = {}


def frame_bytes(data: str | bytes) -> bytes:
    """A complete unmasked server frame: text for ``str``, binary for ``bytes``."""
    if isinstance(data, str):
        payload, b0 = data.encode("utf-8"), 0x81
    else:
        payload, b0 = data, 0x82
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 126, n)
    else:
        head = struct.pack("!BBQ", b0, 127, n)
    return head + payload


def framed(data: str | bytes) -> bytes:
    """:func:`frame_bytes`, once per payload object: the fan-out gives every subscriber
    the same object, so all but the first get the cached frame."""
    hit = _framed.get(id(data))
    if hit is not None and hit[0] is data:
        return hit[1]
    out = frame_bytes(data)
    if len(_framed) >= FRAMED_CACHE:
        del _framed[next(iter(_framed))]
    _framed[id(data)] = (data, out)  # holding ``data`` keeps its id from being reused
    return out


class WireOutbox(Outbox):
    """An outbox that writes straight to the transport while it keeps up."""

    __slots__ = ("connection",)

    def __init__(self, connection: Connection, max_frames: int) -> None:
        super().__init__(max_frames)
        self.connection = connection

    def put(self, frame: str | bytes) -> bool:
        c = self.connection
        if not self._items and not c.paused and not c.resyncing and not self.closed:
            return c.write(frame)
        return super().put(frame)

    def put_control(self, frame: str | bytes) -> None:
        c = self.connection
        if not self._items and not c.paused and not c.resyncing and not self.closed:
            c.write(frame)
            return
        super().put_control(frame)

    def _wake(self) -> None:
        # Queued while the socket was not paused (a resync request, say): write now.
        self.connection._drain_outbox()


class Engine:
    """What every connection of one node shares: the node, the limits, the keepalive."""

    def __init__(self, node: Node, ping_interval_s: float = 20.0) -> None:
        self.node = node
        s = node.settings
        self.limits = Limits(
            secret=s.secret,
            max_frame_bytes=s.max_frame_bytes,
            rate_per_s=s.rate_per_s,
            hello_timeout_s=s.hello_timeout_s,
            window_s=s.window_s,
        )
        self.ping_interval_s = ping_interval_s
        if wire_log.level == logging.NOTSET:
            wire_log.setLevel(logging.WARNING)
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self._pinger: asyncio.TimerHandle | None = None
        self.bad_frames = 0

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def started(self, connection: Connection) -> None:
        self.connections.add(connection)
        if self._pinger is None and self.ping_interval_s > 0:
            loop = asyncio.get_running_loop()
            self._pinger = loop.call_later(self.ping_interval_s, self._ping_all)

    def _ping_all(self) -> None:
        """One timer for every connection: a peer that did not answer the last round's
        ping (nor sent anything) is gone; the others get a new ping."""
        self._pinger = None
        for c in list(self.connections):
            c.keepalive()
        if self.connections:
            loop = asyncio.get_running_loop()
            self._pinger = loop.call_later(self.ping_interval_s, self._ping_all)


def protocol_class(engine: Engine) -> type[Connection]:
    """The class to give uvicorn as ``Config(ws=...)``, bound to ``engine``."""

    class HubConnection(Connection):
        __slots__ = ()
        _engine: ClassVar[Engine] = engine

    return HubConnection


class Connection(asyncio.Protocol):
    """One websocket connection (``node.Session`` and fan-out's ``Sink``)."""

    __slots__ = (
        "_app_state",
        "_closer",
        "_config",
        "_expiry",
        "_fallback",
        "_head",
        "_hello_timer",
        "_pending",
        "_server_state",
        "_started",
        "alive",
        "claims",
        "closing",
        "codec",
        "conn",
        "dialect",
        "dropped",
        "lost",
        "outbox",
        "paused",
        "peer",
        "read_paused",
        "registered",
        "resyncing",
        "session",
        "state",
        "stopped",
        "transport",
        "user",
        "ws",
    )
    _engine: ClassVar[Engine]

    def __init__(self, config: Any = None, server_state: Any = None, app_state: Any = None,
                 _loop: Any = None) -> None:  # fmt: skip
        engine = self._engine
        self._server_state = server_state
        self._config = config
        self._app_state = app_state
        #: The request's bytes until the handshake, for a hand-off to uvicorn's ASGI protocol.
        self._head: bytes | None = b""
        #: That ASGI protocol, for websocket paths other than /ws (the Pusher endpoint...).
        self._fallback: asyncio.Protocol | None = None
        self.ws = ServerProtocol(
            select_subprotocol=_select_subprotocol,
            max_size=engine.limits.max_frame_bytes,
            logger=wire_log,
        )
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.dialect: HubDialect = HUB_DIALECTS[p.JSON]
        self.codec: p.Codec = p.JSON_CODEC
        self.outbox: Outbox = WireOutbox(self, engine.node.settings.outbox_frames)
        self.claims: Claims | None = None
        self.conn = ""
        self.user = ""
        self.state = "online"
        self.peer = ""
        self.paused = False
        self.read_paused = False
        self.closing = False
        # The hub closed it (refusal, limits, drain, kick): pending frames are dropped. A
        # close from the client, or a lost socket, still lets frames it sent take effect.
        self.stopped = False
        self.lost = False
        self.dropped = False  # the store already removed this connection (kick, ban)
        self.registered = False
        self.resyncing = False  # snapshots after an overflow are being made: deltas wait
        self.alive = True
        self._pending: list[Action] | None = None
        self._closer: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._hello_timer: asyncio.TimerHandle | None = None
        self._started = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        if self._server_state is not None:
            self._server_state.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else ""

    def data_received(self, data: bytes) -> None:
        if self._fallback is not None:
            self._fallback.data_received(data)
            return
        self.alive = True
        ws = self.ws
        if self._head is not None:
            self._head += data
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Frame):
                op = event.opcode
                if op is Opcode.TEXT or op is Opcode.BINARY:
                    self._frame(event)
                elif op is Opcode.CLOSE:
                    self.closing = True
                # PING is answered and PONG needs nothing: both done by ServerProtocol.
            elif isinstance(event, Request):
                self._handshake(event)
                if self._fallback is not None:
                    return
        self._flush_ws()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._fallback is not None:
            self._fallback.connection_lost(exc)
            return
        self.lost = True
        self.closing = True
        self.outbox.close()
        engine = self._engine
        engine.connections.discard(self)
        if self._server_state is not None:
            self._server_state.connections.discard(self)
        for timer in (self._closer, self._expiry, self._hello_timer):
            if timer is not None:
                timer.cancel()
        if self.session is not None:
            self.session.closed()
        if self.registered:
            engine.spawn(self._closed())

    def pause_writing(self) -> None:
        if self._fallback is not None:
            self._fallback.pause_writing()
            return
        self.paused = True

    def resume_writing(self) -> None:
        if self._fallback is not None:
            self._fallback.resume_writing()
            return
        self.paused = False
        self._drain_outbox()

    def eof_received(self) -> bool | None:
        if self._fallback is not None:
            return self._fallback.eof_received()
        self.ws.receive_eof()
        self._flush_ws()
        return None

    def shutdown(self) -> None:
        """uvicorn's shutdown (after the node's drain): close what is still open."""
        if not self.closing and self.ws.state is WsState.OPEN:
            self._close(p.CloseCode.RESTARTING, "node restarting")
        if self.transport is not None:
            self.transport.close()

    # -- handshake ---------------------------------------------------------------------

    def _handshake(self, request: Request) -> None:
        ws = self.ws
        path = request.path.partition("?")[0]
        head, self._head = self._head, None
        if path != "/ws":
            self._hand_off(head or b"")
            return
        if self._engine.node.draining:
            # Before the upgrade, so a proxy (nginx's proxy_next_upstream http_503) can still
            # send this client to a live hub; after it, only a 1012 close would be left.
            response = ws.reject(503, "node restarting\n")
            response.headers["Retry-After"] = str(DRAIN_RETRY_AFTER_S)
        else:
            response = ws.accept(request)
        ws.send_response(response)
        accepted = response.status_code == 101
        outcome = "[accepted]" if accepted else str(response.status_code)
        uvicorn_log.info('%s - "WebSocket %s" %s', self.peer, request.path, outcome)
        if not accepted:
            return
        if not ws.reader.buffer:
            # ServerProtocol's parser is a generator whose frame keeps the handshake request
            # (its headers: ~1.7 KB) alive for the connection's life; the frame parser it
            # goes on to needs none of it. Nothing is buffered, so restarting it loses nothing.
            ws.parser = WsProtocol.parse(ws)
            next(ws.parser)
        name = response.headers.get("Sec-WebSocket-Protocol") or p.JSON
        self.dialect = HUB_DIALECTS.get(name, HUB_DIALECTS[p.JSON])
        self.codec = self.dialect.codec
        engine = self._engine
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.session = Session(self.dialect, engine.limits, now)
        engine.started(self)
        if engine.node.draining:
            self._close(p.CloseCode.RESTARTING, "node restarting")
            return
        self._hello_timer = loop.call_at(self.session.deadline, self._hello_expired)

    def _hand_off(self, head: bytes) -> None:
        """Any other websocket path (the Pusher endpoint ``/app/{key}``...) is the Starlette
        app's: hand the connection, its request bytes included, to uvicorn's ASGI websocket
        protocol, and forward the transport's callbacks to it from now on."""
        transport = self.transport
        assert transport is not None
        if self._server_state is not None:
            self._server_state.connections.discard(self)
        fallback = WebSocketsSansIOProtocol(
            config=self._config, server_state=self._server_state, app_state=self._app_state
        )
        self._fallback = fallback
        fallback.connection_made(transport)
        fallback.data_received(head)

    def _hello_expired(self) -> None:
        self._hello_timer = None
        if self.session is not None:
            actions = self.session.expired(asyncio.get_running_loop().time())
            if actions:
                self._refused_log(p.CloseCode.NOT_AUTHENTICATED, "no hello within the time limit")
            self._act(actions)

    # -- frames in ---------------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        session = self.session
        if session is None or self.closing:
            return
        if frame.opcode is Opcode.TEXT:
            try:
                data: str | bytes = bytes(frame.data).decode("utf-8")
            except UnicodeDecodeError:
                self._close(1007, "text frame is not valid UTF-8")
                return
        else:
            data = bytes(frame.data)
        if not frame.fin:
            # Presence frames are small; a fragmented message is refused, not reassembled.
            self._close(1003, "fragmented messages are not supported")
            return
        before = session.state
        actions = session.receive(data, asyncio.get_running_loop().time())
        if before.name == "HELLO" and actions and isinstance(actions[0], Close):
            self._refused_log(actions[0].code, actions[0].reason)
        self._act(actions)

    def _act(self, actions: list[Action]) -> None:
        for action in actions:
            if self._pending is not None:
                # Store work in flight: answers keep the order of the frames they answer.
                self._pending.append(action)
                if len(self._pending) >= MAX_PENDING and not self.read_paused:
                    self.read_paused = True
                    if self.transport is not None:
                        self.transport.pause_reading()
            elif isinstance(action, Send):
                self.outbox.put_control(action.data)
            elif isinstance(action, Close):
                self._close(action.code, action.reason)
            else:
                self._pending = [action]
                self._engine.spawn(self._work())

    async def _work(self) -> None:
        """Carry out pending store frames in order; ends when none is left."""
        pending = self._pending
        try:
            while pending and not self.stopped:
                action = pending.pop(0)
                try:
                    if isinstance(action, Send):
                        self.outbox.put_control(action.data)
                    elif isinstance(action, Close):
                        self._close(action.code, action.reason)
                    elif isinstance(action, Admit):
                        await self._admit(action.claims)
                    elif isinstance(action, Run):
                        await self._run(action.message)
                except StoreUnavailable:  # the registry's check at hello, say
                    self._close(1013, "presence store unreachable, retry later")
                except Exception:
                    # A bug must cost this connection only, and never leave it hanging.
                    log.exception("websocket frame failed", extra={"conn": self.conn})
                    self._close(1011, "internal error")
                if self.read_paused and len(pending) < MAX_PENDING // 2 and not self.lost:
                    self.read_paused = False
                    if self.transport is not None:
                        self.transport.resume_reading()
        finally:
            self._pending = None

    # -- store work --------------------------------------------------------------------

    async def _admit(self, claims: Claims) -> None:
        node = self._engine.node
        session = self.session
        assert session is not None
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None
        if node.draining:
            self._do(session.refused(p.CloseCode.RESTARTING, "node restarting"))
            return
        gate = node.gate
        if gate is not None:
            refusal = await gate(claims)
            if self.lost:
                return
            if refusal is not None:
                self._refused_log(refusal[0], refusal[1], claims.user)
                self._do(session.refused(refusal[0], refusal[1]))
                return
        self.claims = claims
        self.user = claims.user
        self.conn = f"{node.id}.{next(_counter)}"
        node.connecting.add(self.conn)
        try:
            user = await node.store.connect(node.id, self.conn, claims.profile(), "online")
            # From here on the store holds the connection: it must be registered so that
            # closing it (or the node's reconciliation) removes it again.
            node.add(self)
            self.registered = True
            node.remember(user.entry())
            cursor = await node.store.now()
        except StoreUnavailable:
            node.connecting.discard(self.conn)
            log.warning(
                "session refused: store unreachable",
                extra={"event": "ws.refused", "code": 1013, "user": claims.user,
                       "peer": self.peer},
            )  # fmt: skip
            self.outbox.put_control(self.dialect.error(p.ErrorCode.UNAVAILABLE, "store down", None))
            self._do(session.refused(1013, "presence store unreachable, retry later"))
            if self.registered and self.lost:
                await self._closed()
            return
        node.connecting.discard(self.conn)
        if self.lost:
            await self._closed()
            return
        self._started = time.monotonic()
        log.info(
            "session open",
            extra={"event": "ws.connect", "conn": self.conn, "user": self.user,
                   "codec": self.codec.name, "peer": self.peer},
        )  # fmt: skip
        if claims.exp is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, claims.exp - time.time())
            self._expiry = loop.call_later(delay, self._expired)
        self._do(session.admitted(self.conn, user.entry(), cursor))

    def _expired(self) -> None:
        self._expiry = None
        self._close(p.CloseCode.NOT_AUTHENTICATED, "token expired")

    async def _run(self, msg: p.Message) -> None:
        session = self.session
        assert session is not None
        try:
            await self._apply(msg)
        except p.ProtocolError as exc:
            self._do(session.failed(msg, exc.code, exc.message))
        except StoreUnavailable:
            self._do(session.failed(msg, p.ErrorCode.UNAVAILABLE, "presence store unreachable"))
        else:
            self._do(session.done(msg))

    async def _apply(self, msg: p.Message) -> None:
        node = self._engine.node
        store = node.store
        if isinstance(msg, p.SetStatus):
            await set_status(store, self.user, msg)
        elif isinstance(msg, p.Activity):
            self.state = msg.state
            if self.registered:  # never about a connection the store already let go
                await store.activity(node.id, self.conn, self.user, msg.state)
        elif isinstance(msg, p.Sub):
            await self._subscribe(msg.scope, msg.since)
        elif isinstance(msg, p.Unsub):
            node.fanout.unsubscribe(self, msg.scope)
        elif isinstance(msg, p.Join):
            await _rooms(node).join(self, msg.room)
        elif isinstance(msg, p.Leave):
            await _rooms(node).leave(self, msg.room)

    async def _subscribe(self, scope: p.Scope, since: int | None) -> None:
        fanout = self._engine.node.fanout
        fanout.unsubscribe(self, scope)  # a second sub of a scope starts it afresh
        sub = fanout.subscribe(self, scope)
        try:
            users, full, cursor = await snapshot(self._engine.node, scope, since)
        except BaseException:
            fanout.unsubscribe(self, scope)
            raise
        if self.lost:
            fanout.unsubscribe(self, scope)
            return
        self.outbox.put_control(self.codec.encode(p.snapshot(scope, full, users, cursor)))
        fanout.go_live(sub, self.codec, cursor)

    async def _resync(self) -> None:
        """The outbox overflowed (or the feed lost events): fresh snapshots, then the rest."""
        session = self.session
        node = self._engine.node
        scopes = list(session.scopes.values()) if session and session.scopes else []
        try:
            for scope in scopes:
                if self.lost:
                    return
                try:
                    users, full, cursor = await snapshot(node, scope, None)
                except StoreUnavailable:
                    await asyncio.sleep(0.5)
                    self.resyncing = False
                    self.outbox.request_resync()
                    return
                self.write(self.codec.encode(p.snapshot(scope, full, users, cursor)))
        finally:
            self.resyncing = False
        self._drain_outbox()

    async def _closed(self) -> None:
        if not self.registered:
            return
        self.registered = False
        node = self._engine.node
        session = self.session
        scopes = list(session.scopes.values()) if session and session.scopes else []
        log.info(
            "session closed",
            extra={"event": "ws.disconnect", "conn": self.conn, "user": self.user,
                   "code": self.ws.close_code, "dropped": self.dropped,
                   "duration_s": round(time.monotonic() - self._started, 3),
                   "subscriptions": len(scopes), "overflows": self.outbox.overflows},
        )  # fmt: skip
        node.remove(self)
        node.fanout.drop(self, scopes)
        # A client that closes with the sign-out code goes offline at once, without grace.
        received = self.ws.close_rcvd
        signed_out = received is not None and received.code == p.SIGNED_OUT_CLOSE
        await node.connection_closed(self, grace=not signed_out)

    # -- bytes out ---------------------------------------------------------------------

    def write(self, data: str | bytes) -> bool:
        """Write one encoded frame now (no checks of the outbox: the caller's job)."""
        t = self.transport
        if t is None or self.closing or self.ws.state is not WsState.OPEN:
            return False
        try:
            t.write(framed(data))
        except (ValueError, TypeError) as exc:  # a frame that cannot be encoded (UTF-8)
            self._engine.bad_frames += 1
            log.warning("dropped a frame that cannot be encoded: %s", type(exc).__name__)
            return False
        return True

    def _drain_outbox(self) -> None:
        box = self.outbox
        while not self.paused and not self.resyncing and not self.closing:
            item = box.pop()
            if item is None:
                return
            if item is RESYNC:
                self.resyncing = True
                self._engine.spawn(self._resync())
                return
            assert isinstance(item, str | bytes)
            self.write(item)

    def _flush_ws(self) -> None:
        ws = self.ws
        out = ws.data_to_send()
        t = self.transport
        if t is None:
            return
        for chunk in out:
            if chunk:
                t.write(chunk)
            else:  # end of stream: the server closes TCP after its close handshake
                t.close()
                return
        if ws.close_expected() and self._closer is None:
            loop = asyncio.get_running_loop()
            self._closer = loop.call_later(CLOSE_TIMEOUT_S, t.close)

    def _do(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.outbox.put_control(action.data)
            elif isinstance(action, Close):
                self._close(action.code, action.reason)

    def _close(self, code: int, reason: str) -> None:
        self.stopped = True
        if self.closing:
            return
        self.outbox.close()
        self.closing = True
        if self.session is not None:
            self.session.closed()
        if code in (p.CloseCode.DEACTIVATED, p.CloseCode.DISCONNECTED):
            self.dropped = True
        if self.ws.state is WsState.OPEN:
            self.ws.send_close(code, reason[:120])
        self._flush_ws()

    def keepalive(self) -> None:
        """The node-wide ping round (see :meth:`Engine._ping_all`)."""
        if self.closing or self.ws.state is not WsState.OPEN:
            return
        if not self.alive:
            self.ws.fail(1011, "keepalive ping timeout")
            self.closing = self.stopped = True
            self._flush_ws()
            return
        self.alive = False
        self.ws.send_ping(b"")
        self._flush_ws()

    def _refused_log(self, code: int, reason: str, user: str = "") -> None:
        # The reason names what was wrong with the token, never the token itself.
        log.info(
            "session refused",
            extra={"event": "ws.refused", "code": int(code), "reason": reason, "user": user,
                   "peer": self.peer},
        )  # fmt: skip

    # -- node.Session ----------------------------------------------------------------

    def live(self) -> LiveConnection:
        assert self.claims is not None
        return LiveConnection(self.conn, self.claims.profile(), self.state)

    async def close(self, code: int, reason: str = "") -> None:
        self._close(code, reason)


def _select_subprotocol(protocol: ServerProtocol, offered: Any) -> Any:
    codec = p.codec_for(list(offered))
    return codec.name if codec.name in offered else None


async def set_status(store: PresenceStore, user: str, msg: p.SetStatus) -> None:
    """Carry out a ``status`` frame: chosen status, text, expiry and last-seen privacy."""
    hide = None if msg.last_seen is None else msg.last_seen == "nobody"
    try:
        await store.set_status(user, status=msg.status, text=msg.text, until=msg.until,
                               hide_last_seen=hide)  # fmt: skip
    except ValueError as exc:  # an until in the past or too far ahead (on the store clock)
        raise p.ProtocolError(p.ErrorCode.BAD_FIELD, str(exc), msg.ref) from None


def _rooms(node: Node) -> Any:
    if node.rooms is None:
        raise p.ProtocolError(p.ErrorCode.BAD_FIELD, "rooms are not enabled on this hub")
    return node.rooms


async def snapshot(node: Node, scope: p.Scope, since: int | None) -> tuple[list[Entry], bool, int]:
    """The state of ``scope``: users changed since ``since`` inside the window, else every
    user of the scope who is not offline."""
    store = node.store
    if scope.kind == "all":
        changes = await store.changes(since)
        return [u.entry() for u in changes.users], changes.full, changes.cursor
    if scope.kind == "room":
        result: tuple[list[Entry], bool, int] = await _rooms(node).snapshot(scope.room, since)
        return result
    cursor = await store.now()
    views: list[UserView] = await store.users(list(dict.fromkeys(scope.users)))
    # A delta needs a cursor inside the window and from after the store's data began.
    if in_window(since, cursor, store.window_ms) and since >= await store.epoch():
        return [v.entry() for v in views if v.at >= since], False, cursor
    return [v.entry() for v in views if v.status != "offline"], True, cursor
