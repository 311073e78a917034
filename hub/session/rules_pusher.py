"""The rules of the Pusher wire, ``/app/{key}`` (protocols 5 to 7).

A connection is admitted on open and told its ``socket_id``. Every client frame is checked
here (names, auth signatures, channel data, user data, client-event permissions and rate)
before it becomes work for the node (:class:`Subscribe`, :class:`Unsubscribe`,
:class:`ClientEvent`, :class:`SignIn`). A ``pusher:signin`` whose signature does not verify
gets ``pusher:error`` and the close 4009, as Pusher documents; one that verifies but whose
``user_data`` is wrong, or a second sign-in, gets ``pusher:error`` and changes nothing. A
signed-in connection may subscribe to its own ``#server-to-user-<id>`` channel (pusher-js
does, after ``signin_success``) and to no one else's.
Frames beyond the session's rate are throttled, not refused: the socket stops being read
until the rate allows more (a client subscribing to hundreds of channels at once is served,
a flood is slowed to the rate). A full outbox closes 4100 (the client backs off and
reconnects). After ``activity_timeout`` of silence the server sends ``pusher:ping`` and
closes 4201 when no frame comes back within :data:`PONG_TIMEOUT_S`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.model.auth import Claims
from hub.model.pusher_auth import SignatureError, check_channel_auth, check_user_auth
from hub.ops.apps import App
from hub.session.core import TOO_LARGE, Action, Close, Refusal, Run, Send, Throttle
from hub.wire import pusher as p
from hub.wire.hub import ErrorCode

#: How long a client has to answer the server's ping, seconds (pusher-js: 30 s).
PONG_TIMEOUT_S = 30.0
#: Client events per second per connection, as Pusher allows.
CLIENT_EVENTS_PER_S = 10.0
NOT_SUBSCRIBED = "client events need a channel this connection subscribed to"


@dataclass(frozen=True, slots=True)
class Subscribe:
    channel: str
    member: p.ChannelMember | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str


@dataclass(frozen=True, slots=True)
class ClientEvent:
    channel: str
    event: str
    data: Any
    user_id: str | None


@dataclass(frozen=True, slots=True)
class SignIn:
    user: p.UserData


Work = Subscribe | Unsubscribe | ClientEvent | SignIn

#: How a refused subscription is told: (status, type) of ``pusher:subscription_error``.
_SUBSCRIPTION_ERRORS: dict[str, tuple[int, str]] = {
    ErrorCode.UNAVAILABLE: (503, "ServiceUnavailable"),
    ErrorCode.LIMIT: (4100, "LimitReached"),
    ErrorCode.FORBIDDEN: (403, "AuthError"),
    ErrorCode.BAD_FIELD: (400, "InvalidChannelData"),
}


class TokenBucket:
    """``rate`` events a second, bursts up to ``rate``; the clock is given, not read."""

    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = rate
        self.tokens = rate
        self.last = now

    def allow(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class PusherRules:
    """One Pusher connection's wire state: its app, socket id and channels."""

    __slots__ = ("activity_timeout_s", "app", "bucket", "channels", "pending", "ping_sent",
                 "socket_id", "user")  # fmt: skip

    binary = False
    needs_hello = False
    overflow_close = p.CloseCode.OVER_CAPACITY
    try_again = p.CloseCode.GENERIC_RECONNECT
    restart_close = p.CloseCode.GENERIC_RECONNECT

    def __init__(self, app: App, socket_id: str, activity_timeout_s: float) -> None:
        self.app = app
        self.socket_id = socket_id
        self.activity_timeout_s = activity_timeout_s
        #: channel -> the presence member this socket is (None on other channels).
        self.channels: dict[str, p.ChannelMember | None] = {}
        #: channel -> its member, while the subscription is in flight (a client may use
        #: it as soon as it hears subscription_succeeded, before the node's work returns).
        self.pending: dict[str, p.ChannelMember | None] = {}
        self.ping_sent: float | None = None
        self.bucket: TokenBucket | None = None  # made on the first client event
        #: The user this connection signed in as (set once the signature verified).
        self.user: str | None = None

    # -- frames ------------------------------------------------------------------------

    def hello(self, data: str | bytes) -> Claims:
        raise Refusal(p.CloseCode.UNAUTHORIZED, "no hello on this wire")  # never asked: no hello

    def frame(self, data: str | bytes, now: float) -> list[Action]:
        self.ping_sent = None
        try:
            frame = p.parse(data)
        except p.FrameError as exc:
            return [Send(p.error(str(exc)))]
        event = frame.event
        if event == "pusher:ping":
            return [Send(p.encode("pusher:pong", {}))]
        if event == "pusher:pong":
            return []
        if event == "pusher:subscribe":
            return self._subscribe(frame.data)
        if event == "pusher:unsubscribe":
            data_ = frame.data if isinstance(frame.data, dict) else {}
            channel = data_.get("channel")
            if not isinstance(channel, str):
                return []
            if channel in self.channels:
                del self.channels[channel]
            elif channel in self.pending:
                # Carried out after the subscription, in order; a new subscribe may follow.
                del self.pending[channel]
            else:
                return []
            return [Run(Unsubscribe(channel))]
        if event == "pusher:signin":
            return self._signin(frame.data)
        if event.startswith("client-"):
            return self._client_event(frame, now)
        return [Send(p.error(f"unsupported event {event[:64]!r}"))]

    def _subscribe(self, data: Any) -> list[Action]:
        if not isinstance(data, dict):
            return [Send(p.error("pusher:subscribe needs data with a channel"))]
        name = data.get("channel")
        if isinstance(name, str) and name.startswith(p.SERVER_TO_USER):
            # The node delivers a signed-in user's events without a subscription; this only
            # answers pusher-js, which subscribes to the channel after signin_success.
            if self.user is not None and name == p.user_channel(self.user):
                return [Send(p.subscription_succeeded(name))]
            message = "a #server-to-user- channel is only for the connection signed in as that user"
            return [Send(p.subscription_error(name, message, 403))]
        try:
            channel = p.check_channel(name)
        except p.FrameError as exc:
            return [Send(p.error(str(exc)))]
        if channel in self.channels or channel in self.pending:
            return []
        kind = p.kind(channel)
        member: p.ChannelMember | None = None
        if kind != "public":
            channel_data = data.get("channel_data") if kind == "presence" else None
            try:
                if kind == "presence":
                    member = p.parse_channel_data(channel_data)
                check_channel_auth(
                    self.app.key,
                    self.app.secret,
                    self.socket_id,
                    channel,
                    data.get("auth"),
                    channel_data if isinstance(channel_data, str) else None,
                )
            except p.FrameError as exc:
                return [Send(p.subscription_error(channel, str(exc), 400, "InvalidChannelData"))]
            except SignatureError as exc:
                return [Send(p.subscription_error(channel, f"Invalid signature: {exc}", 401))]
        self.pending[channel] = member
        return [Run(Subscribe(channel, member))]

    def _client_event(self, frame: p.Frame, now: float) -> list[Action]:
        channel = frame.channel
        # A pending channel too: its work runs after the subscription's, which the node
        # checks took effect.
        if channel is None or (channel not in self.channels and channel not in self.pending):
            return [Send(p.error(NOT_SUBSCRIBED))]
        if p.kind(channel) == "public" or channel.startswith(p.ENCRYPTED):
            return [Send(p.error("client events are only for private and presence channels"))]
        if not self.app.client_events:
            return [Send(p.error("client events are not enabled for this app"))]
        if len(frame.event) > p.MAX_EVENT_NAME:
            return [Send(p.error(f"event name must be at most {p.MAX_EVENT_NAME} characters"))]
        if len(p.dumps(frame.data).encode()) > p.MAX_EVENT_DATA:
            return [Send(p.error(f"event data must be at most {p.MAX_EVENT_DATA} bytes"))]
        if self.bucket is None:
            self.bucket = TokenBucket(CLIENT_EVENTS_PER_S, now)
        if not self.bucket.allow(now):
            return [
                Send(
                    p.error(
                        "client event rejected: rate limit exceeded",
                        p.ErrorCode.CLIENT_EVENT_REJECTED,
                    )
                )
            ]
        member = self.channels[channel] if channel in self.channels else self.pending[channel]
        user = member.user_id if member else None
        return [Run(ClientEvent(channel, frame.event, frame.data, user))]

    def _signin(self, data: Any) -> list[Action]:
        if self.user is not None:
            return [Send(p.error(f"this connection is already signed in as {self.user!r}"))]
        if not isinstance(data, dict):
            return [Send(p.error("pusher:signin needs data with auth and user_data"))]
        raw = data.get("user_data")
        if not isinstance(raw, str):
            return [Send(p.error("pusher:signin needs user_data, a JSON string"))]
        try:
            check_user_auth(self.app.key, self.app.secret, self.socket_id, data.get("auth"), raw)
        except SignatureError as exc:
            message = f"Invalid signature: {exc}"
            return [
                Send(p.error(message, p.CloseCode.UNAUTHORIZED)),
                Close(p.CloseCode.UNAUTHORIZED, message),
            ]
        try:
            user = p.parse_user_data(raw)
        except p.FrameError as exc:
            return [Send(p.error(str(exc)))]
        self.user = user.id
        return [Run(SignIn(user))]

    # -- answers -----------------------------------------------------------------------

    def admitted(self, result: object) -> list[Action]:
        timeout = int(self.activity_timeout_s)
        return [Send(p.connection_established(self.socket_id, timeout))]

    def done(self, work: Work) -> list[Action]:
        if isinstance(work, Subscribe):
            # The node sent subscription_succeeded itself (with the member list, in order
            # with the channel's events); the channel is now this socket's.
            self.pending.pop(work.channel, None)
            self.channels[work.channel] = work.member
        elif isinstance(work, Unsubscribe):
            # Of a channel that was pending when the client left it.
            self.channels.pop(work.channel, None)
        return []

    def failed(self, work: Work, code: str, message: str) -> list[Action]:
        if isinstance(work, SignIn):
            self.user = None  # nothing took effect: the client may sign in again
            return [Send(p.error(f"sign-in failed: {message}"))]
        if isinstance(work, Subscribe):
            self.pending.pop(work.channel, None)
            status, kind = _SUBSCRIPTION_ERRORS.get(code, (500, "ServerError"))
            return [Send(p.subscription_error(work.channel, message, status, kind))]
        return [Send(p.error(message))]

    def rate_limited(self, now: float, retry_at: float) -> list[Action]:
        return [Throttle(retry_at)]

    def tick(self, now: float, last_rx: float) -> list[Action]:
        """Ping after ``activity_timeout`` of silence; close 4201 without an answer."""
        if self.ping_sent is not None and self.ping_sent >= last_rx:
            if now - self.ping_sent >= PONG_TIMEOUT_S:
                return [Close(p.CloseCode.PONG_NOT_RECEIVED, "pong not received")]
            return []
        if now - last_rx >= self.activity_timeout_s:
            self.ping_sent = now
            return [Send(p.encode("pusher:ping", {}))]
        return []

    def expired(self) -> list[Action]:
        return []

    def large_ok(self, data: str | bytes) -> bool:
        return False

    def too_large(self, limit: int) -> list[Action]:
        return [Close(TOO_LARGE, f"frame larger than {limit} bytes")]
