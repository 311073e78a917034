"""The memory store's room index: each room's member order and numbers, in this process.

The reference for the Redis scripts' room index (``common.lua`` ``rooms_sync``,
``room_add.lua``, ``room_remove.lua``, ``room_range.lua``): every user in a room has one
member key (:func:`hub.model.roster.view_key`), each room a :class:`SortedKeys` of its
members' keys and its :class:`~hub.model.roster.Counts`. :meth:`MemoryRoomIndex.changed`
runs in the same call as the presence change it follows, so the order and the numbers are
never behind the presence. The memory store is one bucket, named :data:`BUCKET`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from hub.model.presence import Entry, UserPresence
from hub.model.roster import ZERO, Counts, Part, absent_entry, next_seq, status_of, user_of
from hub.model.roster import view_key as _view_key
from hub.stores.presence.base import Moves, RoomMove, Slice
from hub.stores.presence.ordered import SortedKeys

BUCKET = "memory"


class MemoryRoomIndex:
    """Rooms' orders and numbers, and the numbers of all users, for :class:`MemoryStore`."""

    def __init__(
        self,
        users: dict[str, UserPresence],
        emit: Callable[[Moves], None],
        now: Callable[[], int],
        *,
        show_last_seen: bool = True,
    ) -> None:
        self._users = users
        self._emit = emit
        self._now = now
        self._show = show_last_seen
        self._keys: dict[str, str] = {}
        self._rooms_of: dict[str, list[str]] = {}
        self._orders: dict[str, SortedKeys] = {}
        self._counts: dict[str, Part] = {}
        # The numbers of all users: the status each user was last counted with.
        self._counted: dict[str, str] = {}
        self._tally: dict[str, int] = {"online": 0, "away": 0, "busy": 0}
        self._totals = Part(0, ZERO)

    def _key(self, user: UserPresence) -> str:
        return _view_key(user.status, user.name, user.id, user.last_seen, user.hide_last_seen,
                         show=self._show)  # fmt: skip

    def _entry(self, uid: str) -> Entry:
        user = self._users.get(uid)
        return absent_entry(uid) if user is None else user.entry(show_last_seen=self._show)

    def _move(self, room: str, uid: str, before: str, after: str) -> RoomMove:
        order = self._orders.get(room)
        if order is None:
            order = self._orders[room] = SortedKeys()
        if before:
            order.discard(before)
        if after:
            order.add(after)
        old = self._counts.get(room, Part(0, ZERO))
        counts = old.counts.moved(status_of(before) if before else None,
                                  status_of(after) if after else None)  # fmt: skip
        part = Part(next_seq(old.seq, self._now()), counts)
        self._counts[room] = part
        if counts.total == 0:
            # The room's last member left: only its seq stays, so a read still says which
            # moves it holds.
            self._orders.pop(room, None)
        return RoomMove(room, uid, before, after, part)

    # -- presence changes ------------------------------------------------------------------

    def changed(self, cursor: int, users: Iterable[UserPresence]) -> None:
        """Users whose visible presence just changed: move them in their rooms' orders."""
        moves: list[RoomMove] = []
        entries: list[Entry] = []
        tallied = False
        for user in users:
            tallied = self._count(user) or tallied
            rooms = self._rooms_of.get(user.id)
            if not rooms:
                continue
            before, after = self._keys[user.id], self._key(user)
            if before == after:
                continue
            self._keys[user.id] = after
            moves += [self._move(room, user.id, before, after) for room in rooms]
            entries.append(user.entry(show_last_seen=self._show))
        grew = len(self._users) != self._totals.counts.total
        totals = self._retally() if tallied or grew else None
        if moves or totals is not None:
            self._emit(Moves(cursor, BUCKET, moves, entries, totals))

    def _count(self, user: UserPresence) -> bool:
        was = self._counted.get(user.id)
        if was == user.status:
            return False
        if was in self._tally:
            self._tally[was] -= 1
        if user.status in self._tally:
            self._tally[user.status] += 1
        self._counted[user.id] = user.status
        return True

    def _retally(self) -> Part:
        t = self._tally
        counts = Counts(t["online"], t["away"], t["busy"], len(self._users))
        self._totals = Part(next_seq(self._totals.seq, self._now()), counts)
        return self._totals

    # -- membership ------------------------------------------------------------------------

    def add(self, room: str, uids: Sequence[str]) -> int:
        moves: list[RoomMove] = []
        entries: list[Entry] = []
        for uid in dict.fromkeys(uids):
            rooms = self._rooms_of.setdefault(uid, [])
            if room in rooms:
                continue
            rooms.append(room)
            key = self._keys.get(uid)
            if key is None:
                user = self._users.get(uid)
                key = self._keys[uid] = (
                    _view_key("offline", "", uid, 0, False) if user is None else self._key(user)
                )
            moves.append(self._move(room, uid, "", key))
            entries.append(self._entry(uid))
        if moves:
            self._emit(Moves(self._now(), BUCKET, moves, entries))
        return len(moves)

    def remove(self, room: str, uids: Sequence[str]) -> int:
        moves: list[RoomMove] = []
        for uid in dict.fromkeys(uids):
            rooms = self._rooms_of.get(uid)
            if not rooms or room not in rooms:
                continue
            rooms.remove(room)
            key = self._keys[uid]
            if not rooms:
                del self._rooms_of[uid]
                del self._keys[uid]
            moves.append(self._move(room, uid, key, ""))
        if moves:
            self._emit(Moves(self._now(), BUCKET, moves))
        return len(moves)

    # -- reads -------------------------------------------------------------------------------

    def counts(self, room: str | None) -> dict[str, Part]:
        if room is None:
            if self._totals.counts.total != len(self._users):
                self._retally()
            return {BUCKET: self._totals}
        return {BUCKET: self._counts.get(room, Part(0, ZERO))}

    def _slice(self, room: str, start: int, keys: list[str]) -> Slice:
        order = self._orders.get(room)
        size = len(order) if order is not None else 0
        items = [(key, self._entry(user_of(key))) for key in keys]
        part = self._counts.get(room, Part(0, ZERO))
        return Slice(start, items, start + len(items) >= size, {BUCKET: part})

    def slice(self, room: str, start: int, count: int) -> Slice:
        order = self._orders.get(room)
        if order is None:
            return self._slice(room, 0, [])
        start = min(max(start, 0), len(order))
        return self._slice(room, start, order.from_index(start, count))

    def after(self, room: str, key: str, count: int) -> Slice:
        order = self._orders.get(room)
        if order is None:
            return self._slice(room, 0, [])
        start = order.rank(key) + (key in order)
        return self._slice(room, start, order.from_key(key, count, inclusive=False))
