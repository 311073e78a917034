"""The Redis registry: users and rooms shared by every hub process on one Redis or Cluster.

Keys are laid out in :mod:`hub.stores.registry.keys`; every mutation is one Lua script from
``hub/stores/registry/lua/`` on one slot, stamped with the Redis clock (``TIME``). The check made
on every connect (:meth:`RedisRegistry.admit`) reads one account hash in the user's own
slot. Creating an account takes two steps, because the unique indexes live in another slot
than the account: reserve the id and username (``claim.lua``), then write the account
(``account_create.lua``); deleting runs them the other way round. A crash between the two
leaves at worst a reservation without an account, which the next create of that id or
username notices and frees (after :data:`ORPHAN_AGE_MS`, so a create in flight on another
node is never mistaken for one) and which listings skip.

Room events are msgpack maps on ``<channel>:rooms``; :meth:`RedisRegistry.room_events`
yields a :class:`~hub.stores.registry.base.RoomGap` after its subscription had to be renewed.
Every Redis failure surfaces as :class:`~hub.stores.presence.base.StoreUnavailable`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import replace
from functools import cache
from importlib import resources
from typing import Any, cast

import msgpack
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from hub.model.presence import Entry
from hub.model.text import check_valid
from hub.ops.config import Settings
from hub.stores.feed import GAP, Subscription
from hub.stores.presence.base import StoreUnavailable
from hub.stores.presence.redis import command_client, subscription, unavailable
from hub.stores.registry.base import (
    NO_LIMITS,
    NO_METADATA,
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
    id_of,
)
from hub.stores.registry.keys import RegistryKeys, rooms_channel

log = logging.getLogger(__name__)

#: A reservation without an account older than this is a crash's leftover, freed on sight.
ORPHAN_AGE_MS = 30_000
#: Members read per SSCAN step; keys fetched per pipeline.
CHUNK = 1000

SCRIPTS = (
    "admit",
    "claim",
    "release",
    "account_create",
    "account_update",
    "account_delete",
    "room_create",
    "room_edit",
    "room_join",
    "room_leave",
    "room_delete",
    "room_changes",
)


@cache
def script_source(name: str) -> str:
    return resources.files("hub.stores.registry").joinpath("lua", f"{name}.lua").read_text("utf-8")


def _fields(user: User, password_hash: str | None) -> dict[str, str]:
    out = {
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "avatar": user.avatar,
        "roles": json.dumps(list(user.roles)),
        "tags": json.dumps(list(user.tags)),
        "metadata": json.dumps(dict(user.metadata)),
        "type": user.type,
        "utc": repr(float(user.utc_offset)),
        "created": str(user.created),
        "updated": str(user.updated),
        "activated": "1" if user.activated else "0",
        "last_login": str(user.last_login),
    }
    if password_hash is not None:
        out["pw"] = password_hash
    return out


def _changes(changes: UserChanges) -> list[str]:
    flat: list[str] = []
    for name, value in vars(changes).items():
        if value is None:
            continue
        if name in ("roles", "tags"):
            flat += [name, json.dumps(list(value))]
        elif name == "metadata":
            flat += [name, json.dumps(dict(value))]
        elif name == "utc_offset":
            flat += ["utc", repr(float(value))]
        else:
            flat += [name, str(value)]
    return flat


def _user(raw: dict[str, str]) -> User:
    return User(
        id=raw["id"],
        username=raw.get("username", ""),
        name=raw.get("name", ""),
        avatar=raw.get("avatar", ""),
        roles=tuple(json.loads(raw.get("roles") or "[]")),
        tags=tuple(json.loads(raw.get("tags") or "[]")),
        metadata=_metadata(raw.get("metadata")),
        type=raw.get("type") or "user",
        utc_offset=float(raw.get("utc") or 0),
        created=int(raw.get("created") or 0),
        updated=int(raw.get("updated") or 0),
        activated=raw.get("activated", "1") != "0",
        last_login=int(raw.get("last_login") or 0),
    )


def _metadata(raw: str | None) -> Mapping[str, Any]:
    value = json.loads(raw) if raw and raw != "{}" else None
    return value if isinstance(value, dict) and value else NO_METADATA


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}


def _room(room: str, row: Sequence[Any]) -> Room:
    name, created, updated = row[-3:]
    return Room(id=room, name=str(name), created=int(created), updated=int(updated))


class RedisRegistry:
    """A :class:`~hub.stores.registry.base.Registry` in Redis or Redis Cluster."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "hub:",
        channel: str = "hub:presence",
        window_ms: int = 600_000,
    ) -> None:
        self.url = url
        self.window_ms = window_ms
        self.keys = RegistryKeys(key_prefix)
        self.channel = rooms_channel(channel)
        self._window = str(window_ms)
        self._closed = False
        self._feeds: set[Subscription] = set()
        self._redis: Redis | RedisCluster = self._client()
        self._scripts = {name: self._redis.register_script(script_source(name)) for name in SCRIPTS}

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisRegistry:
        return cls(
            settings.store,
            key_prefix=settings.key_prefix,
            channel=settings.channel,
            window_ms=settings.window_ms,
        )

    def _client(self) -> Redis | RedisCluster:
        return command_client(self.url)

    async def _run(self, name: str, keys: list[str], args: Sequence[Any] = ()) -> Any:
        with unavailable():
            return await self._scripts[name](keys=keys, args=list(args))

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        with unavailable():
            if isinstance(self._redis, RedisCluster):
                await self._redis.initialize()
            for name in SCRIPTS:
                await self._redis.script_load(script_source(name))

    async def close(self) -> None:
        self._closed = True
        for sub in list(self._feeds):
            await sub.close()
        await self._redis.aclose()

    # -- users ---------------------------------------------------------------------

    async def admit(self, user: User, *, auto_register: bool) -> Admission:
        check_user(user)
        for _ in range(2):
            answer = await self._run("admit", [self.keys.user(user.id)])
            if answer == "deactivated":
                return Admission.DEACTIVATED
            if answer == "ok":
                return Admission.OK
            if not auto_register:
                return Admission.UNKNOWN
            try:
                await self._create(user, "", login=True)
            except Conflict as exc:
                if exc.field == "username":
                    return Admission.TAKEN
                continue  # created by another node a moment ago: admit that one
            return Admission.CREATED
        return Admission.TAKEN

    async def access(self, user: str) -> bool | None:
        with unavailable():
            flag = await self._redis.hget(self.keys.user(user), "activated")
        return None if flag is None else flag != "0"

    async def create(self, user: User, *, password_hash: str = "") -> User:
        check_user(user)
        return await self._create(user, password_hash, login=False)

    async def _create(self, user: User, password_hash: str, *, login: bool) -> User:
        lower = user.username.lower()
        for attempt in range(2):
            kind, detail = await self._run("claim", self.keys.index(), [user.id, lower])
            if kind == "ok":
                break
            owner = user.id if kind == "id" else str(detail)
            if attempt == 0 and await self._free_orphan(owner):
                continue
            if kind == "id":
                raise Conflict("id", user.id)
            raise Conflict("username", user.username)
        created = int(detail)
        stored = replace(user, created=created, updated=created, last_login=created if login else 0)
        fields = _fields(stored, password_hash)
        flat = [item for pair in fields.items() for item in pair]
        try:
            written = await self._run("account_create", [self.keys.user(user.id)], flat)
        except StoreUnavailable:
            await self._release_quietly(user.id)
            raise
        if not written:
            raise Conflict("id", user.id)
        return stored

    async def _free_orphan(self, user: str) -> bool:
        """Free ``user``'s reservation when it has no account and is old enough."""
        with unavailable():
            exists = await self._redis.exists(self.keys.user(user))
            ckey = await self._redis.hget(self.keys.ids, user)
            now_s, now_us = await self._redis.time()
        if exists or ckey is None:
            return False
        created = int(str(ckey).split(":", 1)[0])
        if int(now_s) * 1000 + int(now_us) // 1000 - created < ORPHAN_AGE_MS:
            return False
        log.warning("freeing the reservation of %r left without an account", user)
        await self._run("release", self.keys.index(), [user])
        return True

    async def _release_quietly(self, user: str) -> None:
        try:
            await self._run("release", self.keys.index(), [user])
        except StoreUnavailable:
            log.warning("could not free the reservation of %r; freed on next create", user)

    async def get(self, user: str) -> User | None:
        found = await self.get_many([user])
        return found[0] if found else None

    async def get_many(self, ids: Sequence[str]) -> list[User]:
        out: list[User] = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            with unavailable():
                async with self._redis.pipeline(transaction=False) as pipe:
                    for uid in chunk:
                        pipe.hgetall(self.keys.user(uid))
                    rows = await pipe.execute()
            out += [_user(row) for row in rows if row]
        return out

    async def find_username(self, username: str) -> str | None:
        with unavailable():
            found = await self._redis.hget(self.keys.names, username.lower())
        return None if found is None else str(found)

    async def _update(self, user: str, flat: list[str]) -> User | None:
        row = await self._run("account_update", [self.keys.user(user)], flat)
        return None if not row else _user(_pairs(row))

    async def update(self, user: str, changes: UserChanges) -> User | None:
        check_changes(changes)
        return await self._update(user, _changes(changes))

    async def set_activated(self, user: str, activated: bool) -> User | None:
        return await self._update(user, ["activated", "1" if activated else "0"])

    async def set_password(self, user: str, password_hash: str) -> bool:
        return await self._update(user, ["pw", password_hash]) is not None

    async def password_hash(self, user: str) -> str | None:
        with unavailable():
            known, stored = await self._redis.hmget(self.keys.user(user), ["id", "pw"])
        if known is None:
            return None
        return str(stored or "")

    async def delete(self, user: str) -> User | None:
        row = await self._run("account_delete", [self.keys.user(user)])
        await self._run("release", self.keys.index(), [user])
        return None if not row else _user(_pairs(row))

    async def count(self) -> int:
        with unavailable():
            return int(await self._redis.zcard(self.keys.by_created))

    def _order_key(self, order: Order) -> str:
        return self.keys.by_created if order == "created" else self.keys.by_username

    async def ordered(self, order: Order, start: int, stop: int) -> list[str]:
        start = max(0, start)
        if stop <= start:
            return []
        with unavailable():
            keys = await self._redis.zrange(self._order_key(order), start, stop - 1)
        return [id_of(str(k), order) for k in keys]

    async def after(self, order: Order, key: str | None, limit: int) -> list[tuple[str, str]]:
        if limit <= 0:
            return []
        low = "-" if key is None else f"({key}"
        with unavailable():
            keys = await self._redis.zrangebylex(
                self._order_key(order), low, "+", start=0, num=limit
            )
        return [(str(k), id_of(str(k), order)) for k in keys]

    # -- rooms ---------------------------------------------------------------------

    async def create_room(self, room: str | None, name: str) -> Room:
        check_room(room, name)
        for _ in range(1000):
            rid = room
            if rid is None:
                with unavailable():
                    rid = str(await self._redis.incr(self.keys.room_seq))
            row = await self._run(
                "room_create",
                [self.keys.room(rid), self.keys.room_index, self.keys.room_clock],
                [rid, name],
            )
            if int(row[0]) == 1:
                return _room(rid, row)
            if room is not None:
                raise Conflict("room", room)
        raise Conflict("room", "a fresh numeric id")

    async def get_room(self, room: str) -> Room | None:
        with unavailable():
            row = await self._redis.hmget(self.keys.room(room), ["name", "created", "updated"])
        return None if row[1] is None else _room(room, row)

    async def list_rooms(self, offset: int, limit: int) -> tuple[list[Room], int]:
        offset = max(0, offset)
        with unavailable():
            total = int(await self._redis.zcard(self.keys.room_index))
            keys = (
                await self._redis.zrange(self.keys.room_index, offset, offset + limit - 1)
                if limit > 0
                else []
            )
            ids = [id_of(str(k), "created") for k in keys]
            async with self._redis.pipeline(transaction=False) as pipe:
                for rid in ids:
                    pipe.hmget(self.keys.room(rid), ["name", "created", "updated"])
                rows = await pipe.execute()
        rooms = [_room(rid, row) for rid, row in zip(ids, rows, strict=True) if row[1]]
        return rooms, total

    async def edit_room(self, room: str, name: str) -> Room | None:
        check_room(None, name)
        row = await self._run("room_edit", [self.keys.room(room)], [name])
        return None if not row else _room(room, row)

    async def delete_room(self, room: str) -> tuple[list[str], int] | None:
        k = self.keys
        reply = await self._run(
            "room_delete",
            [k.room(room), k.room_index, k.members(room), k.log(room)],
            [room, self._window, k.created_by_prefix],
        )
        if not reply:
            return None
        at, members = int(reply[0]), sorted(str(m) for m in reply[1:])
        for start in range(0, len(members), CHUNK):
            with unavailable():
                async with self._redis.pipeline(transaction=False) as pipe:
                    for user in members[start : start + CHUNK]:
                        pipe.srem(k.user_rooms(user), room)
                    await pipe.execute()
        return members, at

    async def join(self, room: str, user: str, *, limits: RoomLimits = NO_LIMITS) -> int | None:
        check_room(room)
        check_valid(user, "user")
        k = self.keys
        at = await self._run(
            "room_join",
            [k.room(room), k.room_index, k.members(room), k.log(room), k.user_rooms(user),
             k.room_clock, k.created_by(user)],
            [room, user, self._window, limits.total, limits.per_user],
        )  # fmt: skip
        if at == -1:
            raise RoomLimitReached("hub", limits.total)
        if at == -2:
            raise RoomLimitReached("user", limits.per_user)
        return None if not at else int(at)

    async def leave(self, room: str, user: str) -> int | None:
        k = self.keys
        at = await self._run(
            "room_leave",
            [k.members(room), k.log(room), k.user_rooms(user)],
            [room, user, self._window],
        )
        return None if not at else int(at)

    async def members(self, room: str) -> set[str]:
        out: set[str] = set()
        with unavailable():
            async for user in self._redis.sscan_iter(self.keys.members(room), count=CHUNK):
                out.add(str(user))
        return out

    async def member_count(self, room: str) -> int:
        with unavailable():
            return int(await self._redis.scard(self.keys.members(room)))

    async def member_changes(self, room: str, since: int) -> list[MemberChange]:
        reply = await self._run(
            "room_changes", [self.keys.log(room), self.keys.members(room)], [int(since)]
        )
        return [
            MemberChange(str(u), bool(int(m)), int(float(a)))
            for u, m, a in zip(reply[::3], reply[1::3], reply[2::3], strict=True)
        ]

    async def rooms_of(self, user: str) -> list[str]:
        with unavailable():
            rooms = await self._redis.smembers(self.keys.user_rooms(user))
        return sorted(str(r) for r in rooms)

    # -- feed ----------------------------------------------------------------------

    async def publish_room(self, event: RoomEvent) -> None:
        payload = msgpack.packb(
            {"v": 1, "room": event.room, "entries": event.entries, "cursor": event.cursor}
        )
        with unavailable():
            await self._redis.publish(self.channel, payload)

    async def room_events(self) -> AsyncIterator[RoomFeedEvent]:
        sub = subscription(self.url, [self.channel], "room feed")
        self._feeds.add(sub)
        try:
            async with aclosing(sub.messages()) as messages:
                async for item in messages:
                    if item is GAP:
                        yield RoomGap()
                        continue
                    assert isinstance(item, tuple)
                    event = _decode(item[1])
                    if event is not None:
                        yield event
        finally:
            self._feeds.discard(sub)
            await sub.close()


def _decode(data: bytes) -> RoomEvent | None:
    try:
        payload = msgpack.unpackb(data, raw=False)
        return RoomEvent(
            room=str(payload["room"]),
            entries=cast(list[Entry], list(payload["entries"])),
            cursor=int(payload["cursor"]),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("ignored a malformed room event: %s", exc)
        return None
