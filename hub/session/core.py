"""One connection's rules, as pure code: frames and ``now`` in, actions out.

A :class:`Session` knows nothing of sockets, asyncio or the store. The transport
(:mod:`hub.transport.engine`) feeds it every data frame with :meth:`Session.receive` and the
time, and carries out the actions it returns: :class:`Send` bytes to the client,
:class:`Close` the socket, :class:`Admit` a verified user (the store registration),
:class:`Run` a frame that takes effect in the store. When an :class:`Admit` or a
:class:`Run` finished, the transport reports back with :meth:`Session.admitted`,
:meth:`Session.done` or :meth:`Session.failed`, which return the answer (``ready``, ``ack``,
``error``) as actions again.

The rules: the first frame is ``hello`` with a valid token, within the hello timeout
(:meth:`Session.expired`), else close 4001; a frame larger than the limit closes 1009; more
frames than the rate allows close 4008; a bad frame is answered with ``error`` naming what
was wrong (and the frame's ``ref``) and changes nothing; a frame that took effect is answered
with ``ack`` when it had a ``ref``.

The frame shapes are the :class:`Dialect`'s: the session asks it to parse client data into
:mod:`hub.wire.hub` messages and to shape ``ack``, ``error``, ``pong`` and ``ready``. A
second wire (the Pusher protocol) plugs in as another dialect with the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

from hub.model.auth import AuthError, Claims, verify_token
from hub.model.presence import Entry
from hub.wire import hub as p


class State(IntEnum):
    HELLO = 0  # waiting for hello
    ADMITTING = 1  # token verified, the store registration is in flight
    OPEN = 2
    CLOSED = 3


class Dialect(Protocol):
    """The frame shapes of one wire: client data -> messages, answers -> bytes."""

    binary: bool  # data frames are binary (else text)

    def parse(self, data: str | bytes) -> p.Message: ...

    def encode(self, frame: dict[str, Any]) -> str | bytes: ...

    def ack(self, ref: Any) -> str | bytes: ...

    def error(self, code: str, message: str, ref: Any) -> str | bytes: ...

    def pong(self, ref: Any) -> str | bytes: ...

    def ready(self, conn: str, user: Entry, cursor: int, window_s: float) -> str | bytes: ...


class HubDialect:
    """The hub's own wire: ``hub.v1.json`` or ``hub.v1.msgpack`` frames."""

    __slots__ = ("binary", "codec", "name")

    def __init__(self, codec: p.Codec) -> None:
        self.codec = codec
        self.name = codec.name
        self.binary = codec.binary

    def parse(self, data: str | bytes) -> p.Message:
        return p.parse(data)

    def encode(self, frame: dict[str, Any]) -> str | bytes:
        return self.codec.encode(frame)

    def ack(self, ref: Any) -> str | bytes:
        return self.codec.encode(p.ack(ref))

    def error(self, code: str, message: str, ref: Any) -> str | bytes:
        return self.codec.encode(p.error(code, message, ref))

    def pong(self, ref: Any) -> str | bytes:
        return self.codec.encode({"op": "pong"} if ref is None else {"op": "pong", "ref": ref})

    def ready(self, conn: str, user: Entry, cursor: int, window_s: float) -> str | bytes:
        return self.codec.encode(p.ready(conn, user, cursor, window_s))


HUB_DIALECTS = {name: HubDialect(p.codec_for([name])) for name in p.SUBPROTOCOLS}


# -- actions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Write this (already encoded) frame to the client."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close the websocket with this code and reason."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Admit:
    """The token is valid: check the user may connect and register the connection, then
    call :meth:`Session.admitted` (or :meth:`Session.refused`)."""

    claims: Claims


@dataclass(frozen=True, slots=True)
class Run:
    """Carry out ``message`` (store, fan-out), then :meth:`Session.done` or ``failed``."""

    message: p.Message


Action = Send | Close | Admit | Run


@dataclass(frozen=True, slots=True)
class Limits:
    """What every session of a node is held to (from :class:`hub.ops.config.Settings`)."""

    secret: str
    max_frame_bytes: int = 64 * 1024
    rate_per_s: float = 50.0
    hello_timeout_s: float = 5.0
    window_s: float = 600.0


class Session:
    """The protocol state of one connection. Call order: :meth:`receive` for each data
    frame; :meth:`expired` when the hello deadline passed; :meth:`admitted` / :meth:`refused`
    after an :class:`Admit`; :meth:`done` / :meth:`failed` after each :class:`Run`."""

    __slots__ = ("_last", "_tokens", "claims", "deadline", "dialect", "limits", "scopes",
                 "state")  # fmt: skip

    def __init__(self, dialect: Dialect, limits: Limits, now: float) -> None:
        self.dialect = dialect
        self.limits = limits
        self.state = State.HELLO
        self.claims: Claims | None = None
        self.deadline = now + limits.hello_timeout_s
        # A token bucket: rate_per_s frames a second, bursts up to twice that.
        self._tokens = limits.rate_per_s * 2
        self._last = now
        # Subscribed scopes by key; None until the first sub (idle connections hold no dict).
        self.scopes: dict[tuple[str, ...], p.Scope] | None = None

    # -- frames in ---------------------------------------------------------------------

    def receive(self, data: str | bytes, now: float) -> list[Action]:
        """One data frame from the client."""
        if self.state is State.CLOSED:
            return []
        limit = self.limits.max_frame_bytes
        if len(data) > limit:
            return self._close(p.CloseCode.TOO_LARGE, f"frame larger than {limit} bytes")
        if not self._allow(now):
            return self._close(p.CloseCode.RATE_LIMITED, "too many frames")
        if self.state is State.HELLO:
            return self._hello(data)
        # While ADMITTING too: a client may send its sub right behind its hello; the
        # transport carries the actions out after the Admit, in order (or drops them when
        # the admission is refused).
        ref: Any = None
        try:
            msg = self.dialect.parse(data)
            ref = msg.ref
            return self._message(msg)
        except p.ProtocolError as exc:
            return [self._error(exc.code, exc.message, exc.ref if exc.ref is not None else ref)]

    def expired(self, now: float) -> list[Action]:
        """The hello timer fired: close 4001 unless the session got past hello."""
        if self.state is State.HELLO and now >= self.deadline:
            return self._close(p.CloseCode.NOT_AUTHENTICATED, "no hello within the time limit")
        return []

    def _allow(self, now: float) -> bool:
        rate = self.limits.rate_per_s
        self._tokens = min(rate * 2, self._tokens + (now - self._last) * rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _hello(self, data: str | bytes) -> list[Action]:
        try:
            msg = self.dialect.parse(data)
            if not isinstance(msg, p.Hello):
                raise AuthError("the first frame must be hello with a token")
            claims = verify_token(self.limits.secret, msg.token)
        except (AuthError, p.ProtocolError) as exc:
            return self._close(p.CloseCode.NOT_AUTHENTICATED, str(exc)[:120])
        self.state = State.ADMITTING
        self.claims = claims
        return [Admit(claims)]

    def _message(self, msg: p.Message) -> list[Action]:
        if isinstance(msg, p.Ping):
            return [Send(self.dialect.pong(msg.ref))]
        if isinstance(msg, p.Pong):
            return []
        if isinstance(msg, p.Hello):
            raise p.ProtocolError(p.ErrorCode.BAD_FRAME, "already authenticated", msg.ref)
        if isinstance(msg, p.Sub):
            if self.scopes is None:
                self.scopes = {}
            self.scopes[msg.scope.key()] = msg.scope
        elif isinstance(msg, p.Unsub):
            key = msg.scope.key()
            if not self.scopes or self.scopes.pop(key, None) is None:
                raise p.ProtocolError(
                    p.ErrorCode.NOT_SUBSCRIBED, f"not subscribed to {msg.scope.wire()}", msg.ref
                )
        return [Run(msg)]

    # -- outcomes ----------------------------------------------------------------------

    def admitted(self, conn: str, user: Entry, cursor: int) -> list[Action]:
        """The store registered the connection: the client gets ``ready``."""
        if self.state is not State.ADMITTING:
            return []
        self.state = State.OPEN
        return [Send(self.dialect.ready(conn, user, cursor, self.limits.window_s))]

    def refused(self, code: int, reason: str) -> list[Action]:
        """The user may not connect (deactivated, store down, node draining)."""
        return self._close(code, reason)

    def done(self, msg: p.Message) -> list[Action]:
        """``msg`` took effect."""
        return [] if msg.ref is None else [Send(self.dialect.ack(msg.ref))]

    def failed(self, msg: p.Message, code: str, message: str) -> list[Action]:
        """``msg`` did not take effect; a failed sub is no subscription."""
        if isinstance(msg, p.Sub) and self.scopes is not None:
            self.scopes.pop(msg.scope.key(), None)
        return [self._error(code, message, msg.ref)]

    def closed(self) -> None:
        """The socket is gone; every later frame is ignored."""
        self.state = State.CLOSED

    # -- helpers ---------------------------------------------------------------------------

    def _error(self, code: str, message: str, ref: Any) -> Send:
        return Send(self.dialect.error(code, message, ref))

    def _close(self, code: int, reason: str) -> list[Action]:
        self.state = State.CLOSED
        return [Close(int(code), reason)]
