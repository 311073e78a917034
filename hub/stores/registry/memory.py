"""The in-memory registry: users and rooms in this process, for the ``memory://`` store.

The reference implementation of :class:`~hub.stores.registry.base.Registry`. With
auto-registration every connected user has an account, so an account costs little: the
creation order is two parallel arrays (ids, and their creation times, unique and rising,
so a cursor is found by bisection), and the username order (sorted index keys, see
:func:`~hub.stores.registry.base.username_key`) is built only when something first lists by
username, then kept up to date. Pages by rank and by cursor read only what they return.
The room feed is in-process: every :meth:`MemoryRegistry.room_events` consumer has its own
bounded queue.
"""

from __future__ import annotations

import bisect
import time
from array import array
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

from hub.model.text import check_valid
from hub.stores.local_feed import LocalFeed
from hub.stores.registry.base import (
    NO_LIMITS,
    Admission,
    Conflict,
    MemberChange,
    Order,
    Room,
    RoomEvent,
    RoomFeedEvent,
    RoomGap,
    RoomLimitReached,
    RoomLimits,
    User,
    UserChanges,
    check_changes,
    check_room,
    check_user,
    created_key,
    id_of,
    username_key,
)


@dataclass
class _Room:
    name: str
    created: int
    updated: int
    members: set[str]
    #: The user whose join created the room ("" when an admin did).
    creator: str = ""

    def view(self, room: str) -> Room:
        return Room(id=room, name=self.name, created=self.created, updated=self.updated)


def _remove(index: list[str], key: str) -> None:
    at = bisect.bisect_left(index, key)
    if at < len(index) and index[at] == key:
        del index[at]


class MemoryRegistry:
    """A :class:`~hub.stores.registry.base.Registry` in this process's memory."""

    def __init__(self, *, window_ms: int = 600_000) -> None:
        self.window_ms = window_ms
        self._users: dict[str, User] = {}
        self._passwords: dict[str, str] = {}
        self._usernames: dict[str, str] = {}
        self._ids: list[str] = []
        self._created_at = array("q")
        self._by_username: list[str] | None = None
        self._rooms: dict[str, _Room] = {}
        self._room_index: list[str] = []
        self._logs: dict[str, dict[str, int]] = {}
        self._user_rooms: dict[str, set[str]] = {}
        self._created_by: dict[str, set[str]] = {}
        self._seq = 0
        self._clock = 0
        self._last_created = 0
        self._feed: LocalFeed[RoomFeedEvent] = LocalFeed(RoomGap())

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _now(self) -> int:
        wall = time.time_ns() // 1_000_000
        self._clock = max(self._clock, wall)
        return self._clock

    # -- users ---------------------------------------------------------------------

    async def admit(self, user: User, *, auto_register: bool) -> Admission:
        check_user(user)
        known = self._users.get(user.id)
        if known is not None:
            if not known.activated:
                return Admission.DEACTIVATED
            self._users[user.id] = replace(known, last_login=self._now())
            return Admission.OK
        if not auto_register:
            return Admission.UNKNOWN
        try:
            self._create(user, "", login=True)
        except Conflict:
            return Admission.TAKEN
        return Admission.CREATED

    async def access(self, user: str) -> bool | None:
        known = self._users.get(user)
        return None if known is None else known.activated

    async def create(self, user: User, *, password_hash: str = "") -> User:
        check_user(user)
        return self._create(user, password_hash, login=False)

    def _create(self, user: User, password_hash: str, *, login: bool) -> User:
        if user.id in self._users:
            raise Conflict("id", user.id)
        lower = user.username.lower()
        if lower in self._usernames:
            raise Conflict("username", user.username)
        if lower == user.username:
            lower = user.username  # one string, not two, for the usual lowercase username
        now = self._created()
        stored = replace(user, created=now, updated=now, last_login=now if login else 0)
        self._users[user.id] = stored
        self._usernames[lower] = user.id
        if password_hash:
            self._passwords[user.id] = password_hash
        # Creation times only grow, so appending keeps both arrays sorted.
        self._ids.append(user.id)
        self._created_at.append(now)
        if self._by_username is not None:
            bisect.insort(self._by_username, username_key(user.username, user.id))
        return stored

    async def get(self, user: str) -> User | None:
        return self._users.get(user)

    async def get_many(self, ids: Sequence[str]) -> list[User]:
        return [self._users[i] for i in ids if i in self._users]

    async def find_username(self, username: str) -> str | None:
        return self._usernames.get(username.lower())

    async def update(self, user: str, changes: UserChanges) -> User | None:
        check_changes(changes)
        known = self._users.get(user)
        if known is None:
            return None
        values = {k: v for k, v in vars(changes).items() if v is not None}
        updated = replace(known, **values, updated=self._now())
        self._users[user] = updated
        return updated

    async def set_activated(self, user: str, activated: bool) -> User | None:
        known = self._users.get(user)
        if known is None:
            return None
        updated = replace(known, activated=activated, updated=self._now())
        self._users[user] = updated
        return updated

    async def set_password(self, user: str, password_hash: str) -> bool:
        known = self._users.get(user)
        if known is None:
            return False
        self._passwords[user] = password_hash
        self._users[user] = replace(known, updated=self._now())
        return True

    async def password_hash(self, user: str) -> str | None:
        if user not in self._users:
            return None
        return self._passwords.get(user, "")

    async def delete(self, user: str) -> User | None:
        known = self._users.pop(user, None)
        if known is None:
            return None
        self._passwords.pop(user, None)
        if self._usernames.get(known.username.lower()) == user:
            del self._usernames[known.username.lower()]
        at = bisect.bisect_left(self._created_at, known.created)
        if at < len(self._ids) and self._ids[at] == user:
            del self._ids[at]
            del self._created_at[at]
        if self._by_username is not None:
            _remove(self._by_username, username_key(known.username, user))
        return known

    async def count(self) -> int:
        return len(self._users)

    def _username_index(self) -> list[str]:
        if self._by_username is None:
            self._by_username = sorted(username_key(u.username, u.id) for u in self._users.values())
        return self._by_username

    async def ordered(self, order: Order, start: int, stop: int) -> list[str]:
        start, stop = max(0, start), max(0, stop)
        if order == "created":
            return self._ids[start:stop]
        return [id_of(key, order) for key in self._username_index()[start:stop]]

    async def after(self, order: Order, key: str | None, limit: int) -> list[tuple[str, str]]:
        if order == "created":
            # Creation times are unique: the time alone places the cursor.
            at = 0 if key is None else bisect.bisect_right(self._created_at, int(key[:15]))
            return [
                (created_key(self._created_at[i], self._ids[i]), self._ids[i])
                for i in range(at, min(at + limit, len(self._ids)))
            ]
        index = self._username_index()
        at = 0 if key is None else bisect.bisect_right(index, key)
        return [(k, id_of(k, order)) for k in index[at : at + limit]]

    # -- rooms ---------------------------------------------------------------------

    def _created(self) -> int:
        """A creation time no other account or room has, so creation orders are strict."""
        now = self._clock = max(self._now(), self._last_created + 1)
        self._last_created = now
        return now

    def _new_room(self, room: str, name: str, creator: str = "") -> _Room:
        now = self._created()
        record = _Room(name=name, created=now, updated=now, members=set(), creator=creator)
        if creator:
            self._created_by.setdefault(creator, set()).add(room)
        self._rooms[room] = record
        bisect.insort(self._room_index, created_key(now, room))
        return record

    async def create_room(self, room: str | None, name: str) -> Room:
        check_room(room, name)
        if room is None:
            self._seq += 1
            while str(self._seq) in self._rooms:
                self._seq += 1
            room = str(self._seq)
        elif room in self._rooms:
            raise Conflict("room", room)
        return self._new_room(room, name).view(room)

    async def get_room(self, room: str) -> Room | None:
        record = self._rooms.get(room)
        return None if record is None else record.view(room)

    async def list_rooms(self, offset: int, limit: int) -> tuple[list[Room], int]:
        keys = self._room_index[max(0, offset) : max(0, offset) + max(0, limit)]
        rooms = [self._rooms[id_of(k, "created")].view(id_of(k, "created")) for k in keys]
        return rooms, len(self._room_index)

    async def edit_room(self, room: str, name: str) -> Room | None:
        check_room(None, name)
        record = self._rooms.get(room)
        if record is None:
            return None
        record.name = name
        record.updated = self._now()
        return record.view(room)

    async def delete_room(self, room: str) -> tuple[list[str], int] | None:
        record = self._rooms.pop(room, None)
        if record is None:
            return None
        _remove(self._room_index, created_key(record.created, room))
        self._created_by.get(record.creator, set()).discard(room)
        now = self._now()
        log = self._log(room, now)
        # One ``at`` for every member, above each one's previous change.
        at = max([now, *(log.get(user, 0) + 1 for user in record.members)])
        for user in record.members:
            log[user] = at
            self._user_rooms.get(user, set()).discard(room)
        return sorted(record.members), at

    def _log(self, room: str, now: int) -> dict[str, int]:
        log = self._logs.setdefault(room, {})
        horizon = now - self.window_ms
        if log and min(log.values()) < horizon:
            for user in [u for u, at in log.items() if at < horizon]:
                del log[user]
        return log

    def _stamp(self, room: str, user: str) -> int:
        now = self._now()
        log = self._log(room, now)
        at = max(now, log.get(user, 0) + 1)
        log[user] = at
        return at

    async def join(self, room: str, user: str, *, limits: RoomLimits = NO_LIMITS) -> int | None:
        check_room(room)
        check_valid(user, "user")
        record = self._rooms.get(room)
        if record is None:
            if limits.total and len(self._rooms) >= limits.total:
                raise RoomLimitReached("hub", limits.total)
            mine = self._created_by.get(user, ())
            if limits.per_user and len(mine) >= limits.per_user:
                raise RoomLimitReached("user", limits.per_user)
            record = self._new_room(room, room, creator=user)
        if user in record.members:
            return None
        record.members.add(user)
        self._user_rooms.setdefault(user, set()).add(room)
        return self._stamp(room, user)

    async def leave(self, room: str, user: str) -> int | None:
        record = self._rooms.get(room)
        if record is None or user not in record.members:
            return None
        record.members.discard(user)
        self._user_rooms.get(user, set()).discard(room)
        return self._stamp(room, user)

    async def members(self, room: str) -> set[str]:
        record = self._rooms.get(room)
        return set() if record is None else set(record.members)

    async def member_count(self, room: str) -> int:
        record = self._rooms.get(room)
        return 0 if record is None else len(record.members)

    async def member_changes(self, room: str, since: int) -> list[MemberChange]:
        log = self._log(room, self._now())
        record = self._rooms.get(room)
        members = set() if record is None else record.members
        changed = sorted((at, user) for user, at in log.items() if at >= since)
        return [MemberChange(user, user in members, at) for at, user in changed]

    async def rooms_of(self, user: str) -> list[str]:
        return sorted(self._user_rooms.get(user, ()))

    # -- feed ----------------------------------------------------------------------

    async def publish_room(self, event: RoomEvent) -> None:
        self._feed.emit(event)

    def room_events(self) -> AsyncIterator[RoomFeedEvent]:
        return self._feed.events()
