"""One connection's life, as pure code: frames and ``now`` in, actions out.

Every wire (the hub's JSON and msgpack frames, Pusher protocols 5-7) is a :class:`Rules`
(a dialect): its frame shapes, its refusals and its overflow policy. The :class:`Session`
holds what every wire shares and applies it before the rules see a frame:

- **admission**: a wire that needs a ``hello`` gets it within the hello timeout, with a
  valid token (else the rules' refusal); a wire without one is admitted on open. Admitting
  is store work (:class:`Admit`); the answer comes back through :meth:`Session.admitted`
  or :meth:`Session.refused`.
- **limits**: a frame larger than the limit closes 1009; frames beyond the rate (a token
  bucket, bursts up to :attr:`Limits.burst`) get the rules' :meth:`Rules.rate_limited`
  answer: a close (``/ws``: 4008) or a :class:`Throttle` (Pusher: the reading pauses until
  the bucket has a token again).
- **ordered store work**: a frame that takes effect in the store is a :class:`Run`; the
  driver (:mod:`hub.session.driver`) carries them out in order and reports back with
  :meth:`Session.done` / :meth:`Session.failed`, whose answers the rules shape.
- **liveness**: :meth:`Session.tick` (one node-wide timer calls it) gives the rules their
  protocol-level keepalive (Pusher's ``pusher:ping``); websocket pings are the transport's.

A session knows nothing of sockets, asyncio or the store: it is tested without any.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

from hub.model.auth import Claims

#: The websocket close code for a message over the frame limit (RFC 6455).
TOO_LARGE = 1009


class State(IntEnum):
    HELLO = 0  # waiting for the hello frame
    ADMITTING = 1  # admission (store registration) in flight
    OPEN = 2
    CLOSED = 3


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
    """Admit the connection to the node (``claims``: the verified user of a ``hello``; None
    on a wire without one), then call :meth:`Session.admitted` or :meth:`Session.refused`."""

    claims: Claims | None


@dataclass(frozen=True, slots=True)
class Run:
    """Carry out ``work`` (a parsed frame of the wire) against the node, then
    :meth:`Session.done` or :meth:`Session.failed`."""

    work: Any


@dataclass(frozen=True, slots=True)
class Throttle:
    """The frame was not taken: hold it (and every later one), stop reading, and feed them
    again from ``at`` (the time the rate allows the next one)."""

    at: float


Action = Send | Close | Admit | Run | Throttle


@dataclass(frozen=True, slots=True)
class Limits:
    """What every session of one wire on a node is held to."""

    secret: str
    max_frame_bytes: int = 64 * 1024
    #: A larger frame the wire's rules may still take (a ``/ws`` watchlist ``sub``); 0:
    #: none, every frame is held to ``max_frame_bytes``.
    max_large_bytes: int = 0
    rate_per_s: float = 50.0
    #: Frames a client may send at once before the rate applies.
    burst: float = 100.0
    hello_timeout_s: float = 5.0
    window_s: float = 600.0


class Rules(Protocol):
    """A wire's rules for one connection: frame shapes, refusals, overflow policy."""

    @property
    def binary(self) -> bool:
        """Data frames are binary (else text)."""

    @property
    def needs_hello(self) -> bool:
        """The first frame must be a hello with a token (else admitted on open)."""

    @property
    def overflow_close(self) -> int | None:
        """What a full outbox means: None to resync by snapshot, else close with this code."""

    @property
    def try_again(self) -> int:
        """The close code for "the hub is too busy to admit you now, try again"."""

    @property
    def restart_close(self) -> int:
        """The close code for "this node is restarting: reconnect (elsewhere)"."""

    def hello(self, data: str | bytes) -> Claims:
        """The verified claims of a hello frame; raises :class:`Refusal` otherwise."""

    def frame(self, data: str | bytes, now: float) -> list[Action]:
        """One data frame of an open (or admitting) connection."""

    def admitted(self, result: Any) -> list[Action]:
        """The node admitted the connection (``result`` is the handler's answer)."""

    def done(self, work: Any) -> list[Action]:
        """``work`` took effect."""

    def failed(self, work: Any, code: str, message: str) -> list[Action]:
        """``work`` did not take effect: ``code`` is the hub's error code."""

    def rate_limited(self, now: float, retry_at: float) -> list[Action]:
        """A frame beyond the rate: close, or :class:`Throttle` until ``retry_at``."""

    def tick(self, now: float, last_rx: float) -> list[Action]:
        """The node-wide keepalive round: protocol-level pings, or a close for silence."""

    def expired(self) -> list[Action]:
        """No hello within the time limit."""

    def too_large(self, limit: int) -> list[Action]:
        """A frame over the limit."""

    def large_ok(self, data: str | bytes) -> bool:
        """A frame over ``max_frame_bytes`` (within ``max_large_bytes``) the wire takes."""


class Refusal(Exception):
    """A hello the wire refuses: close with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Session:
    """The protocol state of one connection. Call order: :meth:`opened`; :meth:`receive`
    for each data frame; :meth:`expired` when the hello deadline passed; :meth:`admitted` /
    :meth:`refused` after an :class:`Admit`; :meth:`done` / :meth:`failed` after each
    :class:`Run`; :meth:`tick` on every keepalive round; :meth:`closed` at the end."""

    __slots__ = ("_last", "_tokens", "claims", "deadline", "last_rx", "limits", "rules", "state")

    def __init__(self, rules: Rules, limits: Limits, now: float) -> None:
        self.rules = rules
        self.limits = limits
        self.state = State.HELLO
        self.claims: Claims | None = None
        self.deadline = now + limits.hello_timeout_s
        self._tokens = limits.burst
        self._last = now
        #: When the client last sent a frame (a keepalive's measure of silence).
        self.last_rx = now

    @property
    def open(self) -> bool:
        return self.state is State.OPEN

    def opened(self) -> list[Action]:
        """The websocket is open: a wire without a hello is admitted now."""
        if self.rules.needs_hello:
            return []
        self.state = State.ADMITTING
        return [Admit(None)]

    # -- frames in ---------------------------------------------------------------------

    def receive(self, data: str | bytes, now: float) -> list[Action]:
        """One data frame from the client."""
        if self.state is State.CLOSED:
            return []
        self.last_rx = now
        limit = self.limits.max_frame_bytes
        if len(data) > limit and (
            len(data) > self.limits.max_large_bytes
            or self.state is State.HELLO
            or not self.rules.large_ok(data)
        ):
            return self._closing(self.rules.too_large(limit))
        retry_at = self._take(now)
        if retry_at is not None:
            return self._closing(self.rules.rate_limited(now, retry_at))
        if self.state is State.HELLO:
            return self._hello(data)
        # While ADMITTING too: a client may send its frames right behind its hello; the
        # driver carries them out after the Admit, in order (or drops them when refused).
        return self._closing(self.rules.frame(data, now))

    def expired(self, now: float) -> list[Action]:
        """The hello timer fired: the rules' refusal unless the session got past hello."""
        if self.state is State.HELLO and now >= self.deadline:
            return self._closing(self.rules.expired())
        return []

    def tick(self, now: float) -> list[Action]:
        """The node-wide keepalive round."""
        if self.state is not State.OPEN:
            return []
        return self._closing(self.rules.tick(now, self.last_rx))

    def _take(self, now: float) -> float | None:
        """Take a token; None when one was there, else when the next one will be."""
        rate = self.limits.rate_per_s
        self._tokens = min(self.limits.burst, self._tokens + max(0.0, now - self._last) * rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return now + (1 - self._tokens) / rate

    def _hello(self, data: str | bytes) -> list[Action]:
        try:
            claims = self.rules.hello(data)
        except Refusal as exc:
            return self._close(exc.code, exc.reason)
        self.state = State.ADMITTING
        self.claims = claims
        return [Admit(claims)]

    # -- outcomes ----------------------------------------------------------------------

    def admitted(self, result: Any) -> list[Action]:
        """The node admitted the connection."""
        if self.state is not State.ADMITTING:
            return []
        self.state = State.OPEN
        return self._closing(self.rules.admitted(result))

    def refused(self, code: int, reason: str) -> list[Action]:
        """The node did not admit the connection (deactivated, too busy, store down...)."""
        return self._close(code, reason)

    def done(self, work: Any) -> list[Action]:
        # The rules learn the outcome even on a closed session: a Pusher subscription that
        # took effect while its socket went away must be in the channels its end leaves.
        actions = self.rules.done(work)
        if self.state is State.CLOSED:
            return []
        return self._closing(actions)

    def failed(self, work: Any, code: str, message: str) -> list[Action]:
        actions = self.rules.failed(work, code, message)
        if self.state is State.CLOSED:
            return []
        return self._closing(actions)

    def closed(self) -> None:
        """The socket is gone; every later frame is ignored."""
        self.state = State.CLOSED

    # -- helpers -----------------------------------------------------------------------

    def _close(self, code: int, reason: str) -> list[Action]:
        self.state = State.CLOSED
        return [Close(int(code), reason)]

    def _closing(self, actions: list[Action]) -> list[Action]:
        """The rules' answer; a Close among it ends the session."""
        for action in actions:
            if isinstance(action, Close):
                self.state = State.CLOSED
        return actions
