"""Every Redis key and channel name of the registry, built in one place.

Each user's account is a hash in the user's own slot, so the check on every connect
(:meth:`~hub.stores.registry.redis.RedisRegistry.admit`) is one script on one key and spreads over
a cluster like the users do. The indexes that must be unique or ordered across users live
together in one slot, ``{<prefix>reg}``; rooms live in ``{<prefix>rooms}``. Every script
therefore touches exactly one slot. With ``prefix = "hub:"``:

==============================  ======  =====================================================
``{hub:ru:<id>}``               hash    the account: id, username, name, avatar, roles, tags,
                                        metadata (JSON), type, utc, created, updated,
                                        activated (1/0), last_login, pw (hash)
``{hub:reg}:ids``               hash    id -> its key in ``by_created`` (id uniqueness)
``{hub:reg}:names``             hash    lowercased username -> id (username uniqueness)
``{hub:reg}:unames``            hash    id -> lowercased username
``{hub:reg}:by_created``        zset    ``<created:015d>:<id>``, all scores 0 (lex order)
``{hub:reg}:by_username``       zset    ``<lowercased username>\\0<id>`` (lex order)
``{hub:reg}:clock``             string  the last creation time (each account's is unique)
``{hub:rooms}:index``           zset    ``<created:015d>:<room>`` (lex order)
``{hub:rooms}:seq``             string  the last generated numeric room id
``{hub:rooms}:clock``           string  the last room creation time (each room's is unique)
``{hub:rooms}:r:<room>``        hash    name, created, updated, creator (whose join made it)
``{hub:rooms}:m:<room>``        set     the members (user ids)
``{hub:rooms}:log:<room>``      zset    user -> ``at`` of its last membership change (window)
``{hub:rooms}:u:<user>``        set     the rooms of a user
``{hub:rooms}:c:<user>``        set     the rooms a user's joins created (its room cap)
==============================  ======  =====================================================

Room events travel on ``<channel>:rooms`` (``HUB_CHANNEL``, default ``hub:presence:rooms``).
"""

from __future__ import annotations


class RegistryKeys:
    """Key names for one prefix; the prefix must not contain braces (it sits in the tags)."""

    def __init__(self, prefix: str) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"key prefix must not contain braces, got {prefix!r}")
        self.prefix = prefix
        users = f"{{{prefix}reg}}"
        self.ids = f"{users}:ids"
        self.names = f"{users}:names"
        self.unames = f"{users}:unames"
        self.by_created = f"{users}:by_created"
        self.by_username = f"{users}:by_username"
        self.clock = f"{users}:clock"
        rooms = f"{{{prefix}rooms}}"
        self.room_index = f"{rooms}:index"
        self.room_seq = f"{rooms}:seq"
        self.room_clock = f"{rooms}:clock"
        self._room = f"{rooms}:r:"
        self._members = f"{rooms}:m:"
        self._log = f"{rooms}:log:"
        self._user_rooms = f"{rooms}:u:"
        self.created_by_prefix = f"{rooms}:c:"

    def user(self, user: str) -> str:
        return f"{{{self.prefix}ru:{user}}}"

    def index(self) -> list[str]:
        """The keys of the users' slot, in the order the scripts take them."""
        return [self.ids, self.names, self.unames, self.by_created, self.by_username, self.clock]

    def room(self, room: str) -> str:
        return self._room + room

    def members(self, room: str) -> str:
        return self._members + room

    def log(self, room: str) -> str:
        return self._log + room

    def user_rooms(self, user: str) -> str:
        return self._user_rooms + user

    def created_by(self, user: str) -> str:
        return self.created_by_prefix + user


def rooms_channel(channel: str) -> str:
    """Where room events travel, beside the presence feed."""
    return f"{channel}:rooms"
