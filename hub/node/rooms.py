"""Rooms: membership per user, room presence for subscribers, and the room event feed.

A user is a member of a room from ``join`` until ``leave``, removal or the room's deletion,
whatever its connections do; so a node that dies leaves nothing to clean, and a member who
goes offline stays a member (and shows as offline). The registry holds the member sets and a
per-room log of membership changes (one window deep).

A ``sub room`` subscriber sees the room's members who are not offline (the full snapshot),
or, given a cursor inside the window, the members whose presence changed since then plus
the users whose membership changed since then; a user who left comes once more with
``member: false``. Entries of a room scope always carry ``member``, and an entry's ``at`` is
the later of the user's presence ``at`` and its membership change, so "keep the larger
``at``" stays a correct merge. The online list of a room is a query: the room's member set,
then the presence of those users, never a scan of every user.

Live updates: each node keeps, in its fan-out, the member set of every room it has
subscribers for (loaded on the first ``sub room``, dropped with the last ``unsub``), so a
presence change reaches a room's subscribers without a store read. Membership changes
travel to every node as :class:`~hub.stores.registry.base.RoomEvent` (Redis pub/sub on
``<channel>:rooms``, in-process with the memory store). When that feed loses events, every
member set is reloaded and every room subscriber gets a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from hub.model.presence import Entry, Status, in_window
from hub.node.node import Core, Member, Node
from hub.ops.tasks import cancel_requested, stop_tasks
from hub.stores.presence.base import UserView
from hub.stores.registry.base import (
    NO_LIMITS,
    Registry,
    Room,
    RoomEvent,
    RoomGap,
    RoomLimitReached,
    RoomLimits,
)
from hub.wire.hub import ErrorCode, ProtocolError

log = logging.getLogger("hub.rooms")

#: Users per presence read and per published event.
CHUNK = 1000
#: How far before a cursor the membership log is read: the registry clock and the presence
#: clock may differ by a few milliseconds, and re-reading a state is harmless.
SLACK_MS = 2_000


def member_entry(user: str, view: UserView | None, member: bool, at: int) -> Entry:
    """A room entry: the user's presence (offline when unknown) and its membership."""
    if view is None:
        entry: Entry = {
            "id": user,
            "username": "",
            "name": "",
            "status": Status.OFFLINE.value,
            "text": "",
            "at": 0,
        }
    else:
        entry = view.entry()
    entry["at"] = max(entry["at"], at)
    entry["member"] = member
    return entry


def _chunks(items: Sequence[str], size: int = CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Rooms:
    """The room service of one node; ``node.rooms`` for the websocket layer."""

    def __init__(
        self, node: Node | Core, registry: Registry, limits: RoomLimits | None = None
    ) -> None:
        self.node = node
        self.registry = registry
        settings = node.settings
        #: Caps on the rooms a websocket ``join`` may create (HUB_MAX_ROOMS_PER_USER,
        #: HUB_MAX_ROOMS); the admin's calls are not capped.
        self.limits = limits or RoomLimits(settings.max_rooms_per_user, settings.max_rooms)
        self._loads: dict[str, asyncio.Task[None]] = {}
        self._loading: dict[str, dict[str, bool]] = {}
        self._generation = 0
        self._task: asyncio.Task[None] | None = None
        self.gaps = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._consume(), name="hub-rooms")

    async def stop(self) -> None:
        await stop_tasks([t for t in (self._task, *self._loads.values()) if t is not None])
        self._task = None

    # -- the websocket layer (node.rooms) ----------------------------------------------

    async def join(self, session: Member, room: str) -> None:
        """A websocket ``join``: past a room cap, an ``error`` with code ``limit`` and
        nothing created."""
        try:
            await self.add_member(room, session.user, limits=self.limits)
        except RoomLimitReached as exc:
            raise ProtocolError(ErrorCode.LIMIT, str(exc)) from None

    async def leave(self, session: Member, room: str) -> None:
        await self.remove_member(room, session.user)

    async def snapshot(self, room: str, since: int | None) -> tuple[list[Entry], bool, int]:
        """The room's state for a subscriber: (entries, full, cursor)."""
        members = await self._track(room)
        store = self.node.store
        cursor = await store.now()
        if in_window(since, cursor, store.window_ms):
            assert since is not None
            changes = await store.changes(since)
            if not changes.full:
                return await self._delta(room, since, members, changes.users), False, cursor
        return await self._online_entries(sorted(members)), True, cursor

    async def _delta(
        self, room: str, since: int, members: set[str], changed: list[UserView]
    ) -> list[Entry]:
        out = {v.id: member_entry(v.id, v, True, 0) for v in changed if v.id in members}
        log_changes = await self.registry.member_changes(room, since - SLACK_MS)
        missing = [c.user for c in log_changes if c.user not in out]
        views = {v.id: v for v in await self.node.store.users(missing)} if missing else {}
        for change in log_changes:
            entry = out.get(change.user) or member_entry(
                change.user, views.get(change.user), change.member, change.at
            )
            # The registry is the authority on membership; the local set may lag an event.
            entry["member"] = change.member
            entry["at"] = max(entry["at"], change.at)
            out[change.user] = entry
        return sorted(out.values(), key=lambda e: e["at"])

    async def _online_entries(self, users: Sequence[str]) -> list[Entry]:
        entries: list[Entry] = []
        for chunk in _chunks(users):
            for view in await self.node.store.users(chunk):
                if view.status != Status.OFFLINE.value:
                    entries.append(member_entry(view.id, view, True, 0))
        return entries

    # -- member sets held for local subscribers ------------------------------------------

    async def _track(self, room: str) -> set[str]:
        """The room's member set, loaded into the fan-out when this node has subscribers."""
        fanout = self.node.fanout
        while fanout.has_room_subscribers(room) and not fanout.knows_room(room):
            task = self._loads.get(room)
            if task is None:
                task = asyncio.ensure_future(self._load(room))
                self._loads[room] = task
                task.add_done_callback(lambda done: self._loaded(room, done))
            await asyncio.shield(task)
        if fanout.knows_room(room):
            return set(fanout.room_members(room))
        return await self.registry.members(room)

    def _loaded(self, room: str, task: asyncio.Task[None]) -> None:
        if self._loads.get(room) is task:
            del self._loads[room]
        if not task.cancelled():
            # Every waiter got the error already; this only keeps asyncio from reporting
            # it again when the waiters were cancelled first.
            task.exception()

    async def _load(self, room: str) -> None:
        generation = self._generation
        self._loading[room] = {}
        try:
            members = await self.registry.members(room)
        finally:
            arrived = self._loading.pop(room, {})
        if generation != self._generation:
            return  # the feed lost events meanwhile: the caller loads again
        for user, member in arrived.items():
            if member:
                members.add(user)
            else:
                members.discard(user)
        if self.node.fanout.has_room_subscribers(room):
            self.node.fanout.set_room_members(room, members)

    # -- the feed ----------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            try:
                async for event in self.registry.room_events():
                    if isinstance(event, RoomGap):
                        self._gap()
                    else:
                        self.apply(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                if cancel_requested():
                    raise asyncio.CancelledError from None
                log.exception("room feed failed; resubscribing")
                await asyncio.sleep(0.5)

    def apply(self, event: RoomEvent) -> None:
        """A membership change from any node: update the member set, tell subscribers."""
        fanout = self.node.fanout
        arriving = self._loading.get(event.room)
        if arriving is not None:
            for e in event.entries:
                arriving[e["id"]] = bool(e.get("member"))
        elif fanout.knows_room(event.room):
            members = fanout.room_members(event.room)
            for e in event.entries:
                if e.get("member"):
                    members.add(e["id"])
                else:
                    members.discard(e["id"])
        if fanout.has_room_subscribers(event.room):
            fanout.feed_room(event.room, event.entries, event.cursor)

    def _gap(self) -> None:
        self.gaps += 1
        self._generation += 1
        self.node.fanout.forget_rooms()
        self.node.fanout.resync_rooms()
        log.warning("room feed lost events; member sets reloaded, room subscribers resynced")

    async def _publish(self, room: str, entries: list[Entry], cursor: int) -> None:
        for start in range(0, len(entries), CHUNK):
            chunk = entries[start : start + CHUNK]
            await self.registry.publish_room(RoomEvent(room, chunk, cursor))

    # -- membership ----------------------------------------------------------------------

    async def add_member(self, room: str, user: str, *, limits: RoomLimits = NO_LIMITS) -> bool:
        """Make ``user`` a member (the room is created when missing, within ``limits``:
        :class:`~hub.stores.registry.base.RoomLimitReached` past them); False if it was one.

        The registry records the membership (and its event goes to the room's list
        subscribers), then the presence store places the user in the room's order and
        numbers. That last step is idempotent and runs for a user who already was a member
        too, so a join repeated after a failure or a crash there repairs the room's index."""
        at = await self.registry.join(room, user, limits=limits)
        if at is not None:
            view = await self.node.store.get(user)
            await self._publish(room, [member_entry(user, view, True, at)], at)
        await self.node.store.room_add(room, [user])
        return at is not None

    async def remove_member(self, room: str, user: str) -> bool:
        at = await self.registry.leave(room, user)
        if at is not None:
            view = await self.node.store.get(user)
            await self._publish(room, [member_entry(user, view, False, at)], at)
        # Idempotent, and run for a user who already left too: a leave repeated after a
        # failure here repairs the room's index.
        await self.node.store.room_remove(room, [user])
        return at is not None

    async def forget_user(self, user: str) -> None:
        """A deleted user leaves every room it was in."""
        for room in await self.registry.rooms_of(user):
            await self.remove_member(room, user)

    # -- rooms ---------------------------------------------------------------------------

    async def create(self, room: str | None, name: str) -> Room:
        return await self.registry.create_room(room, name)

    async def get(self, room: str) -> Room | None:
        return await self.registry.get_room(room)

    async def list_rooms(self, offset: int, limit: int) -> tuple[list[Room], int]:
        return await self.registry.list_rooms(offset, limit)

    async def edit(self, room: str, name: str) -> Room | None:
        return await self.registry.edit_room(room, name)

    async def delete(self, room: str) -> bool:
        """Delete a room; every member leaves it (``member: false`` to subscribers)."""
        result = await self.registry.delete_room(room)
        if result is None:
            return False
        members, at = result
        entries: list[Entry] = []
        await self.node.store.room_remove(room, members)
        for chunk in _chunks(members):
            views = {v.id: v for v in await self.node.store.users(chunk)}
            entries += [member_entry(u, views.get(u), False, at) for u in chunk]
        await self._publish(room, entries, at)
        return True

    async def member_count(self, room: str) -> int:
        return await self.registry.member_count(room)

    async def online(self, room: str) -> list[UserView]:
        """The members of ``room`` who are not offline."""
        members = sorted(await self.registry.members(room))
        out: list[UserView] = []
        for chunk in _chunks(members):
            out += [v for v in await self.node.store.users(chunk) if v.status != "offline"]
        return out
