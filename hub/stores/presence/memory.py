"""The in-memory store: one process, nothing to install, the fastest single node.

It is the reference implementation of :class:`~hub.stores.presence.base.PresenceStore`: plain dicts
around :class:`~hub.model.presence.UserPresence`. The change index is an append-only list of
``(at, id)`` that stays sorted because the clock never runs behind the last stamp; stale
pairs (a user changed again) are skipped on read and compacted away, and pairs older than
the window are trimmed from the front.
"""

from __future__ import annotations

import bisect
import heapq
import time
from collections.abc import AsyncIterator, Sequence

from hub.model.presence import Status, UserPresence, check_until, in_window
from hub.model.roster import Part
from hub.stores.local_feed import LocalFeed
from hub.stores.presence.base import (
    Batch,
    Changes,
    Choice,
    Control,
    Event,
    Gap,
    LiveConnection,
    Liveness,
    Profile,
    Slice,
    UserView,
)
from hub.stores.presence.memory_rooms import MemoryRoomIndex


def view(user: UserPresence, *, show_last_seen: bool = True) -> UserView:
    return UserView(
        id=user.id,
        username=user.username,
        name=user.name,
        status=user.status,
        text=user.text,
        at=user.at,
        chosen=user.chosen,
        avatar=user.avatar,
        utc_offset=user.utc_offset,
        last_login=user.last_login,
        connections=len(user.connections),
        last_seen=user.last_seen if show_last_seen else 0,
        until=user.until,
        hide_last_seen=user.hide_last_seen,
    )


class MemoryStore:
    """A :class:`PresenceStore` in this process's memory."""

    def __init__(
        self, *, window_ms: int = 600_000, grace_ms: int = 5_000, show_last_seen: bool = True
    ) -> None:
        self.window_ms = window_ms
        self.grace_ms = grace_ms
        self.show_last_seen = show_last_seen
        self._users: dict[str, UserPresence] = {}
        self._usernames: dict[str, str] = {}
        self._not_offline: set[str] = set()
        self._index: list[tuple[int, str]] = []
        self._indexed: dict[str, int] = {}
        self._graces: dict[str, int] = {}
        # Status expiries as a heap of (until, user); a pair whose user has another
        # expiry by now is stale: skipped when it comes up, compacted away when they pile up.
        self._expiries: list[tuple[int, str]] = []
        self._expiring: dict[str, int] = {}
        # The version of each user's choice: the stamp of its last change (see restore).
        self._chosen_at: dict[str, int] = {}
        self._nodes: dict[str, int] = {}
        self._node_conns: dict[str, dict[str, str]] = {}
        self._feed: LocalFeed[Event] = LocalFeed(Gap())
        self._clock = 0
        # When this store's data began: a cursor from before it (an earlier process) gets
        # a snapshot, since the changes it would need were never recorded here.
        self._epoch = self._now()
        self._rooms = MemoryRoomIndex(
            self._users, self._emit, self._now, show_last_seen=show_last_seen
        )

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def now(self) -> int:
        return self._now()

    def _now(self) -> int:
        wall = time.time_ns() // 1_000_000
        if wall > self._clock:
            self._clock = wall
        return self._clock

    # -- internals ---------------------------------------------------------------

    def _user(self, user_id: str) -> UserPresence:
        user = self._users.get(user_id)
        if user is None:
            user = UserPresence(id=user_id)
            self._users[user_id] = user
        return user

    def _record(self, users: list[UserPresence]) -> None:
        """Index and publish the users whose visible presence just changed, and move them
        in their rooms' orders (and count a user who is new)."""
        if not users:
            self._rooms.changed(self._clock, users)
            return
        for user in users:
            if user.at > self._clock:
                self._clock = user.at
            self._index.append((user.at, user.id))
            self._indexed[user.id] = user.at
            if user.status == Status.OFFLINE.value:
                self._not_offline.discard(user.id)
            else:
                self._not_offline.add(user.id)
            if user.username:
                self._usernames[user.username.lower()] = user.id
        self._trim()
        show = self.show_last_seen
        cursor = self._now()
        self._emit(Batch(cursor=cursor, users=[u.entry(show_last_seen=show) for u in users]))
        self._rooms.changed(cursor, users)

    @property
    def feed_consumers(self) -> int:
        """How many ``events()`` iterators are reading now."""
        return self._feed.consumers

    def _emit(self, event: Event) -> None:
        self._feed.emit(event)

    def _trim(self) -> None:
        horizon = self._clock - self.window_ms
        cut = bisect.bisect_left(self._index, (horizon, ""))
        if cut:
            for at, uid in self._index[:cut]:
                if self._indexed.get(uid) == at:
                    del self._indexed[uid]
            del self._index[:cut]
        if len(self._index) > 2 * len(self._indexed) + 1024:
            self._index = [(at, uid) for at, uid in self._index if self._indexed.get(uid) == at]

    def _apply(self, user: UserPresence, changed: bool) -> UserView:
        if user.grace_until is None:
            self._graces.pop(user.id, None)
        else:
            self._graces[user.id] = user.grace_until
        self._record([user] if changed else [])
        return self._view(user)

    def _view(self, user: UserPresence) -> UserView:
        return view(user, show_last_seen=self.show_last_seen)

    # -- connections -------------------------------------------------------------

    async def connect(self, node: str, conn: str, profile: Profile, state: str) -> UserView:
        now = self._now()
        user = self._user(profile.id)
        if profile.avatar:
            user.avatar = profile.avatar
        if profile.utc_offset:
            user.utc_offset = profile.utc_offset
        user.last_login = now
        old = user.username
        changed = user.connect(conn, state, now, username=profile.username, name=profile.name)
        self._rename(user, old)
        self._node_conns.setdefault(node, {})[conn] = profile.id
        return self._apply(user, changed)

    async def disconnect(self, node: str, conn: str, user: str, *, grace: bool = True) -> None:
        conns = self._node_conns.get(node)
        if conns is not None:
            conns.pop(conn, None)
        record = self._users.get(user)
        if record is None or conn not in record.connections:
            return
        now = self._now()
        changed = record.disconnect(conn, now, grace_ms=self.grace_ms if grace else 0)
        self._apply(record, changed)

    async def activity(self, node: str, conn: str, user: str, state: str) -> bool:
        record = self._users.get(user)
        if record is None or conn not in record.connections:
            return False
        self._apply(record, record.activity(conn, state, self._now()))
        return True

    async def set_status(
        self,
        user: str,
        *,
        status: str | None = None,
        text: str | None = None,
        until: int | None = None,
        hide_last_seen: bool | None = None,
    ) -> UserView | None:
        now = self._now()
        if until is not None:
            check_until(until, now)
        record = self._users.get(user)
        if record is None:
            return None
        changed = record.set_status(
            now, status=status, text=text, until=until, hide_last_seen=hide_last_seen
        )
        self._chose(record, now)
        self._track_expiry(record)
        return self._apply(record, changed)

    def _chose(self, record: UserPresence, now: int) -> None:
        """Version the user's choice: the stamp of this change, or the clock (as chose() in
        common.lua)."""
        self._chosen_at[record.id] = max(now, record.at)

    def _track_expiry(self, record: UserPresence) -> None:
        if record.until:
            self._expiring[record.id] = record.until
            heapq.heappush(self._expiries, (record.until, record.id))
            if len(self._expiries) > 2 * len(self._expiring) + 1024:
                self._expiries = [(at, uid) for uid, at in self._expiring.items()]
                heapq.heapify(self._expiries)
        else:
            self._expiring.pop(record.id, None)

    async def expire_statuses(self) -> None:
        now = self._now()
        changed = []
        while self._expiries and self._expiries[0][0] <= now:
            until, uid = heapq.heappop(self._expiries)
            record = self._users.get(uid)
            if record is None or record.until != until:
                continue
            del self._expiring[uid]
            if record.expire_status(now):
                changed.append(record)
            self._chose(record, now)
        self._record(changed)

    async def set_profile(self, profile: Profile, *, create: bool = True) -> UserView | None:
        record = self._users.get(profile.id)
        if record is None:
            if not create:
                return None
            record = self._user(profile.id)
        old = record.username
        record.avatar = profile.avatar or record.avatar
        record.utc_offset = profile.utc_offset
        changed = record.set_profile(
            self._now(), username=profile.username or None, name=profile.name or None
        )
        self._rename(record, old)
        return self._apply(record, changed)

    def _rename(self, user: UserPresence, old: str) -> None:
        """Keep the username index exact: an old name is dropped only if it is still ours."""
        stale = old.lower()
        if old and stale != user.username.lower() and self._usernames.get(stale) == user.id:
            del self._usernames[stale]
        if user.username:
            self._usernames[user.username.lower()] = user.id

    async def drop_user(self, user: str) -> None:
        record = self._users.get(user)
        if record is None:
            return
        for conns in self._node_conns.values():
            for conn in list(record.connections):
                conns.pop(conn, None)
        self._apply(record, record.drop_all(self._now()))

    # -- nodes ---------------------------------------------------------------------

    async def heartbeat(self, node: str, ttl_ms: int, *, epoch: int | None) -> Liveness:
        now = self._now()
        known = self._nodes.get(node, -1) >= now
        self._nodes[node] = now + ttl_ms
        if epoch is not None and self._epoch > epoch:
            return Liveness.LOST
        return Liveness.KNOWN if known else Liveness.REAPED

    async def node_connections(self, node: str) -> dict[str, str]:
        return dict(self._node_conns.get(node, {}))

    async def epoch(self) -> int:
        return self._epoch

    async def nodes_alive(self) -> int:
        now = self._now()
        return sum(1 for deadline in self._nodes.values() if deadline >= now)

    async def restore(
        self,
        node: str,
        live: Sequence[LiveConnection],
        *,
        epoch: int,
        choices: Sequence[Choice] = (),
    ) -> None:
        by_user: dict[str, list[LiveConnection]] = {}
        for item in live:
            by_user.setdefault(item.profile.id, []).append(item)
        chosen = {choice.user: choice for choice in choices}
        node_conns = self._node_conns.setdefault(node, {})
        # This store's data all began at its epoch: it lost what a node registered before.
        lost = self._epoch > epoch
        for uid, conns in by_user.items():
            now = self._now()
            record = self._users.get(uid)
            changed = False
            if record is None:
                # No trace of the user: the connection's profile is all there is.
                profile = conns[0].profile
                record = self._user(uid)
                record.avatar, record.utc_offset, record.last_login = (
                    profile.avatar, profile.utc_offset, now,
                )  # fmt: skip
                changed = record.set_profile(
                    now, username=profile.username or None, name=profile.name or None
                )
                self._rename(record, "")
            for item in conns:
                changed = record.connect(item.conn, item.state, now) or changed
                node_conns[item.conn] = uid
            choice = chosen.get(uid)
            if lost and choice is not None and self._chosen_at.get(uid, 0) < choice.seen_at:
                status, text, until = choice.status, choice.text, choice.until
                if 0 < until <= now:
                    status, text, until = "online", "", 0  # due meanwhile: what it leaves
                changed = record.set_status(now, status=status, text=text, until=until) or changed
                self._chosen_at[uid] = choice.seen_at
                self._track_expiry(record)
            self._apply(record, changed)

    async def sweep(self) -> None:
        now = self._now()
        for node, deadline in list(self._nodes.items()):
            if deadline < now:
                del self._nodes[node]
                await self.remove_node(node, grace=False)
        changed = []
        for uid, deadline in list(self._graces.items()):
            if deadline <= now:
                record = self._users[uid]
                del self._graces[uid]
                if record.expire_grace(now):
                    changed.append(record)
        self._record(changed)

    async def remove_node(self, node: str, *, grace: bool) -> None:
        conns = self._node_conns.pop(node, {})
        self._nodes.pop(node, None)
        now = self._now()
        by_user: dict[str, list[str]] = {}
        for conn, uid in conns.items():
            by_user.setdefault(uid, []).append(conn)
        changed = []
        for uid, user_conns in by_user.items():
            record = self._users.get(uid)
            if record is None:
                continue
            did = record.disconnect_many(user_conns, now, grace_ms=self.grace_ms if grace else 0)
            if record.grace_until is None:
                self._graces.pop(uid, None)
            else:
                self._graces[uid] = record.grace_until
            if did:
                changed.append(record)
        self._record(changed)

    # -- queries -----------------------------------------------------------------

    async def changes(self, since: int | None) -> Changes:
        now = self._now()
        fresh = since is not None and since >= self._epoch
        if not in_window(since, now, self.window_ms) or not fresh:
            users = [self._view(self._users[uid]) for uid in self._not_offline]
            return Changes(users=users, cursor=now, full=True)
        assert since is not None
        start = bisect.bisect_left(self._index, (since, ""))
        out: list[UserView] = []
        for at, uid in self._index[start:]:
            if self._indexed.get(uid) == at:
                out.append(self._view(self._users[uid]))
        return Changes(users=out, cursor=now, full=False)

    async def users(self, ids: Sequence[str]) -> list[UserView]:
        return [self._view(self._users[i]) for i in ids if i in self._users]

    async def get(self, user: str) -> UserView | None:
        record = self._users.get(user)
        return None if record is None else self._view(record)

    async def find_username(self, username: str) -> str | None:
        return self._usernames.get(username.lower())

    # -- feed ----------------------------------------------------------------------

    async def publish_control(self, message: Control) -> None:
        self._emit(message)

    def events(self) -> AsyncIterator[Event]:
        return self._feed.events()

    # -- the room index --------------------------------------------------------------

    async def room_add(self, room: str, users: Sequence[str]) -> int:
        return self._rooms.add(room, users)

    async def room_remove(self, room: str, users: Sequence[str]) -> int:
        return self._rooms.remove(room, users)

    async def room_counts(self, room: str | None) -> dict[str, Part]:
        return self._rooms.counts(room)

    async def room_slice(self, room: str, start: int, count: int) -> Slice:
        return self._rooms.slice(room, start, count)

    async def room_after(self, room: str, key: str, count: int) -> Slice:
        return self._rooms.after(room, key, count)
