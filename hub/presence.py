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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypedDict, TypeGuard

from hub.text import check_valid


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


class Entry(TypedDict, total=False):
    """A user's visible presence as it travels: websocket, pub/sub, REST."""

    id: str
    username: str
    name: str
    status: str
    text: str
    at: int
    member: bool


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
        raise ValueError(
            f"{field_name} must be one of online, away, busy, offline; got {value!r}"
        )
    return value


def check_text(value: Any, *, field_name: str = "text") -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field_name} must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise ValueError(f"{field_name} must be at most {MAX_TEXT} characters, got {len(value)}")
    return check_valid(value, field_name)


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

    def entry(self) -> Entry:
        return {
            "id": self.id,
            "username": self.username,
            "name": self.name,
            "status": self.status,
            "text": self.text,
            "at": self.at,
        }

    def _visible(self) -> tuple[str, str, str, str]:
        return (self.status, self.text, self.name, self.username)

    def _settle(self, before: tuple[str, str, str, str], now: int) -> bool:
        self.status = effective_status(
            self.chosen,
            self.connections.values(),
            in_grace=self.grace_until is not None,
            last=self.status,
        )
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

    def set_status(self, now: int, *, status: str | None = None, text: str | None = None) -> bool:
        before = self._visible()
        if status is not None:
            self.chosen = status
        if text is not None:
            self.text = text
        return self._settle(before, now)

    def set_profile(self, now: int, *, username: str | None, name: str | None) -> bool:
        before = self._visible()
        if username is not None:
            self.username = username
        if name is not None:
            self.name = name
        return self._settle(before, now)


def merge(entries: Mapping[str, Entry], incoming: Iterable[Entry]) -> dict[str, Entry]:
    """Last-writer-wins by ``at``: what a consumer does with deltas (duplicates harmless)."""
    out = dict(entries)
    for e in incoming:
        cur = out.get(e["id"])
        if cur is None or e["at"] >= cur["at"]:
            out[e["id"]] = e
    return out
