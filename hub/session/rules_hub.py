"""The rules of the hub's own wire, ``/ws`` (``hub.v1.json`` or ``hub.v1.msgpack``).

The first frame is ``hello`` with a valid token, within the hello timeout, else close 4001;
more frames than the rate allows close 4008; a bad frame is answered with ``error`` naming
what was wrong (and the frame's ``ref``) and changes nothing; a frame that took effect is
answered with ``ack`` when it had a ``ref``. A full outbox is a resync by snapshot, and a
hub too busy to admit a hello closes 1013 (retry later).
"""

from __future__ import annotations

from typing import Any

from hub.model.auth import AuthError, Claims, verify_token
from hub.model.presence import Entry
from hub.session.core import TOO_LARGE, Action, Close, Limits, Refusal, Run, Send
from hub.wire import hub as p


class HubRules:
    """One ``/ws`` connection's wire state: its codec and its subscribed scopes."""

    __slots__ = ("codec", "limits", "scopes")

    needs_hello = True
    overflow_close = None  # resync by snapshot
    try_again = p.CloseCode.TRY_AGAIN
    restart_close = p.CloseCode.RESTARTING

    def __init__(self, codec: p.Codec, limits: Limits) -> None:
        self.codec = codec
        self.limits = limits
        # Subscribed scopes by key; None until the first sub (idle connections hold no dict).
        self.scopes: dict[tuple[str, ...], p.Scope] | None = None

    @property
    def binary(self) -> bool:
        return self.codec.binary

    # -- frames ------------------------------------------------------------------------

    def hello(self, data: str | bytes) -> Claims:
        try:
            msg = p.parse(data)
            if not isinstance(msg, p.Hello):
                raise AuthError("the first frame must be hello with a token")
            return verify_token(self.limits.secret, msg.token)
        except (AuthError, p.ProtocolError) as exc:
            raise Refusal(p.CloseCode.NOT_AUTHENTICATED, str(exc)[:120]) from None

    def frame(self, data: str | bytes, now: float) -> list[Action]:
        ref: Any = None
        try:
            msg = p.parse(data)
            ref = msg.ref
            return self._message(msg)
        except p.ProtocolError as exc:
            return [self._error(exc.code, exc.message, exc.ref if exc.ref is not None else ref)]

    def _message(self, msg: p.Message) -> list[Action]:
        if isinstance(msg, p.Ping):
            pong = {"op": "pong"} if msg.ref is None else {"op": "pong", "ref": msg.ref}
            return [Send(self.codec.encode(pong))]
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

    # -- answers -----------------------------------------------------------------------

    def admitted(self, result: tuple[str, Entry, int]) -> list[Action]:
        conn, user, cursor = result
        return [Send(self.codec.encode(p.ready(conn, user, cursor, self.limits.window_s)))]

    def done(self, work: p.Message) -> list[Action]:
        return [] if work.ref is None else [Send(self.codec.encode(p.ack(work.ref)))]

    def failed(self, work: p.Message, code: str, message: str) -> list[Action]:
        if isinstance(work, p.Sub) and self.scopes is not None:
            self.scopes.pop(work.scope.key(), None)  # a failed sub is no subscription
        return [self._error(code, message, work.ref)]

    def rate_limited(self, now: float, retry_at: float) -> list[Action]:
        return [Close(p.CloseCode.RATE_LIMITED, "too many frames")]

    def tick(self, now: float, last_rx: float) -> list[Action]:
        return []  # the transport's websocket pings keep /ws alive

    def expired(self) -> list[Action]:
        return [Close(p.CloseCode.NOT_AUTHENTICATED, "no hello within the time limit")]

    def too_large(self, limit: int) -> list[Action]:
        return [Close(TOO_LARGE, f"frame larger than {limit} bytes")]

    def large_ok(self, data: str | bytes) -> bool:
        """Only a ``sub`` of a ``users`` scope may be larger than the frame limit: a
        watchlist of up to 10,000 ids."""
        try:
            msg = p.parse(data)
        except p.ProtocolError:
            return False
        return isinstance(msg, p.Sub) and msg.scope.kind == "users"

    def error(self, code: str, message: str, ref: Any = None) -> str | bytes:
        return self.codec.encode(p.error(code, message, ref))

    def _error(self, code: str, message: str, ref: Any) -> Send:
        return Send(self.error(code, message, ref))
