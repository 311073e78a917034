"""The presence model: pure code, no I/O, no clock.

A user's visible presence is derived from three things: the connections it holds (each
``online`` or ``away``, the client's idle detection), the status it chose (``online`` means
automatic; ``away``, ``busy`` and ``offline``/invisible override), and whether it is inside
the offline grace after its last connection closed. :func:`effective_status` is the rule,
the same as Rocket.Chat's presence engine.

:class:`UserPresence` is one user's state machine. Every method takes ``now`` (milliseconds
on the store clock) and returns ``True`` when the user's *visible* presence changed, in which
case ``at`` was stamped. ``at`` strictly increases per user, so "keep the entry with the
larger ``at``" is a correct last-writer-wins merge even for two changes in one millisecond.
The Redis Lua scripts implement the same rules; one contract suite checks both stores.

Two extras travel with an entry. ``lastSeen`` is stamped when the visible status becomes
``offline`` (the last connection gone after the grace, or invisible chosen) and shown on
offline entries unless the user hid it. ``until`` is when a chosen status expires: then the
chosen status returns to automatic and the text clears, as an ordinary change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypedDict, TypeGuard

from hub.model.text import check_valid


class Status(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    BUSY = "busy"
    OFFLINE = "offline"


#: What a user may choose (``online`` = automatic, ``offline`` = invisible).
CHOSEN_STATUSES: frozenset[str] = frozenset(s.value for s in Status)
#: What a connection may report about itself.
CONNECTION_STATES: frozenset[str] = frozenset({Status.ONLINE.value, Status.AWAY.value})
#: Longest status text, in characters.
MAX_TEXT = 120
#: How far ahead a status may be set to expire (``until``): one year, in ms.
MAX_UNTIL_AHEAD_MS = 366 * 24 * 3600 * 1000
#: The values of ``lastSeen`` in a status frame and of ``HUB_LAST_SEEN``: who sees it.
LAST_SEEN_AUDIENCES: frozenset[str] = frozenset({"everyone", "nobody"})


class Entry(TypedDict, total=False):
    """A user's visible presence as it travels: websocket, pub/sub, REST."""

    id: str
    username: str
    name: str
    status: str
    text: str
    at: int
    member: bool
    lastSeen: int
    until: int


def effective_status(
    chosen: str, connection_states: Iterable[str], *, in_grace: bool, last: str
) -> str:
    """The status others see.

    ``offline`` without a live connection (unless inside the grace, where the last status
    holds); else the chosen status when it is not ``online``; else ``online`` when any
    connection is online, else ``away``.
    """
    states = list(connection_states)
    if not states:
        return last if in_grace else Status.OFFLINE.value
    if chosen != Status.ONLINE.value:
        return chosen
    return Status.ONLINE.value if Status.ONLINE.value in states else Status.AWAY.value


def infer_chosen(status: str, connection_states: Iterable[str]) -> str:
    """The chosen status that explains ``status`` given these live connections' states.

    Exact when the states are all of the user's connections; used to restore a user's
    choice after the store lost it (its connections are re-registered, its choice is not)."""
    states = list(connection_states)
    if not states or status == Status.ONLINE.value:
        return Status.ONLINE.value
    if status == Status.AWAY.value and all(s == Status.AWAY.value for s in states):
        return Status.ONLINE.value
    return status


def next_stamp(now: int, previous: int) -> int:
    """The ``at`` for a change at ``now``: never equal to or below the previous one."""
    return now if now > previous else previous + 1


def in_window(cursor: int | None, now: int, window_ms: int) -> TypeGuard[int]:
    """True when ``cursor`` is recent enough for a delta; the window's edge is inside."""
    return cursor is not None and cursor >= now - window_ms


def check_status(value: Any, *, field_name: str = "status") -> str:
    """Validate a chosen status; the error names the field and the accepted values."""
    if not isinstance(value, str) or value not in CHOSEN_STATUSES:
        raise ValueError(f"{field_name} must be one of online, away, busy, offline; got {value!r}")
    return value


def check_text(value: Any, *, field_name: str = "text") -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field_name} must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise ValueError(f"{field_name} must be at most {MAX_TEXT} characters, got {len(value)}")
    return check_valid(value, field_name)


def check_until(value: Any, now: int | None = None, *, field_name: str = "until") -> int:
    """Validate a status expiry in ms; with ``now``, also that it lies ahead, at most a
    year (:data:`MAX_UNTIL_AHEAD_MS`). The error names the field."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**53:
        raise ValueError(f"{field_name} must be a time in ms since the epoch, got {value!r}")
    if now is not None and value <= now:
        raise ValueError(f"{field_name} must be in the future, got {value} (now is {now})")
    if now is not None and value > now + MAX_UNTIL_AHEAD_MS:
        raise ValueError(f"{field_name} must be at most a year ahead, got {value} (now is {now})")
    return value


def check_audience(value: Any, *, field_name: str = "lastSeen") -> str:
    """Validate who may see a user's last seen: ``everyone`` or ``nobody``."""
    if not isinstance(value, str) or value not in LAST_SEEN_AUDIENCES:
        raise ValueError(f"{field_name} must be everyone or nobody, got {value!r}")
    return value


def check_state(value: Any) -> str:
    if not isinstance(value, str) or value not in CONNECTION_STATES:
        raise ValueError(f"state must be online or away, got {value!r}")
    return value


@dataclass
class UserPresence:
    """One user's presence; mutate through the methods, read :meth:`entry`."""

    id: str
    username: str = ""
    name: str = ""
    chosen: str = Status.ONLINE.value
    text: str = ""
    status: str = Status.OFFLINE.value
    at: int = 0
    connections: dict[str, str] = field(default_factory=dict)
    grace_until: int | None = None
    avatar: str = ""
    utc_offset: float = 0.0
    last_login: int = 0

    last_seen: int = 0
    until: int = 0
    hide_last_seen: bool = False

    def entry(self, *, show_last_seen: bool = True) -> Entry:
        """The entry others see; ``show_last_seen=False`` is ``HUB_LAST_SEEN=nobody``."""
        return entry_of(
            self.id, self.username, self.name, self.status, self.text, self.at,
            last_seen=self.last_seen if show_last_seen else 0,
            hide_last_seen=self.hide_last_seen, until=self.until,
        )  # fmt: skip

    def _visible(self) -> Visible:
        return (
            self.status, self.text, self.name, self.username,
            shown_last_seen(self.status, self.last_seen, self.hide_last_seen),
            shown_until(self.status, self.until),
        )  # fmt: skip

    def _settle(self, before: Visible, now: int) -> bool:
        self.status = effective_status(
            self.chosen,
            self.connections.values(),
            in_grace=self.grace_until is not None,
            last=self.status,
        )
        if self.status == Status.OFFLINE.value and before[0] != Status.OFFLINE.value:
            # Going offline (the last connection gone, or invisible chosen) is last seen.
            self.at = self.last_seen = next_stamp(now, self.at)
            return True
        if self._visible() == before:
            return False
        self.at = next_stamp(now, self.at)
        return True

    def connect(
        self,
        conn: str,
        state: str,
        now: int,
        *,
        username: str | None = None,
        name: str | None = None,
    ) -> bool:
        """A connection opened (a reconnect inside the grace cancels the pending offline)."""
        before = self._visible()
        if username:
            self.username = username
        if name:
            self.name = name
        self.connections[conn] = state
        self.grace_until = None
        return self._settle(before, now)

    def disconnect(self, conn: str, now: int, *, grace_ms: int) -> bool:
        """A connection closed; the last one starts the grace (``grace_ms=0``: none)."""
        return self.disconnect_many((conn,), now, grace_ms=grace_ms)

    def disconnect_many(self, conns: Iterable[str], now: int, *, grace_ms: int) -> bool:
        """Several connections closed at once (a node drained or reaped): one stamp at most.

        A connection that is not this user's (already gone) must not end or restart a
        running grace, so unknown ones are ignored."""
        present = [c for c in conns if c in self.connections]
        if not present:
            return False
        before = self._visible()
        for conn in present:
            del self.connections[conn]
        if not self.connections and grace_ms > 0 and self.status != Status.OFFLINE.value:
            self.grace_until = now + grace_ms
        elif not self.connections:
            self.grace_until = None
        return self._settle(before, now)

    def drop_all(self, now: int) -> bool:
        """Kick, ban, reaping: every connection goes and the grace is skipped."""
        before = self._visible()
        self.connections.clear()
        self.grace_until = None
        return self._settle(before, now)

    def expire_grace(self, now: int) -> bool:
        """End the grace if its deadline passed; the user becomes offline."""
        if self.grace_until is None or self.grace_until > now or self.connections:
            return False
        before = self._visible()
        self.grace_until = None
        return self._settle(before, now)

    def activity(self, conn: str, state: str, now: int) -> bool:
        if conn not in self.connections:
            return False
        before = self._visible()
        self.connections[conn] = state
        return self._settle(before, now)

    def set_status(
        self,
        now: int,
        *,
        status: str | None = None,
        text: str | None = None,
        until: int | None = None,
        hide_last_seen: bool | None = None,
    ) -> bool:
        """Set the chosen status and/or text; either replaces the expiry (``until``, or
        none). ``hide_last_seen`` is the user's own privacy choice (None keeps it)."""
        before = self._visible()
        if status is not None:
            self.chosen = status
        if text is not None:
            self.text = text
        if status is not None or text is not None:
            self.until = until or 0
        if hide_last_seen is not None:
            self.hide_last_seen = hide_last_seen
        return self._settle(before, now)

    def expire_status(self, now: int) -> bool:
        """At ``until`` the chosen status returns to automatic and the text clears."""
        if not self.until or self.until > now:
            return False
        before = self._visible()
        self.chosen = Status.ONLINE.value
        self.text = ""
        self.until = 0
        return self._settle(before, now)

    def set_profile(self, now: int, *, username: str | None, name: str | None) -> bool:
        before = self._visible()
        if username is not None:
            self.username = username
        if name is not None:
            self.name = name
        return self._settle(before, now)


#: What others see of a user: status, text, name, username, shown lastSeen, shown until.
Visible = tuple[str, str, str, str, int, int]


def shown_last_seen(status: str, last_seen: int, hidden: bool) -> int:
    """The ``lastSeen`` an entry carries: only when offline, known and not hidden (0: none)."""
    return last_seen if status == Status.OFFLINE.value and last_seen and not hidden else 0


def shown_until(status: str, until: int) -> int:
    """The ``until`` an entry carries: while an expiry is set and the user is not offline,
    so an invisible user's expiry does not give its choice away (0: none)."""
    return until if until and status != Status.OFFLINE.value else 0


def entry_of(
    uid: str, username: str, name: str, status: str, text: str, at: int, *,
    last_seen: int = 0, hide_last_seen: bool = False, until: int = 0,
) -> Entry:  # fmt: skip
    """An entry, with ``lastSeen`` and ``until`` only where the rules above show them."""
    entry: Entry = {
        "id": uid, "username": username, "name": name, "status": status, "text": text, "at": at,
    }  # fmt: skip
    seen = shown_last_seen(status, last_seen, hide_last_seen)
    if seen:
        entry["lastSeen"] = seen
    expires = shown_until(status, until)
    if expires:
        entry["until"] = expires
    return entry


def merge(entries: Mapping[str, Entry], incoming: Iterable[Entry]) -> dict[str, Entry]:
    """Last-writer-wins by ``at``: what a consumer does with deltas (duplicates harmless)."""
    out = dict(entries)
    for e in incoming:
        cur = out.get(e["id"])
        if cur is None or e["at"] >= cur["at"]:
            out[e["id"]] = e
    return out
