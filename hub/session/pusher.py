"""The rules of one Pusher connection (pure): frames and the clock in, actions out.

:class:`PusherSession` checks every client frame (names, auth signatures, channel data,
client-event permissions and rate) and answers with actions for the transport to carry out;
it never touches a socket or the store. :meth:`PusherSession.tick` says when to ping an
idle client and when to give up on one that does not answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hub.model.pusher_auth import SignatureError, check_channel_auth
from hub.ops.apps import App
from hub.wire import pusher as p

#: How long a client has to answer the server's ping, seconds (pusher-js: 30 s).
PONG_TIMEOUT_S = 30.0
#: Client events per second per connection, as Pusher allows.
CLIENT_EVENTS_PER_S = 10.0


@dataclass(frozen=True, slots=True)
class Send:
    text: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    channel: str
    member: p.Member | None = None


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
class Close:
    code: int
    reason: str


Action = Send | Subscribe | Unsubscribe | ClientEvent | Close


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


@dataclass
class PusherSession:
    app: App
    socket_id: str
    activity_timeout_s: float
    now: float
    #: channel -> the presence member this socket is (None on other channels).
    channels: dict[str, p.Member | None] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    ping_sent: float | None = None

    def __post_init__(self) -> None:
        self.last_seen = self.now
        self.bucket = TokenBucket(CLIENT_EVENTS_PER_S, self.now)

    def opened(self) -> list[Action]:
        return [Send(p.connection_established(self.socket_id, int(self.activity_timeout_s)))]

    def tick(self, now: float) -> list[Action]:
        """Ping after ``activity_timeout`` of silence; close 4201 without a pong."""
        if self.ping_sent is not None:
            if now - self.ping_sent >= PONG_TIMEOUT_S:
                return [Close(p.Close.PONG_NOT_RECEIVED, "pong not received")]
            return []
        if now - self.last_seen >= self.activity_timeout_s:
            self.ping_sent = now
            return [Send(p.encode("pusher:ping", {}))]
        return []

    def next_deadline(self) -> float:
        if self.ping_sent is not None:
            return self.ping_sent + PONG_TIMEOUT_S
        return self.last_seen + self.activity_timeout_s

    def receive(self, raw: str | bytes, now: float) -> list[Action]:
        self.last_seen = now
        self.ping_sent = None
        try:
            frame = p.parse(raw)
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
            data = frame.data if isinstance(frame.data, dict) else {}
            channel = data.get("channel")
            if not isinstance(channel, str) or channel not in self.channels:
                return []
            del self.channels[channel]
            return [Unsubscribe(channel)]
        if event.startswith("client-"):
            return self._client_event(frame)
        return [Send(p.error(f"unsupported event {event[:64]!r}"))]

    def _subscribe(self, data: Any) -> list[Action]:
        if not isinstance(data, dict):
            return [Send(p.error("pusher:subscribe needs data with a channel"))]
        try:
            channel = p.check_channel(data.get("channel"))
        except p.FrameError as exc:
            return [Send(p.error(str(exc)))]
        if channel in self.channels or channel in self.pending:
            return []
        kind = p.kind(channel)
        member: p.Member | None = None
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
        self.pending.add(channel)
        return [Subscribe(channel, member)]

    def subscribed(self, channel: str, member: p.Member | None) -> None:
        """The transport finished a subscription."""
        self.pending.discard(channel)
        self.channels[channel] = member

    def refused(self, channel: str) -> None:
        self.pending.discard(channel)

    def _client_event(self, frame: p.Frame) -> list[Action]:
        channel = frame.channel
        if channel is None or channel not in self.channels:
            return [Send(p.error("client events need a channel this connection subscribed to"))]
        if p.kind(channel) == "public" or channel.startswith(p.ENCRYPTED):
            return [Send(p.error("client events are only for private and presence channels"))]
        if not self.app.client_events:
            return [Send(p.error("client events are not enabled for this app"))]
        if len(frame.event) > p.MAX_EVENT_NAME:
            return [Send(p.error(f"event name must be at most {p.MAX_EVENT_NAME} characters"))]
        if len(p.dumps(frame.data).encode()) > p.MAX_EVENT_DATA:
            return [Send(p.error(f"event data must be at most {p.MAX_EVENT_DATA} bytes"))]
        if not self.bucket.allow(self.last_seen):
            return [
                Send(
                    p.error(
                        "client event rejected: rate limit exceeded",
                        p.ErrorCode.CLIENT_EVENT_REJECTED,
                    )
                )
            ]
        member = self.channels[channel]
        return [ClientEvent(channel, frame.event, frame.data, member.user_id if member else None)]
