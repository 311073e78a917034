"""The websocket wire protocol: frames <-> messages. Pure: no sockets, no asyncio.

Two codecs share one frame model: ``hub.v1.json`` (text frames) and ``hub.v1.msgpack``
(binary frames). :func:`parse` turns raw client data into a typed message or raises
:class:`ProtocolError` naming what was wrong; the ``encode_*`` helpers build server frames.
Every frame is a map with an ``op``; any client frame may carry a ``ref`` which the server
echoes in its ``ack`` or ``error``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from functools import cached_property
from typing import Any

import msgpack

from hub.model.presence import (
    Entry,
    check_audience,
    check_state,
    check_status,
    check_text,
    check_until,
)
from hub.model.text import find_invalid, problem

JSON = "hub.v1.json"
MSGPACK = "hub.v1.msgpack"
SUBPROTOCOLS = (JSON, MSGPACK)

#: Ids in one ``users`` subscription (a watchlist).
MAX_IDS = 10_000
#: A ``users`` scope longer than this is named ``{"users": true}`` in ``delta`` frames (its
#: snapshot echoes every id): a 10,000-id watchlist's deltas stay the size of their changes.
ECHO_IDS = 100
MAX_ID_LENGTH = 256
MAX_ROOM_LENGTH = 128
#: Most members one window (``range: [from, to]``) may hold.
MAX_WINDOW = 500
#: The largest index a window may start at or reach.
MAX_INDEX = 2**31 - 1
#: A numeric ``ref`` (and a ``since`` cursor) must fit a signed 64-bit integer, so every
#: codec (msgpack, a JavaScript client's BigInt) can carry it back.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class CloseCode(IntEnum):
    """Websocket close codes the hub uses (4000-4999 are the application's)."""

    NORMAL = 1000
    TOO_LARGE = 1009
    RESTARTING = 1012
    TRY_AGAIN = 1013
    NOT_AUTHENTICATED = 4001
    DEACTIVATED = 4003
    DISCONNECTED = 4004
    RATE_LIMITED = 4008


#: The close code a client sends when its user signs out: the connection skips the offline
#: grace (the hub never sends it, so it is not one of the CloseCode values above).
SIGNED_OUT_CLOSE = 4000


class ErrorCode(StrEnum):
    BAD_FRAME = "bad_frame"
    UNKNOWN_OP = "unknown_op"
    BAD_FIELD = "bad_field"
    NOT_AUTHENTICATED = "not_authenticated"
    FORBIDDEN = "forbidden"
    UNAVAILABLE = "unavailable"
    NOT_SUBSCRIBED = "not_subscribed"
    LIMIT = "limit"


class ProtocolError(ValueError):
    """A client frame the hub refuses; recoverable unless said otherwise."""

    def __init__(self, code: ErrorCode, message: str, ref: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


# -- scopes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What a subscription covers: everyone, a list of users, or one room; and what of it
    the subscriber gets: every entry (``list``), the numbers only (``counts``), or a window
    of a room's ordered members (``range``, the window's first and last index)."""

    kind: str  # "all" | "users" | "room"
    users: tuple[str, ...] = ()
    room: str = ""
    view: str = "list"  # "list" | "counts" | "range"
    window: tuple[int, int] = (0, 0)

    def wire(self) -> dict[str, Any]:
        if self.kind == "all":
            return {"all": True, "counts": True} if self.view == "counts" else {"all": True}
        if self.kind == "users":
            return {"users": list(self.users)}
        if self.view == "counts":
            return {"room": self.room, "counts": True}
        if self.view == "range":
            return {"room": self.room, "range": list(self.window)}
        return {"room": self.room}

    def delta_wire(self) -> dict[str, Any]:
        """The scope as ``delta`` frames name it: a long watchlist as ``{"users": true}``."""
        if self.kind == "users" and len(self.users) > ECHO_IDS:
            return {"users": True}
        return self.wire()

    def key(self) -> tuple[str, ...]:
        """Equal for the scopes one ``sub`` replaces and one ``unsub`` ends: a connection
        has one window per room, whatever its range (``range`` moves it)."""
        return self._key

    @cached_property
    def _key(self) -> tuple[str, ...]:
        # Cached: a 10,000-id watchlist would sort its ids on every call.
        if self.kind == "all":
            return ("all", "counts") if self.view == "counts" else ("all",)
        if self.kind == "room":
            return ("room", self.room) if self.view == "list" else ("room", self.room, self.view)
        return ("users", *sorted(set(self.users)))

    @cached_property
    def name(self) -> str:
        """:meth:`key` as one string (a string caches its hash; a long tuple does not)."""
        return "\x1f".join(self._key)

    @cached_property
    def token(self) -> str:
        """A string naming the scope's frames: equal scopes encode equal deltas (a string
        caches its hash, which a 10,000-id tuple does not)."""
        return json.dumps(self.delta_wire(), separators=(",", ":"), sort_keys=True)


ALL = Scope("all")
COUNTS_ALL = Scope("all", view="counts")


# -- client messages -----------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    token: str
    ref: Any = None


@dataclass(frozen=True)
class SetStatus:
    """``until``: when the status expires (ms); ``last_seen``: who sees it (everyone or
    nobody; None keeps the user's choice)."""

    status: str | None
    text: str | None
    ref: Any = None
    until: int | None = None
    last_seen: str | None = None


@dataclass(frozen=True)
class Activity:
    state: str
    ref: Any = None


@dataclass(frozen=True)
class Sub:
    scope: Scope
    since: int | None = None
    ref: Any = None


@dataclass(frozen=True)
class Unsub:
    scope: Scope
    ref: Any = None


@dataclass(frozen=True)
class Range:
    """Move this connection's member window of ``room`` to ``window`` (first, last index)."""

    room: str
    window: tuple[int, int]
    ref: Any = None


@dataclass(frozen=True)
class Join:
    room: str
    ref: Any = None


@dataclass(frozen=True)
class Leave:
    room: str
    ref: Any = None


@dataclass(frozen=True)
class Ping:
    ref: Any = None


@dataclass(frozen=True)
class Pong:
    ref: Any = None


Message = Hello | SetStatus | Activity | Sub | Unsub | Range | Join | Leave | Ping | Pong


def decode(data: str | bytes) -> Any:
    """Raw frame -> Python value; JSON for text, msgpack for binary."""
    try:
        if isinstance(data, str):
            return json.loads(data)
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (
        ValueError,
        RecursionError,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
    ) as exc:
        # RecursionError: deeply nested JSON; left uncaught it would end the session.
        kind = "JSON" if isinstance(data, str) else "msgpack"
        raise ProtocolError(ErrorCode.BAD_FRAME, f"frame is not valid {kind}: {exc}") from None


def _ref(frame: dict[str, Any]) -> Any:
    """The frame's ``ref``: None, a string of at most MAX_ID_LENGTH characters of valid
    Unicode, or an integer within int64. Anything else is refused without being echoed."""
    ref = frame.get("ref")
    if ref is None:
        return None
    if isinstance(ref, str):
        if len(ref) > MAX_ID_LENGTH:
            raise ProtocolError(
                ErrorCode.BAD_FIELD, f"ref must be at most {MAX_ID_LENGTH} characters"
            )
        message = problem("ref", ref)
        if message is not None:
            raise ProtocolError(ErrorCode.BAD_FIELD, message)
        return ref
    if isinstance(ref, int) and not isinstance(ref, bool):
        if not INT64_MIN <= ref <= INT64_MAX:
            raise ProtocolError(
                ErrorCode.BAD_FIELD, "ref must be a string or an integer within 64 bits"
            )
        return ref
    raise ProtocolError(
        ErrorCode.BAD_FIELD,
        f"ref must be a string or an integer, got {type(ref).__name__}",
    )


def _field_error(message: str, ref: Any) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_FIELD, message, ref)


def _ident(value: Any, name: str, ref: Any, limit: int = MAX_ID_LENGTH) -> str:
    if not isinstance(value, str) or not value:
        raise _field_error(f"{name} must be a non-empty string, got {value!r}", ref)
    if len(value) > limit:
        raise _field_error(f"{name} must be at most {limit} characters", ref)
    # Valid Unicode: checked once for the whole frame by parse().
    return value


def parse_window(value: Any, ref: Any) -> tuple[int, int]:
    """``[from, to]``: two integers, 0 <= from <= to, at most MAX_WINDOW members."""
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise _field_error(f"range must be [from, to], two integers; got {value!r}"[:200], ref)
    first, last = value
    if not 0 <= first <= last <= MAX_INDEX:
        raise _field_error(f"range must have 0 <= from <= to; got [{first}, {last}]"[:200], ref)
    if last - first + 1 > MAX_WINDOW:
        raise _field_error(
            f"range may hold at most {MAX_WINDOW} members; got [{first}, {last}]", ref
        )
    return first, last


def parse_scope(frame: dict[str, Any], ref: Any) -> Scope:
    given = [k for k in ("all", "users", "room") if k in frame]
    if len(given) != 1:
        raise _field_error('give exactly one of all: true, users: [...], room: "..."', ref)
    counts = "counts" in frame
    if counts and frame["counts"] is not True:
        raise _field_error(f"counts must be true, got {frame['counts']!r}"[:200], ref)
    if counts and "range" in frame:
        raise _field_error("give counts: true or range: [from, to], not both", ref)
    if given[0] == "all":
        if frame["all"] is not True:
            raise _field_error(f"all must be true, got {frame['all']!r}", ref)
        if "range" in frame:
            raise _field_error("range is for a room: give room with range", ref)
        return COUNTS_ALL if counts else ALL
    if given[0] == "room":
        room = _ident(frame["room"], "room", ref, MAX_ROOM_LENGTH)
        if counts:
            return Scope("room", room=room, view="counts")
        if "range" in frame:
            return Scope("room", room=room, view="range", window=parse_window(frame["range"], ref))
        return Scope("room", room=room)
    if counts or "range" in frame:
        raise _field_error("counts and range are for all or a room, not users", ref)
    users = frame["users"]
    if not isinstance(users, list) or not users:
        raise _field_error("users must be a non-empty list of user ids", ref)
    if len(users) > MAX_IDS:
        raise _field_error(f"users may list at most {MAX_IDS} ids, got {len(users)}", ref)
    return Scope("users", users=tuple(_ident(u, "users[]", ref) for u in users))


def parse(data: str | bytes) -> Message:
    """Parse one client frame; raises :class:`ProtocolError` naming the problem."""
    frame = decode(data)
    if not isinstance(frame, dict):
        raise ProtocolError(ErrorCode.BAD_FRAME, "frame must be a map with an op")
    ref = _ref(frame)
    # Every string of the frame, keys too, must be valid Unicode (JSON can carry a lone
    # surrogate, which no encoder downstream accepts): refused here, naming the field.
    # Only a JSON escape (\uXXXX) can make one: websocket text is UTF-8, and msgpack
    # strings are decoded as strict UTF-8, which refuses encoded surrogates.
    if isinstance(data, str) and "\\u" in data:
        invalid = find_invalid(frame)
        if invalid is not None:
            raise _field_error(invalid, ref)
    op = frame.get("op")
    try:
        if op == "hello":
            return Hello(_ident(frame.get("token"), "token", ref, 8192), ref)
        if op == "status":
            status = frame.get("status")
            text = frame.get("text")
            until = frame.get("until")
            last_seen = frame.get("lastSeen")
            if until is not None and status is None and text is None:
                raise _field_error("until needs a status and/or a text to expire", ref)
            if status is None and text is None and last_seen is None:
                raise _field_error("status frame needs status, text and/or lastSeen", ref)
            return SetStatus(
                None if status is None else check_status(status),
                None if text is None else check_text(text),
                ref,
                None if until is None else check_until(until),
                None if last_seen is None else check_audience(last_seen),
            )
        if op == "activity":
            return Activity(check_state(frame.get("state")), ref)
        if op in ("sub", "unsub"):
            scope = parse_scope(frame, ref)
            if op == "unsub":
                return Unsub(scope, ref)
            since = frame.get("since")
            if since is not None and (
                isinstance(since, bool)
                or not isinstance(since, int)
                or not INT64_MIN <= since <= INT64_MAX
            ):
                raise _field_error(
                    f"since must be a cursor (an integer within 64 bits), got {since!r}"[:200],
                    ref,
                )
            if since is not None and scope.view != "list":
                raise _field_error("since is for list subscriptions, not counts or range", ref)
            return Sub(scope, since, ref)
        if op == "range":
            room = _ident(frame.get("room"), "room", ref, MAX_ROOM_LENGTH)
            return Range(room, parse_window(frame.get("range"), ref), ref)
        if op in ("join", "leave"):
            room = _ident(frame.get("room"), "room", ref, MAX_ROOM_LENGTH)
            return Join(room, ref) if op == "join" else Leave(room, ref)
        if op == "ping":
            return Ping(ref)
        if op == "pong":
            return Pong(ref)
    except ProtocolError:
        raise
    except ValueError as exc:
        raise _field_error(str(exc), ref) from None
    raise ProtocolError(ErrorCode.UNKNOWN_OP, f"unknown op {op!r}", ref)


# -- server frames -------------------------------------------------------------------------


class Codec:
    """Encodes server frames for one subprotocol."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.binary = name == MSGPACK

    def encode(self, frame: dict[str, Any]) -> str | bytes:
        if self.binary:
            packed: bytes = msgpack.packb(frame, use_bin_type=True)
            return packed
        return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


JSON_CODEC = Codec(JSON)
MSGPACK_CODEC = Codec(MSGPACK)


def codec_for(offered: list[str]) -> Codec:
    """The codec for the client's offered subprotocols; JSON when none is asked."""
    for name in offered:
        if name == MSGPACK:
            return MSGPACK_CODEC
        if name == JSON:
            return JSON_CODEC
    return JSON_CODEC


def ready(conn: str, user: Entry, cursor: int, window_s: float) -> dict[str, Any]:
    window: float | int = int(window_s) if float(window_s).is_integer() else window_s
    return {"op": "ready", "conn": conn, "user": user, "cursor": cursor, "window": window}


def snapshot(
    scope: Scope,
    full: bool,
    users: list[Entry],
    cursor: int,
    *,
    unknown: list[str] | None = None,
    total: int | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """A subscription's state. ``unknown``: the ids of a ``users`` scope the hub never saw;
    ``total`` and ``version``: a window's member count and the version its ``window``
    frames continue from."""
    frame: dict[str, Any] = {"op": "snapshot", "scope": scope.wire(), "full": full,
                             "users": users, "cursor": cursor}  # fmt: skip
    if unknown is not None:
        frame["unknown"] = unknown
    if total is not None:
        frame["total"] = total
    if version is not None:
        frame["v"] = version
    return frame


def delta(scope: Scope, users: list[Entry], cursor: int) -> dict[str, Any]:
    return {"op": "delta", "scope": scope.delta_wire(), "users": users, "cursor": cursor}


def counts(scope: Scope, online: int, away: int, busy: int, total: int, cursor: int
           ) -> dict[str, Any]:  # fmt: skip
    return {"op": "counts", "scope": scope.wire(), "online": online, "away": away,
            "busy": busy, "total": total, "cursor": cursor}  # fmt: skip


def window(
    scope: Scope, version: int, ops: list[dict[str, Any]], total: int, cursor: int
) -> dict[str, Any]:
    """Operations on a member window, applied in order at indexes inside the window; a
    client applies a frame whose ``v`` is above the version it holds, and ignores others."""
    return {"op": "window", "scope": scope.wire(), "v": version, "ops": ops, "total": total,
            "cursor": cursor}  # fmt: skip


def ack(ref: Any) -> dict[str, Any]:
    return {"op": "ack", "ref": ref}


def error(code: str, message: str, ref: Any = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"op": "error", "code": code, "message": message}
    if ref is not None:
        frame["ref"] = ref
    return frame
