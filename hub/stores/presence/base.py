"""The store contract: what every backend (memory, Redis, Redis Cluster) promises.

A store holds every user's presence, the connections that keep it, the change index (a
sorted set by ``at``, trimmed to one window) and the node heartbeats. It also carries the
change feed: every operation that changes a user's visible presence publishes a
:class:`Batch` to every node's :meth:`PresenceStore.events` iterator (and, on Redis, to
the pub/sub channel other services read). Control messages (close this user's sockets)
travel the same way.

Each mutating call is one atomic step: on Redis, one Lua script in one round trip. The
store clock (Redis ``TIME`` on Redis) stamps ``at`` and makes cursors, so nodes never
disagree. When the backend is unreachable, calls raise :class:`StoreUnavailable`.

The store also keeps each room's **member order** and **numbers** (the room index), for
rooms too big to list: per bucket, a room's member keys (:mod:`hub.model.roster`) and its
share of the counts (online, away, busy, total), changed in the same atomic step as the
presence change that moves a member, so a status change costs O(1) per room of its user
whatever the rooms' sizes. Every such step also publishes :class:`Moves` (each member that
moved, with its old and new key and its bucket's new share of the counts, stamped with a
sequence number per room and bucket) for every node's room views.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from hub.model.presence import Entry, entry_of, shown_last_seen
from hub.model.roster import Part


class StoreUnavailable(RuntimeError):
    """The backend cannot be reached now; the caller answers ``unavailable`` / 503."""


@dataclass(frozen=True)
class Profile:
    """What a connection knows of its user (token claims or the registry)."""

    id: str
    username: str = ""
    name: str = ""
    avatar: str = ""
    utc_offset: float = 0.0


@dataclass(frozen=True)
class UserView:
    """A user's presence as read from the store, with the non-visible extras."""

    id: str
    username: str
    name: str
    status: str
    text: str
    at: int
    chosen: str
    avatar: str = ""
    utc_offset: float = 0.0
    last_login: int = 0
    connections: int = 0
    #: When the user last went offline (0: never, or ``HUB_LAST_SEEN=nobody``).
    last_seen: int = 0
    #: When the chosen status expires (0: it does not).
    until: int = 0
    #: The user chose to hide its last seen.
    hide_last_seen: bool = False

    def entry(self) -> Entry:
        return entry_of(
            self.id, self.username, self.name, self.status, self.text, self.at,
            last_seen=self.last_seen, hide_last_seen=self.hide_last_seen, until=self.until,
        )  # fmt: skip

    def shown_last_seen(self) -> int:
        """The last seen others may see: offline, known and not hidden (0: none)."""
        return shown_last_seen(self.status, self.last_seen, self.hide_last_seen)


@dataclass(frozen=True)
class Batch:
    """Changes made by one store operation; ``cursor`` is the store clock when published."""

    cursor: int
    users: list[Entry]


@dataclass(frozen=True, slots=True)
class RoomMove:
    """``user`` moved in ``room``'s order: ``before`` and ``after`` are its member keys
    ("": not a member on that side); ``part`` is its bucket's share of the room's numbers
    after the move, ``part.seq`` the move's place among the room's moves in that bucket."""

    room: str
    user: str
    before: str
    after: str
    part: Part


@dataclass(frozen=True)
class Moves:
    """What one store operation changed in the room index, from one ``bucket``: members
    moved, joined or left (``rooms``), with the entries of those users (what a window
    shows), and the bucket's new share of the numbers of all users (``totals``, when they
    changed too; a store may leave them out, and readers of them read them again after
    presence changes)."""

    cursor: int
    bucket: str
    rooms: list[RoomMove] = field(default_factory=list)
    users: list[Entry] = field(default_factory=list)
    totals: Part | None = None


@dataclass(frozen=True)
class Slice:
    """Consecutive members of a room's order, as read at once: ``items`` (member key and
    entry) start at index ``start``; ``at_end`` when they reach the last member; ``parts``
    is each bucket's share of the numbers at the read (its ``seq`` says which moves the read
    already holds)."""

    start: int
    items: list[tuple[str, Entry]]
    at_end: bool
    parts: dict[str, Part]


@dataclass(frozen=True)
class Control:
    """Close every socket of ``user`` on every node with ``code`` (4003 ban, 4004 kick)."""

    user: str
    code: int
    reason: str = ""


@dataclass(frozen=True)
class Gap:
    """The feed lost messages (reconnect): recover from the index by cursor."""


Event = Batch | Moves | Control | Gap


@dataclass(frozen=True)
class Changes:
    """An answer to "what changed since T": a delta or, outside the window, a snapshot."""

    users: list[UserView]
    cursor: int
    full: bool


@dataclass(frozen=True)
class LiveConnection:
    """A connection a node holds, for re-registering after the store lost its data."""

    conn: str
    profile: Profile
    state: str


class Liveness(StrEnum):
    """What a heartbeat found of its node in the store."""

    #: Registered, alive, its connections all held.
    KNOWN = "known"
    #: A sweep took its connections (its heartbeat expired), or it never registered; every
    #: user's own data (choices, profile, last seen) is intact.
    REAPED = "reaped"
    #: The store's data began after the node registered (the store epoch moved: a restart
    #: without persistence); what users chose may be gone with it.
    LOST = "lost"


@dataclass(frozen=True)
class Choice:
    """A user's choice as a node last saw it: what it offers back to a store that lost it.

    ``seen_at`` is the ``at`` of the entry it was read from, its version: a store holding a
    choice made later keeps that one."""

    user: str
    status: str
    text: str
    seen_at: int
    #: When the chosen status expires (0: it does not).
    until: int = 0


class PresenceStore(Protocol):
    """The backend contract. ``node`` ids and ``conn`` ids are opaque strings."""

    window_ms: int
    grace_ms: int

    async def start(self) -> None:
        """Connect and load scripts; call once before anything else."""

    async def close(self) -> None:
        """Release connections; the node's entries stay until removed or reaped."""

    async def now(self) -> int:
        """The store clock in milliseconds."""

    async def connect(self, node: str, conn: str, profile: Profile, state: str) -> UserView:
        """Register ``conn`` of ``profile.id`` on ``node``; returns the user's presence after.

        Cancels a pending offline grace. Updates username and name from a non-empty profile.
        Records the login time.
        """

    async def disconnect(self, node: str, conn: str, user: str, *, grace: bool = True) -> None:
        """Remove ``conn``; when it was the user's last, offline after the grace (or now)."""

    async def activity(self, node: str, conn: str, user: str, state: str) -> bool:
        """Set the idle state of one connection; False when the store does not know it."""

    async def set_status(
        self,
        user: str,
        *,
        status: str | None = None,
        text: str | None = None,
        until: int | None = None,
        hide_last_seen: bool | None = None,
    ) -> UserView | None:
        """Set the chosen status and/or text; None for an unknown user (nothing changes).

        A status or text replaces the expiry: ``until`` (ms on the store clock, ahead of
        it by at most a year, else ValueError naming ``until`` and nothing changes) or
        none. ``hide_last_seen`` sets the user's own last-seen privacy (None keeps it)."""

    async def expire_statuses(self) -> None:
        """Apply every status expiry that is due (any node may call; each applies once)."""

    async def set_profile(self, profile: Profile, *, create: bool = True) -> UserView | None:
        """Create or update a user's username, name, avatar and utcOffset."""

    async def drop_user(self, user: str) -> None:
        """Remove every connection of ``user`` everywhere; offline now, no grace."""

    async def heartbeat(self, node: str, ttl_ms: int, *, epoch: int | None) -> Liveness:
        """Mark ``node`` alive for ``ttl_ms`` and say what the store knew of it.

        ``epoch`` is the store epoch (:meth:`epoch`) the node registered under, None before
        it ever did. LOST when the store's data began after it, else REAPED when the store
        had let the node's connections go (or never had them), else KNOWN. A node told
        anything but KNOWN calls :meth:`restore`."""

    async def restore(
        self,
        node: str,
        live: Sequence[LiveConnection],
        *,
        epoch: int,
        choices: Sequence[Choice] = (),
    ) -> None:
        """Re-register the connections ``node`` still holds, and nothing the store kept.

        A user the store does not know at all gets the profile of its connection; a known
        user's profile stays as stored. A choice in ``choices`` is applied only where the
        store lost it (the user's data began after ``epoch``, the store epoch the node
        registered under) and holds no choice made after its ``seen_at``: decided in the
        same atomic step as the write, so no newer choice is ever overwritten. A due
        ``until`` restores what its expiry leaves (automatic, no text)."""

    async def node_connections(self, node: str) -> dict[str, str]:
        """The connections the store holds for ``node``: conn -> user."""

    async def epoch(self) -> int:
        """When the store's data began (a restart without persistence moves it): a cursor
        from before it cannot be answered with a delta."""

    async def nodes_alive(self) -> int:
        """How many nodes' heartbeats have not expired."""

    async def sweep(self) -> None:
        """End expired graces and reap nodes whose heartbeat expired (any node may call)."""

    async def remove_node(self, node: str, *, grace: bool) -> None:
        """Remove every connection of ``node`` (drain: with grace; reaping: without)."""

    async def changes(self, since: int | None) -> Changes:
        """Users changed at or after ``since`` (offline ones included) when it is inside the
        window, else a full snapshot of every user not offline."""

    async def users(self, ids: Sequence[str]) -> list[UserView]:
        """The known users among ``ids``, in the given order, any status."""

    async def get(self, user: str) -> UserView | None:
        """One user, or None when unknown."""

    async def find_username(self, username: str) -> str | None:
        """The id of the user with this username (case-insensitive), or None."""

    async def publish_control(self, message: Control) -> None:
        """Send a control message to every node."""

    # -- the room index ------------------------------------------------------------------

    async def room_add(self, room: str, users: Sequence[str]) -> int:
        """Place ``users`` in ``room``'s order and numbers (idempotent: a member already
        placed is left as it is); returns how many were placed now."""

    async def room_remove(self, room: str, users: Sequence[str]) -> int:
        """Take ``users`` out of ``room``'s order and numbers; returns how many were in."""

    async def room_counts(self, room: str | None) -> dict[str, Part]:
        """Each bucket's share of ``room``'s numbers (None: of every known user)."""

    async def room_slice(self, room: str, start: int, count: int) -> Slice:
        """Up to ``count`` members of ``room`` from index ``start`` on. On a store of many
        buckets the slice may begin a little away from ``start`` when members move during
        the read: ``Slice.start`` is exact."""

    async def room_after(self, room: str, key: str, count: int) -> Slice:
        """Up to ``count`` members of ``room`` after the member key ``key`` (a page after a
        cursor: members moving meanwhile never shift it)."""

    def events(self) -> AsyncIterator[Event]:
        """This node's feed: every batch and control message, and a Gap after lost ones."""
        ...
