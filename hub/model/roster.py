"""The order of a room's members, and the numbers of a room: pure code, no I/O.

A room's members are listed online first, then away, then busy, then offline by last seen
(most recent first; a member whose last seen is unknown or hidden comes last); ties by
name, then by id. Every member has one **member key**, a string whose byte order (UTF-8,
so code-point order) is that order, so a store keeps a room as a sorted set of keys
(Redis: a sorted set with every score 0, read by lexicographic range and by rank) and the
Lua scripts build the same key from the same fields (``hub/stores/presence/lua/common.lua``).

A key is ``<rank><last seen><name>\\0<id>``: the status rank (``0`` online .. ``3`` offline),
for offline members twelve hex digits of ``2^48 - 1 - lastSeen`` (so a later last seen
sorts first), the name without control characters (so ``\\0`` ends it and a shorter name
sorts before a longer one it begins), then the id. Names compare by code point: ``Zoe``
comes before ``adam``.

:class:`Counts` is a scope's numbers: members online, away, busy, and all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.model.presence import Entry, Status, shown_last_seen

#: The status rank, the first character of a member key.
RANKS = {Status.ONLINE.value: "0", Status.AWAY.value: "1", Status.BUSY.value: "2",
         Status.OFFLINE.value: "3"}  # fmt: skip
STATUS_OF_RANK = {rank: status for status, rank in RANKS.items()}
#: Last seen values are milliseconds below 2^48 (the year 10889).
_SEEN_MAX = 2**48 - 1


def clean_name(name: str) -> str:
    """The name as a key holds it: control characters (``\\0`` among them) removed."""
    if all(ch >= " " for ch in name):
        return name
    return "".join(ch for ch in name if ch >= " ")


def member_key(status: str, last_seen: int, name: str, user: str) -> str:
    """The key that places ``user`` in a room's order; ``last_seen`` is the last seen
    others may see (0: none), used only when ``status`` is offline."""
    rank = RANKS.get(status, "3")
    if rank == "3":
        seen = min(max(last_seen, 0), _SEEN_MAX)
        return f"3{_SEEN_MAX - seen:012x}{clean_name(name)}\x00{user}"
    return f"{rank}{clean_name(name)}\x00{user}"


def key_of(entry: Entry) -> str:
    """The member key of the user an entry shows (its ``lastSeen`` is the shown one)."""
    return member_key(entry["status"], entry.get("lastSeen", 0), entry["name"], entry["id"])


def view_key(status: str, name: str, user: str, last_seen: int, hidden: bool, *,
             show: bool = True) -> str:  # fmt: skip
    """The member key from a user's stored presence (``show``: HUB_LAST_SEEN=everyone)."""
    seen = shown_last_seen(status, last_seen, hidden) if show else 0
    return member_key(status, seen, name, user)


def absent_entry(user: str) -> Entry:
    """The entry of a member the presence store never saw: offline, no name."""
    return {"id": user, "username": "", "name": "", "status": Status.OFFLINE.value,
            "text": "", "at": 0}  # fmt: skip


def user_of(key: str) -> str:
    """The user id inside a member key."""
    return key[key.index("\x00") + 1 :]


def status_of(key: str) -> str:
    """The status a member key ranks by."""
    return STATUS_OF_RANK.get(key[:1], Status.OFFLINE.value)


@dataclass(frozen=True, slots=True)
class Counts:
    """A scope's numbers: who is online, away or busy, and how many there are in all."""

    online: int = 0
    away: int = 0
    busy: int = 0
    total: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.online + other.online, self.away + other.away,
                      self.busy + other.busy, self.total + other.total)  # fmt: skip

    def moved(self, before: str | None, after: str | None) -> Counts:
        """The numbers after a member went from status ``before`` to ``after`` (None: not
        a member on that side)."""
        values = {"online": self.online, "away": self.away, "busy": self.busy}
        total = self.total
        if before is not None:
            total -= 1
            if before in values:
                values[before] -= 1
        if after is not None:
            total += 1
            if after in values:
                values[after] += 1
        return Counts(values["online"], values["away"], values["busy"], total)


ZERO = Counts()


@dataclass(frozen=True, slots=True)
class Part:
    """One store bucket's share of a room's numbers, with the sequence number of the last
    change it counts: of two reports of one bucket, the larger ``seq`` is the newer."""

    seq: int
    counts: Counts


def next_seq(previous: int, now_ms: int) -> int:
    """The sequence number of a bucket's next move of a room: above the previous one and
    never below the clock's (``now_ms * 1024``), so a room's numbers deleted with its last
    member and made again later still count up."""
    return max(previous + 1, now_ms * 1024)


def total_of(parts: dict[str, Part]) -> Counts:
    """The numbers of a scope from its buckets' shares."""
    out = ZERO
    for part in parts.values():
        out = out + part.counts
    return out
