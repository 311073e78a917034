"""The websocket transport inside uvicorn: bytes <-> drivers, for every wire.

uvicorn hands an upgraded connection to the protocol class given as ``Config(ws=...)``;
:func:`protocol_class` makes that class. Each :class:`Connection` is an asyncio
``Protocol`` holding python-websockets' sans-I/O ``ServerProtocol`` (handshake, frame
parsing, control frames, closing handshake) and a :class:`~hub.session.driver.Driver`,
which owns the connection's life. The connection only moves bytes: no ASGI, no Starlette,
no coroutine parked per connection. It serves both wires:

- ``/ws``: the hub's own (``hub.v1.json`` / ``hub.v1.msgpack``, chosen by subprotocol);
- ``/app/{key}?protocol=5..7``: Pusher. An unknown key, a missing or unsupported protocol
  is refused as Pusher refuses it: the socket opens, gets ``pusher:error`` and closes with
  4001, 4008 or 4007.

Any other path is refused with 403 before the upgrade (as Starlette refuses it), and a
draining node answers every handshake with 503 and ``Retry-After`` (a proxy then moves the
client to a live hub).

- **frame once, write once.** Fan-out hands the same encoded payload to every subscriber;
  :func:`framed` turns it into a complete unmasked websocket frame once (a server frame's
  header is the same for every receiver) and each subscriber costs one ``transport.write``.
- **backpressure, exact.** ``pause_writing`` pauses the driver's outbox (bounded, with the
  wire's overflow policy); ``resume_writing`` drains it.
- **fragments** (RFC 6455 section 5.4) are reassembled; python-websockets holds the whole
  message to the frame limit (beyond it: close 1009).
- **keepalive**: one node-wide timer (:class:`~hub.session.driver.Drivers`) pings every
  connection; one that did not answer the last round's ping, nor sent anything, is gone.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any, ClassVar
from urllib.parse import parse_qs

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol as WsProtocol
from websockets.protocol import State as WsState
from websockets.server import ServerProtocol

from hub.node.node import DRAIN_RETRY_AFTER_S, Node
from hub.session.core import Limits, Session
from hub.session.driver import Driver, Drivers, Handler
from hub.session.rules_hub import HubRules
from hub.wire import hub as p
from hub.wire import pusher as pw

log = logging.getLogger("hub.ws")
uvicorn_log = logging.getLogger("uvicorn.error")
#: python-websockets' own protocol log (it says "connection open" at INFO for every socket;
#: the hub's ws.connect line says more): warnings only, unless set otherwise.
wire_log = logging.getLogger("hub.ws.wire")

#: How long a closing handshake may take before the TCP connection is cut.
CLOSE_TIMEOUT_S = 5.0
#: How many framed payloads :func:`framed` remembers (one flush reuses a handful).
FRAMED_CACHE = 16
#: The path prefix of the Pusher endpoint.
PUSHER_PREFIX = "/app/"

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


class Engine:
    """What every connection of one node shares: the node, each wire's handler and limits,
    and the drivers (keepalive, tasks)."""

    def __init__(
        self,
        node: Node,
        hub: Handler,
        pusher: Any,
        drivers: Drivers,
        limits: Limits,
    ) -> None:
        self.node = node
        self.hub = hub
        #: The Pusher wire (:class:`hub.node.channels.ChannelService`), when apps are set.
        self.pusher = pusher
        self.drivers = drivers
        self.limits = limits
        #: Connections that wrote in this turn of the event loop; later frames to them in
        #: the same turn are batched into one write when the turn ends (:meth:`_uncork`).
        self._hot: list[Connection] = []
        self._uncork_due = False
        if wire_log.level == logging.NOTSET:
            wire_log.setLevel(logging.WARNING)

    @property
    def bad_frames(self) -> int:
        return self.drivers.bad_frames

    def warm(self, conn: Connection) -> None:
        """``conn`` wrote in this turn: batch what follows until the turn ends."""
        self._hot.append(conn)
        if not self._uncork_due:
            self._uncork_due = True
            asyncio.get_running_loop().call_soon(self._uncork)

    def _uncork(self) -> None:
        self._uncork_due = False
        hot, self._hot = self._hot, []
        for conn in hot:
            conn.hot = False
            conn.write_batch()


def protocol_class(engine: Engine) -> type[Connection]:
    """The class to give uvicorn as ``Config(ws=...)``, bound to ``engine``."""

    class BoundConnection(Connection):
        __slots__ = ()
        _engine: ClassVar[Engine] = engine

    return BoundConnection


class Connection(asyncio.Protocol):
    """One websocket connection: the transport of one :class:`Driver`."""

    __slots__ = ("_batch", "_closer", "_parts", "_server_state", "alive", "driver", "hot",
                 "open", "paused", "peer", "transport", "ws")  # fmt: skip
    _engine: ClassVar[Engine]

    def __init__(self, config: Any = None, server_state: Any = None, app_state: Any = None,
                 _loop: Any = None) -> None:  # fmt: skip
        self._server_state = server_state
        self.ws = ServerProtocol(
            select_subprotocol=_select_subprotocol,
            max_size=max(self._engine.limits.max_frame_bytes, self._engine.limits.max_large_bytes),
            logger=wire_log,
        )
        self.transport: asyncio.Transport | None = None
        self.driver: Driver | None = None
        self.peer = ""
        self.paused = False
        #: The websocket is open (``ws.state`` as of the last flush: read on every write).
        self.open = False
        self.alive = True
        #: Wrote in this turn of the event loop (:meth:`Engine.warm`); frames written after
        #: that in the same turn wait in ``_batch`` and leave in one write when it ends: a
        #: burst of events to one socket costs one syscall, not one each.
        self.hot = False
        self._batch: list[bytes] | None = None
        #: The fragments of a message being reassembled, behind its opcode.
        self._parts: list[Any] | None = None
        self._closer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        if self._server_state is not None:
            self._server_state.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else ""

    def data_received(self, data: bytes) -> None:
        self.alive = True
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Frame):
                op = event.opcode
                if op is Opcode.TEXT or op is Opcode.BINARY or op is Opcode.CONT:
                    self._frame(event)
                # CLOSE, PING and PONG are answered by ServerProtocol.
            elif isinstance(event, Request):
                self._handshake(event)
        self._flush_ws()

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self._batch = None
        if self._server_state is not None:
            self._server_state.connections.discard(self)
        if self._closer is not None:
            self._closer.cancel()
        driver = self.driver
        if driver is not None:
            received = self.ws.close_rcvd
            driver.gone(received.code if received is not None else None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.driver is not None:
            self.driver.resume_writing()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush_ws()
        return None

    def shutdown(self) -> None:
        """uvicorn's shutdown (after the node's drain): close what is still open."""
        if self.ws.state is WsState.OPEN:
            driver = self.driver
            if driver is not None:
                driver.close(driver.session.rules.restart_close, "node restarting")
            else:
                self.close(p.CloseCode.RESTARTING, "node restarting")
        if self.transport is not None:
            self.transport.close()

    # -- handshake ---------------------------------------------------------------------

    def _handshake(self, request: Request) -> None:
        engine = self._engine
        ws = self.ws
        path, _, query = request.path.partition("?")
        pusher = path.startswith(PUSHER_PREFIX) and engine.pusher is not None
        if engine.node.draining:
            response = ws.reject(503, "node restarting, retry elsewhere\n")
            response.headers["Retry-After"] = str(DRAIN_RETRY_AFTER_S)
        elif path != "/ws" and not pusher:
            response = ws.reject(403, f"no websocket endpoint at {path[:64]}\n")
        else:
            response = ws.accept(request)
        ws.send_response(response)
        self._flush_ws()  # the response goes out before any frame the driver writes
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
        now = asyncio.get_running_loop().time()
        if pusher:
            ws.max_message_size = engine.pusher.limits.max_frame_bytes
            self._open_pusher(path[len(PUSHER_PREFIX) :], query, now)
            return
        name = response.headers.get("Sec-WebSocket-Protocol") or p.JSON
        codec = p.codec_for([name])
        rules = HubRules(codec, engine.limits)
        session = Session(rules, engine.limits, now)
        self.driver = Driver(
            engine.drivers, session, engine.hub, self, codec=codec,
            outbox_frames=engine.node.settings.outbox_frames,
        )  # fmt: skip
        self.driver.opened()

    def _open_pusher(self, key: str, query: str, now: float) -> None:
        wire = self._engine.pusher
        refusal, rules = wire.rules_for(key, parse_qs(query).get("protocol"), now)
        if refusal is not None:
            code, message = refusal
            self.write(pw.error(message, code))
            self.close(code, message)
            return
        session = Session(rules, wire.limits, now)
        self.driver = Driver(
            self._engine.drivers, session, wire, self,
            outbox_frames=wire.outbox_frames,
        )  # fmt: skip
        self.driver.opened()

    # -- frames in ---------------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        driver = self.driver
        if driver is None or driver.closing:
            return
        parts = self._parts
        payload: bytes | bytearray | memoryview
        if frame.opcode is Opcode.CONT:
            if parts is None:
                return  # ServerProtocol refuses a stray continuation before we see one
            parts.append(frame.data)
            if not frame.fin:
                return
            self._parts = None
            opcode, payload = parts[0], b"".join(parts[1:])
        elif not frame.fin:
            self._parts = [frame.opcode, frame.data]
            return
        else:
            opcode, payload = frame.opcode, frame.data
        if opcode is Opcode.TEXT:
            try:
                data: str | bytes = bytes(payload).decode("utf-8")
            except UnicodeDecodeError:
                driver.close(1007, "text frame is not valid UTF-8")
                return
        else:
            data = bytes(payload)
        driver.received(data, asyncio.get_running_loop().time())

    # -- the driver's transport ----------------------------------------------------------

    def write(self, data: str | bytes) -> bool:
        """Write one encoded message now (the outbox decides whether to call)."""
        t = self.transport
        if t is None or not self.open:
            return False
        try:
            frame = framed(data)
        except (ValueError, TypeError) as exc:  # a frame that cannot be encoded (UTF-8)
            self._engine.drivers.bad_frames += 1
            log.warning("dropped a frame that cannot be encoded: %s", type(exc).__name__)
            return False
        batch = self._batch
        if batch is not None:
            batch.append(frame)
        elif self.hot:
            self._batch = [frame]
        else:
            t.write(frame)
            self.hot = True
            self._engine.warm(self)
        return True

    def write_batch(self) -> None:
        """Write the frames batched in this turn, in one write."""
        batch = self._batch
        if batch is None:
            return
        self._batch = None
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(b"".join(batch))

    def close(self, code: int, reason: str) -> None:
        if self.ws.state is WsState.OPEN:
            self.ws.send_close(code, reason[:120])
        self._flush_ws()

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def keepalive(self) -> None:
        """The node-wide ping round: a peer that did not answer the last round's ping (nor
        sent anything) is gone; the others get a new ping."""
        if self.ws.state is not WsState.OPEN:
            return
        if not self.alive:
            self.ws.fail(1011, "keepalive ping timeout")
            self._flush_ws()
            return
        self.alive = False
        self.ws.send_ping(b"")
        self._flush_ws()

    def _flush_ws(self) -> None:
        self.write_batch()  # data frames written before a control frame leave before it
        ws = self.ws
        self.open = ws.state is WsState.OPEN
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


def _select_subprotocol(protocol: ServerProtocol, offered: Any) -> Any:
    codec = p.codec_for(list(offered))
    return codec.name if codec.name in offered else None
