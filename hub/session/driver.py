"""The driver: one connection's life carried out, for every wire and every transport.

A :class:`Driver` sits between a transport (which only moves bytes: :mod:`hub.transport`)
and the pure :class:`~hub.session.core.Session`. It feeds the session every message and
carries out the actions it returns:

- ``Send`` goes to the bounded outbox, which writes straight to the transport while it
  keeps up; a full outbox is the wire's overflow policy: a resync by snapshot (``/ws``) or
  a close (Pusher, 4100). Fan-out frames take the same path (:meth:`Driver.deliver`), so a
  payload framed once costs each subscriber one ``transport.write``.
- ``Admit`` and ``Run`` are store work, carried out by the wire's :class:`Handler` in a task
  that lives only while such work is pending, strictly in the order of the frames; answers
  queue behind pending work so they keep that order too. Past :data:`MAX_PENDING` pending
  actions the socket is not read (the client's own frames wait in TCP, not in memory).
- ``Throttle`` holds the frame (and every later one) and pauses reading until the rate
  allows more; past :data:`MAX_HELD` held frames the connection closes (the wire's
  overflow code).
- teardown: when the transport is gone, the handler detaches the connection from the node
  (with the offline grace, unless the client signed out).

:class:`Drivers` is what the connections of one node share: the keepalive round (one
node-wide timer, never one per connection) and the tasks in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from hub.model.auth import Claims
from hub.session.core import Action, Admit, Close, Run, Send, Session, State, Throttle
from hub.session.outbox import RESYNC, Outbox
from hub.stores.presence.base import StoreUnavailable
from hub.wire import hub as p

log = logging.getLogger("hub.ws")

#: Pending store actions of one connection beyond which its socket is not read.
MAX_PENDING = 32
#: Frames held by a throttled connection beyond which it is closed.
MAX_HELD = 1000
#: The close code a bug in a handler ends its connection with (never another's).
INTERNAL_ERROR = 1011


class Transport(Protocol):
    """What a driver needs of a socket; the transports (engine, ASGI) implement it."""

    #: The client's address, for logs.
    peer: str
    #: Writing is paused (the socket's buffers are full): queue, do not write.
    paused: bool

    def write(self, data: str | bytes) -> bool:
        """Send one encoded message now; False when the socket cannot take it."""

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (idempotent)."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def keepalive(self) -> None:
        """The transport's own liveness check, once per keepalive round (websocket pings)."""


class Refused(Exception):
    """The node does not admit this connection: close with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class WorkFailed(Exception):
    """A frame that cannot take effect, for a reason named by one of the hub's error codes
    (``limit``, ``forbidden``...): the wire's rules shape the answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Handler(Protocol):
    """A wire's effects on the node: the I/O half of a dialect."""

    async def admit(self, driver: Driver, claims: Claims | None) -> Any:
        """Admit the connection; the result goes to the rules' ``admitted``. Raises
        :class:`Refused`."""

    async def run(self, driver: Driver, work: Any) -> None:
        """Carry out one frame; raises :class:`~hub.wire.hub.ProtocolError`,
        :class:`WorkFailed` or :class:`StoreUnavailable` when it did not take effect."""

    async def resync(self, driver: Driver) -> None:
        """The outbox overflowed (or the feed lost events): fresh state, then the rest."""

    async def detach(self, driver: Driver) -> None:
        """The connection ended: remove it from the node."""


class DriverOutbox(Outbox):
    """An outbox that writes straight to the transport while it keeps up."""

    __slots__ = ("driver",)

    def __init__(self, driver: Driver, max_frames: int) -> None:
        super().__init__(max_frames)
        self.driver = driver

    def put(self, frame: str | bytes) -> bool:
        d = self.driver
        t = d.transport
        # Driver.writable, spelled out: this is the fan-out's hot path.
        if not self._items and not self.closed and not t.paused and not d.resyncing:
            return t.write(frame)
        return super().put(frame)

    def put_control(self, frame: str | bytes) -> None:
        d = self.driver
        if not self._items and not self.closed and d.writable:
            d.transport.write(frame)
            return
        super().put_control(frame)

    def _overflow(self) -> None:
        code = self.driver.session.rules.overflow_close
        if code is None:
            super()._overflow()  # resync by snapshot
            return
        self.overflows += 1
        self.driver.close(code, "client too slow: its outbox is full")

    def _wake(self) -> None:
        # Queued while the socket was writable (a resync request, say): write now.
        self.driver.drain()


class Drivers:
    """Every driver of one node: the keepalive round and the tasks in flight."""

    def __init__(self, keepalive_s: float = 20.0) -> None:
        self.keepalive_s = keepalive_s
        self.live: set[Driver] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        #: Frames that could not be encoded for the wire (a lone surrogate...), dropped.
        self.bad_frames = 0

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def started(self, driver: Driver) -> None:
        self.live.add(driver)
        if self._timer is None and self.keepalive_s > 0:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.keepalive_s, self._round)

    def ended(self, driver: Driver) -> None:
        self.live.discard(driver)

    def _round(self) -> None:
        """One timer for every connection of the node."""
        self._timer = None
        now = asyncio.get_running_loop().time()
        for driver in list(self.live):
            driver.keepalive(now)
        if self.live:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.keepalive_s, self._round)


class Driver:
    """One connection: its session, its outbox, its ordered store work."""

    __slots__ = (
        "_ended",
        "_held",
        "_pending",
        "_resume",
        "_timer",
        "admitted",
        "close_code",
        "closing",
        "codec",
        "drivers",
        "handler",
        "lost",
        "outbox",
        "read_paused",
        "resyncing",
        "session",
        "state",
        "transport",
    )  # fmt: skip

    def __init__(
        self,
        drivers: Drivers,
        session: Session,
        handler: Handler,
        transport: Transport,
        *,
        codec: p.Codec = p.JSON_CODEC,
        outbox_frames: int = 256,
    ) -> None:
        self.drivers = drivers
        self.session = session
        self.handler = handler
        self.transport = transport
        #: The codec fan-out encodes this connection's frames with (the hub wire's).
        self.codec = codec
        self.outbox: Outbox = DriverOutbox(self, outbox_frames)
        self.admitted = False  # the node holds this connection: detach it at the end
        self.closing = False  # the hub closed it: pending work is dropped
        self.lost = False  # the socket is gone
        self.read_paused = False
        self.resyncing = False  # fresh state is being sent after an overflow: frames wait
        #: What the wire's handler keeps of this connection (its user connection...).
        self.state: Any = None
        #: The close code the client sent, when it closed (4000: signed out).
        self.close_code: int | None = None
        self._pending: list[Action] | None = None
        self._held: list[str | bytes] | None = None
        self._resume: asyncio.TimerHandle | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: Made when someone waits for the end (:meth:`ended`), resolved by :meth:`gone`.
        self._ended: asyncio.Future[None] | None = None

    @property
    def writable(self) -> bool:
        return not self.transport.paused and not self.resyncing and not self.lost

    # -- from the transport ------------------------------------------------------------

    def opened(self) -> None:
        """The websocket is open."""
        self.drivers.started(self)
        session = self.session
        if session.rules.needs_hello:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(session.deadline, self._hello_expired)
        self._act(session.opened())

    def received(self, data: str | bytes, now: float) -> None:
        """One complete message from the client."""
        if self._held is not None:
            self._hold(data)
            return
        session = self.session
        hello = session.state is State.HELLO
        actions = session.receive(data, now)
        if actions and isinstance(actions[0], Throttle):
            self._held = []
            self._hold(data)
            self._throttle(actions[0].at)
            return
        if hello and actions and isinstance(actions[0], Close):
            refused(actions[0].code, actions[0].reason, "", self.transport.peer)
        self._act(actions)

    def resume_writing(self) -> None:
        self.drain()

    def gone(self, close_code: int | None = None) -> None:
        """The transport is closed (``close_code``: the one the client sent, if any):
        nothing more is written; the node lets the connection go."""
        if self.lost:
            return
        self.lost = True
        self.close_code = close_code
        self.outbox.close()
        self.session.closed()
        self.drivers.ended(self)
        for timer in (self._timer, self._resume):
            if timer is not None:
                timer.cancel()
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)
        if self.admitted and self._pending is None:
            self.drivers.spawn(self._detach())
        # With work pending, the work task detaches when it ends (a status sent just before
        # the client closed still takes effect first).

    async def ended(self) -> None:
        """Until the transport is closed (a closing handshake done, or the socket cut)."""
        if self.lost:
            return
        if self._ended is None:
            self._ended = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._ended)

    # -- from the node -----------------------------------------------------------------

    def send(self, data: str | bytes) -> None:
        """An answer or a control frame: never dropped by overflow (bounded by the client's
        own rate)."""
        self.outbox.put_control(data)

    def deliver(self, data: str | bytes) -> bool:
        """A fan-out frame: subject to the outbox bound and the wire's overflow policy."""
        return self.outbox.put(data)

    def close(self, code: int, reason: str) -> None:
        """Close from the hub's side (refusal, limits, drain, kick): pending work is dropped."""
        if self.closing:
            return
        self.closing = True
        self.session.closed()
        self.outbox.close()
        self.transport.close(code, reason[:120])

    def keepalive(self, now: float) -> None:
        if self.closing or self.lost:
            return
        self.transport.keepalive()
        self._act(self.session.tick(now))

    def drain(self) -> None:
        """Write what the outbox holds while the transport takes it."""
        box = self.outbox
        while self.writable and not self.closing:
            item = box.pop()
            if item is None:
                return
            if item is RESYNC:
                self.resyncing = True
                self.drivers.spawn(self._resync())
                return
            assert isinstance(item, str | bytes)
            self.transport.write(item)

    # -- actions -----------------------------------------------------------------------

    def _act(self, actions: list[Action]) -> None:
        for action in actions:
            if self._pending is not None:
                # Store work in flight: answers keep the order of the frames they answer.
                self._pending.append(action)
                if len(self._pending) >= MAX_PENDING and not self.read_paused:
                    self.read_paused = True
                    self.transport.pause_reading()
            elif isinstance(action, Send):
                self.send(action.data)
            elif isinstance(action, Close):
                self.close(action.code, action.reason)
            elif isinstance(action, Admit | Run):
                self._pending = [action]
                self.drivers.spawn(self._work())

    def _answer(self, actions: list[Action]) -> None:
        """The answer to the action being carried out: sent now, ahead of the frames that
        queued behind it."""
        for action in actions:
            if isinstance(action, Send):
                self.send(action.data)
            elif isinstance(action, Close):
                self.close(action.code, action.reason)
            else:
                self._act([action])

    async def _work(self) -> None:
        """Carry out pending actions in order; ends when none is left."""
        pending = self._pending
        try:
            while pending and not self.closing:
                action = pending.pop(0)
                try:
                    if isinstance(action, Send):
                        self.send(action.data)
                    elif isinstance(action, Close):
                        self.close(action.code, action.reason)
                    elif isinstance(action, Admit):
                        await self._admit(action.claims)
                    elif isinstance(action, Run):
                        await self._run(action.work)
                except Exception:
                    # A bug must cost this connection only, and never leave it hanging.
                    log.exception("frame failed", extra={"peer": self.transport.peer})
                    self.close(INTERNAL_ERROR, "internal error")
                if self.read_paused and len(pending) < MAX_PENDING // 2 and not self.lost:
                    self.read_paused = False
                    self.transport.resume_reading()
        finally:
            self._pending = None
            if self.lost and self.admitted:
                await self._detach()

    async def _admit(self, claims: Claims | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            result = await self.handler.admit(self, claims)
        except Refused as exc:
            self._answer(self.session.refused(exc.code, exc.reason))
            return
        if self.lost:
            return  # admitted meanwhile: the work task's end detaches it
        if claims is not None and claims.exp is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, claims.exp - time.time()), self._token_expired)
        self._answer(self.session.admitted(result))

    async def _run(self, work: Any) -> None:
        session = self.session
        try:
            await self.handler.run(self, work)
        except p.ProtocolError as exc:
            self._answer(session.failed(work, exc.code, exc.message))
        except WorkFailed as exc:
            self._answer(session.failed(work, exc.code, exc.message))
        except StoreUnavailable:
            unavailable = "presence store unreachable"
            self._answer(session.failed(work, p.ErrorCode.UNAVAILABLE, unavailable))
        else:
            self._answer(session.done(work))

    async def _detach(self) -> None:
        if not self.admitted:
            return
        self.admitted = False
        await self.handler.detach(self)

    async def _resync(self) -> None:
        try:
            await self.handler.resync(self)
        finally:
            self.resyncing = False
        self.drain()

    # -- throttling --------------------------------------------------------------------

    def _hold(self, data: str | bytes) -> None:
        held = self._held
        assert held is not None
        held.append(data)
        if len(held) > MAX_HELD:
            self._held = None
            code = self.session.rules.overflow_close or p.CloseCode.RATE_LIMITED
            self.close(code, "too many frames")

    def _throttle(self, at: float) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        loop = asyncio.get_running_loop()
        self._resume = loop.call_at(at, self._unthrottle)

    def _unthrottle(self) -> None:
        self._resume = None
        held, self._held = self._held, None
        if held is None or self.lost or self.closing:
            return
        now = asyncio.get_running_loop().time()
        for n, data in enumerate(held):
            actions = self.session.receive(data, now)
            if actions and isinstance(actions[0], Throttle):
                self._held = held[n:]
                self._throttle(actions[0].at)
                return
            self._act(actions)
        if self.read_paused and (self._pending is None or len(self._pending) < MAX_PENDING // 2):
            self.read_paused = False
            self.transport.resume_reading()

    # -- timers ------------------------------------------------------------------------

    def _hello_expired(self) -> None:
        self._timer = None
        actions = self.session.expired(asyncio.get_running_loop().time())
        for action in actions:
            if isinstance(action, Close):
                refused(action.code, action.reason, "", self.transport.peer)
        self._act(actions)

    def _token_expired(self) -> None:
        self._timer = None
        self.close(p.CloseCode.NOT_AUTHENTICATED, "token expired")


def refused(code: int, reason: str, user: str, peer: str) -> None:
    """Log a refused connection. The reason names what was wrong with a token, never the
    token itself."""
    log.info(
        "session refused",
        extra={"event": "ws.refused", "code": int(code), "reason": reason, "user": user,
               "peer": peer},
    )  # fmt: skip
