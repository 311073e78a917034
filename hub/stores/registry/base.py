"""The registry contract: who exists (users) and who belongs where (rooms).

The presence store knows who is online; the registry knows who *exists*: a user's account
(username, name, avatar, roles, tags, metadata, type, utcOffset, activation, last login, a
password hash) and the rooms with their members. Both backends (memory and Redis) keep the
same promises, checked by one contract suite.

Users have two orders: by creation (``created``, ties broken by id) and by username
(case-insensitive, ties broken by id). Each order is a sorted index, so a page by rank or a
page after a keyset cursor costs O(log N + k), never a walk over every user.

Room membership is per *user*, not per connection: a user stays a member until it leaves,
is removed or the room is deleted, so a dead node leaves nothing to clean. Each membership
change is stamped with ``at`` (milliseconds on the backend clock, the same clock as the
presence store) and kept in a per-room log trimmed to one window, which answers "who
joined or left since T". Membership changes travel to every node as :class:`RoomEvent`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal, Protocol

from hub.model.presence import Entry
from hub.model.text import check_all, check_valid

#: What a user may be (Rocket.Chat's ``type``).
USER_TYPES: frozenset[str] = frozenset({"user", "bot", "app"})
#: The metadata of most users: one shared, read-only empty map (no dict per account).
NO_METADATA: Mapping[str, Any] = MappingProxyType({})
#: Namespace of the stable uuid each account shows (Agora's ``uuid``), derived from its id.
USER_UUID_NS = uuid.UUID("0d5c3f1e-8b1a-4c52-9e61-3f7b9d2a4c10")

Order = Literal["created", "username"]


class Conflict(ValueError):
    """A unique field is taken; ``field`` says which (``id``, ``username`` or ``room``)."""

    def __init__(self, field_name: str, value: str) -> None:
        super().__init__(f"{field_name} {value!r} already exists")
        self.field = field_name
        self.value = value


class RoomLimitReached(ValueError):
    """A ``join`` would create a room past a limit; ``scope`` is ``user`` or ``hub``."""

    def __init__(self, scope: str, limit: int) -> None:
        if scope == "user":
            message = f"room limit reached: a user may create at most {limit} rooms by joining"
        else:
            message = f"room limit reached: this hub holds at most {limit} rooms"
        super().__init__(message)
        self.scope = scope
        self.limit = limit


@dataclass(frozen=True)
class RoomLimits:
    """Caps on the rooms a ``join`` may create (0: no cap). Rooms created by an admin
    count towards ``total`` but are never refused."""

    per_user: int = 0
    total: int = 0


NO_LIMITS = RoomLimits()


class Admission(StrEnum):
    """What the registry says when a user connects (:meth:`Registry.admit`)."""

    OK = "ok"
    CREATED = "created"
    DEACTIVATED = "deactivated"
    UNKNOWN = "unknown"
    TAKEN = "taken"


@dataclass(frozen=True, slots=True)
class User:
    """A registered user; the password hash is stored apart and never part of this.

    Slotted, with shared empty metadata: with auto-registration every connected user has
    one, so its size counts per connection."""

    id: str
    username: str
    name: str = ""
    avatar: str = ""
    roles: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=lambda: NO_METADATA)
    type: str = "user"
    utc_offset: float = 0.0
    created: int = 0
    updated: int = 0
    activated: bool = True
    last_login: int = 0

    @property
    def uuid(self) -> str:
        """A stable uuid for the account (derived from its id, so never stored)."""
        return str(uuid.uuid5(USER_UUID_NS, self.id))


@dataclass(frozen=True)
class UserChanges:
    """Fields to change on a user; None leaves a field as it is (username is fixed)."""

    name: str | None = None
    avatar: str | None = None
    roles: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    metadata: Mapping[str, Any] | None = None
    type: str | None = None
    utc_offset: float | None = None


@dataclass(frozen=True)
class Room:
    id: str
    name: str
    created: int
    updated: int


@dataclass(frozen=True)
class MemberChange:
    """The last membership change of ``user`` in a room, at ``at``."""

    user: str
    member: bool
    at: int


@dataclass(frozen=True)
class RoomEvent:
    """Membership changes of one room, for every node: entries carry ``member``."""

    room: str
    entries: list[Entry]
    cursor: int


@dataclass(frozen=True)
class RoomGap:
    """The room feed lost messages: reload member sets and resync room subscribers."""


RoomFeedEvent = RoomEvent | RoomGap


# -- index keys --------------------------------------------------------------------------
# Both backends order users by these strings (byte order), so both list users the same way.


def created_key(created: int, user: str) -> str:
    return f"{created:015d}:{user}"


def username_key(username: str, user: str) -> str:
    return f"{username.lower()}\x00{user}"


def id_of(key: str, order: Order) -> str:
    """The user id inside an index key."""
    if order == "created":
        return key.split(":", 1)[1]
    return key.split("\x00", 1)[1]


def clean_username(value: str) -> str:
    """A username from a token, without the control characters the indexes rely on."""
    return "".join(ch for ch in value if ch >= " " and ch != "\x7f")


def check_user(user: User) -> None:
    """Every text of an account must be valid Unicode (:class:`~hub.model.text.InvalidText`)."""
    for name in ("id", "username", "name", "avatar", "type"):
        check_valid(getattr(user, name), name)
    check_all(list(user.roles), "roles")
    check_all(list(user.tags), "tags")
    check_all(dict(user.metadata), "metadata")


def check_changes(changes: UserChanges) -> None:
    for name, value in vars(changes).items():
        if value is not None:
            check_all(list(value) if isinstance(value, tuple) else value, name)


def check_room(room: str | None, name: str | None = None) -> None:
    if room is not None:
        check_valid(room, "room")
    if name is not None:
        check_valid(name, "name")


class Registry(Protocol):
    """The backend contract for users and rooms."""

    window_ms: int

    async def start(self) -> None:
        """Connect and load scripts; call once before anything else."""

    async def close(self) -> None:
        """Release connections."""

    # -- users ---------------------------------------------------------------------

    async def admit(self, user: User, *, auto_register: bool) -> Admission:
        """A connect of ``user.id``: OK (last login recorded), DEACTIVATED, UNKNOWN (not
        registered and ``auto_register`` off), CREATED (registered from ``user`` now) or
        TAKEN (``user.username`` belongs to another user). One round trip when known."""

    async def access(self, user: str) -> bool | None:
        """True when active, False when deactivated, None when unknown (one read)."""

    async def create(self, user: User, *, password_hash: str = "") -> User:
        """Register ``user`` (created/updated stamped now); :class:`Conflict` when the id
        or the username (case-insensitive) is taken."""

    async def get(self, user: str) -> User | None: ...

    async def get_many(self, ids: Sequence[str]) -> list[User]:
        """The registered users among ``ids``, in the given order."""

    async def find_username(self, username: str) -> str | None:
        """The id of the user with this username (case-insensitive), or None."""

    async def update(self, user: str, changes: UserChanges) -> User | None: ...

    async def set_activated(self, user: str, activated: bool) -> User | None: ...

    async def set_password(self, user: str, password_hash: str) -> bool: ...

    async def password_hash(self, user: str) -> str | None:
        """The stored hash ("" when none was set), None for an unknown user."""

    async def delete(self, user: str) -> User | None:
        """Remove a user; returns what it was, None when unknown."""

    async def count(self) -> int: ...

    async def ordered(self, order: Order, start: int, stop: int) -> list[str]:
        """Ids at ranks ``start`` to ``stop - 1`` of ``order``."""

    async def after(self, order: Order, key: str | None, limit: int) -> list[tuple[str, str]]:
        """Up to ``limit`` (index key, id) pairs of ``order`` strictly after ``key``."""

    # -- rooms ---------------------------------------------------------------------

    async def create_room(self, room: str | None, name: str) -> Room:
        """A new room (``room`` None: a fresh numeric id); :class:`Conflict` if it exists."""

    async def get_room(self, room: str) -> Room | None: ...

    async def list_rooms(self, offset: int, limit: int) -> tuple[list[Room], int]:
        """Rooms by creation, and how many there are."""

    async def edit_room(self, room: str, name: str) -> Room | None: ...

    async def delete_room(self, room: str) -> tuple[list[str], int] | None:
        """Delete a room: its former members and the ``at`` of their leaving."""

    async def join(self, room: str, user: str, *, limits: RoomLimits = NO_LIMITS) -> int | None:
        """Add a member (the room is created when missing); ``at``, or None if already in."""

    async def leave(self, room: str, user: str) -> int | None:
        """Remove a member; ``at``, or None when it was not one."""

    async def members(self, room: str) -> set[str]: ...

    async def member_count(self, room: str) -> int: ...

    async def member_changes(self, room: str, since: int) -> list[MemberChange]:
        """The users whose membership changed at or after ``since`` (inside the window)."""

    async def rooms_of(self, user: str) -> list[str]: ...

    async def publish_room(self, event: RoomEvent) -> None:
        """Send a room event to every node (this one included)."""

    def room_events(self) -> AsyncIterator[RoomFeedEvent]:
        """This node's room feed: every event, and a RoomGap after lost ones."""
        ...
