"""Every Redis key and channel name the hub uses, built in one place.

Users are spread over ``B`` buckets (``crc32(user id) % B``). Every key of a bucket carries
the hash tag ``{<prefix>b<N>}``, so each Lua script touches exactly one Redis Cluster slot;
with one Redis and ``B = 1`` everything lives in one slot. Per bucket ``T = {hub:b3}``:

========================  =======  ===========================================================
``T:u:<user>``            hash     id, username, lname (lowercased username), name, chosen,
                                   text, status, at, avatar, utc, last_login, grace_until,
                                   last_seen, until (status expiry), hide_ls (the extras only
                                   when set: one field each per user, no history), chosen_at
                                   (the version of the user's choice: the stamp of its last
                                   change, which a node's restore must not overwrite)
``T:c:<user>``            hash     the user's connections: conn -> ``<state>:<node>``
``T:n:<node>``            hash     the node's connections in this bucket: conn -> user
                                   (reaping a dead node, draining a stopping one)
``T:idx``                 zset     the change index: user -> ``at``, trimmed to one window
``T:on``                  set      users not offline (the full snapshot)
``T:grace``               zset     users inside the offline grace: user -> deadline ms
``T:until``               zset     users whose chosen status expires: user -> until ms
``T:clock``               string   the largest ``at`` stamped in the bucket (see below)
``T:names``               hash     lowercased username -> user id
``T:epoch``               string   when this bucket's data began (set by the first read that
                                   finds it missing, e.g. after a restart without persistence)
``T:changes``             stream   on a Redis Cluster only: this bucket's durable change stream
                                   (entries ``d`` = the msgpack batch, trimmed to one window)
``T:ur``                  hash     the room index: user -> msgpack ``[member key, room...]``
                                   (only users in at least one room)
``T:ro:<room>``           zset     the room's members of this bucket: member keys, every score
                                   0 (lexicographic order is the members' order)
``T:rc:<room>``           hash     the bucket's share of the room's numbers: o(nline), a(way),
                                   b(usy), t(otal), s(eq of its last move); only s at 0 members
``T:tot``                 hash     the same numbers for every user of the bucket
========================  =======  ===========================================================

The room index lives in each user's bucket, so the script that changes a user moves it in
all its rooms in the same call (O(1) per room); a room is read by merging its buckets
(:mod:`hub.stores.presence.select` finds a global index). Its moves travel on
``<channel>:moves`` (:func:`moves_channel`), apart from the public presence channel.

The durable change stream: on one Redis it is a single stream ``<prefix>changes`` (default
``hub:changes``) for every bucket, so it keeps the total order of the changes; on a Redis
Cluster each bucket has its own, ``{<prefix>b<N>}:changes``, in the bucket's slot, so the
scripts append to it atomically (hub.delivery.stream reads and merges them).

Global, in their own slot: ``{<prefix>nodes}`` (zset, node -> heartbeat expiry ms) and
``{<prefix>nodes}:reaped`` (hash, node -> 1 once a sweep reaped it: its next heartbeat
answers False so it re-registers its connections).

The bucket clock exists because ``at`` may run a few milliseconds ahead of ``TIME`` (two
changes of one user in one millisecond); every script stamps at or above it, so a cursor
taken from it never lets a later change slip below. Usernames are indexed in the bucket of
their user, so a script can rename atomically; :meth:`RedisStore.find_username` therefore
asks every bucket (one round trip per cluster node), which is fine for a lookup that only
REST calls make. The prefix must not contain ``{`` or ``}``: it sits inside the hash tag.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from hub.ops.config import ConfigError


@dataclass(frozen=True, slots=True)
class BucketKeys:
    """The fixed keys of one bucket, and the prefixes of its per-user and per-node keys."""

    user: str
    conns: str
    node: str
    idx: str
    on: str
    grace: str
    expiries: str
    clock: str
    names: str
    epoch: str
    stream: str


class Keys:
    """Key names for one ``prefix`` and bucket count; built once, reused by every call."""

    def __init__(self, prefix: str, buckets: int, *, cluster: bool = False) -> None:
        if "{" in prefix or "}" in prefix:
            raise ConfigError(f"HUB_KEY_PREFIX must not contain braces, got {prefix!r}")
        if buckets < 1:
            raise ConfigError(f"HUB_BUCKETS must be at least 1, got {buckets}")
        self.prefix = prefix
        self.count = buckets
        self.nodes = f"{{{prefix}nodes}}"
        self.reaped = f"{self.nodes}:reaped"
        self.cluster = cluster
        self.buckets: tuple[BucketKeys, ...] = tuple(
            self._bucket(f"{{{prefix}b{n}}}", None if cluster else f"{prefix}changes")
            for n in range(buckets)
        )

    @property
    def streams(self) -> tuple[str, ...]:
        """Every change stream: one on a single Redis, one per bucket on a cluster."""
        return tuple(dict.fromkeys(b.stream for b in self.buckets))

    @staticmethod
    def _bucket(tag: str, stream: str | None) -> BucketKeys:
        return BucketKeys(
            user=f"{tag}:u:",
            conns=f"{tag}:c:",
            node=f"{tag}:n:",
            idx=f"{tag}:idx",
            on=f"{tag}:on",
            grace=f"{tag}:grace",
            expiries=f"{tag}:until",
            clock=f"{tag}:clock",
            names=f"{tag}:names",
            epoch=f"{tag}:epoch",
            stream=stream or f"{tag}:changes",
        )

    def bucket_of(self, user: str) -> BucketKeys:
        """The bucket that holds ``user``; stable across processes (crc32, not hash())."""
        if self.count == 1:
            return self.buckets[0]
        return self.buckets[zlib.crc32(user.encode()) % self.count]


def control_channel(channel: str) -> str:
    """Where control messages (close this user's sockets) travel, beside the presence feed."""
    return f"{channel}:control"


def moves_channel(channel: str) -> str:
    """Where the room index's moves travel to every hub (common.lua ``publish_moves``)."""
    return f"{channel}:moves"
