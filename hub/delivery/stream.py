"""The durable change stream: reading it with consumer groups, on one Redis or a cluster.

Every store script that publishes a batch also appends it to the change stream (see
``hub/stores/presence/lua/common.lua``): one entry per batch, one field ``d``
holding the same msgpack map as the pub/sub message, ``{v: 1, cursor, users}``, trimmed to
one window. On one Redis
that is the stream ``<prefix>changes`` (default ``hub:changes``); on a Redis Cluster each
bucket has its own, ``{<prefix>b<N>}:changes`` (see :mod:`hub.stores.presence.keys`).

:class:`GroupReader` is one consumer of one consumer group over every stream: it creates the
group (``XGROUP CREATE ... MKSTREAM``), reads new entries (``XREADGROUP``), reclaims entries
a dead consumer left pending (``XAUTOCLAIM``), acknowledges (``XACK``) and tells when the
group's position fell out of the stream (:meth:`GroupReader.behind`). Entries of several
streams are merged by entry id (time, then sequence). Both the SDK consumer
(:mod:`hub.clients.stream`) and the webhook delivery (:mod:`hub.delivery.webhooks`) use it.
What an entry holds is the decoder's: :class:`GroupReader` reads the change stream's
batches; :class:`Reader` takes any decoder (the Pusher webhook events of
:mod:`hub.delivery.pusher` are entries of another stream, read the same way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast

from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from hub.clients.pubsub import decode_message
from hub.model.presence import Entry
from hub.stores.presence.keys import Keys

__all__ = [
    "GroupReader",
    "Reader",
    "StreamEntry",
    "entry_order",
    "stream_client",
    "stream_keys",
]

#: Seconds a command may take beyond its BLOCK time before the socket gives up.
SOCKET_SLACK_S = 5.0


def entry_order(entry_id: str) -> tuple[int, int]:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``: the order of stream entry ids."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class StreamEntry:
    """One decoded stream entry: the batch of one store operation."""

    stream: str
    id: str
    cursor: int
    users: list[Entry] = field(default_factory=list)

    @property
    def order(self) -> tuple[int, int]:
        return entry_order(self.id)


class Positioned(Protocol):
    """What the reader needs of a decoded entry: its stream and its id (to merge, ack)."""

    @property
    def stream(self) -> str: ...

    @property
    def id(self) -> str: ...


#: A decoded entry of whatever stream a reader reads.
E = TypeVar("E", bound=Positioned)
#: ``(stream, [(id, fields), ...])`` -> entries; keeps every entry (a malformed one decoded
#: as empty), so each is still acknowledged and none blocks a group.
Decoder = Callable[[str, Iterable[Any]], list[E]]


def stream_keys(
    prefix: str = "hub:", *, cluster: bool = False, buckets: int = 0
) -> tuple[str, ...]:
    """The change streams of a hub with this key prefix (and, on a cluster, bucket count:
    ``HUB_BUCKETS``, 16 when unset)."""
    return Keys(prefix, buckets or (16 if cluster else 1), cluster=cluster).streams


def stream_client(url: str, *, block_s: float = 5.0) -> Redis | RedisCluster:
    """A bytes-answering client for ``redis://...`` or ``redis+cluster://host:port,...``;
    its socket timeout allows a blocking read of ``block_s``."""
    options: dict[str, Any] = {
        "decode_responses": False,
        "socket_timeout": block_s + SOCKET_SLACK_S,
        "socket_connect_timeout": SOCKET_SLACK_S,
    }
    if not url.startswith("redis+cluster://"):
        return Redis.from_url(url, **options)
    from hub.stores.presence.redis import cluster_nodes

    nodes, username, password = cluster_nodes(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        username=username,
        password=password,
        **options,
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decode_entries(stream: str, raw: Iterable[Any]) -> list[StreamEntry]:
    """``[(id, {b"d": payload}), ...]`` -> entries; a malformed entry (another writer) is
    kept with no users, so it is still acknowledged and never blocks a group."""
    out: list[StreamEntry] = []
    for item in raw:
        if item is None:
            continue
        entry_id, fields = item
        data = (fields or {}).get(b"d")
        try:
            cursor, users = decode_message(data) if isinstance(data, bytes) else (0, [])
        except ValueError:
            cursor, users = 0, []
        out.append(StreamEntry(stream=stream, id=_text(entry_id), cursor=cursor, users=users))
    return out


def merged(parts: Iterable[Sequence[E]]) -> list[E]:
    """Entries of several streams in one order: by entry id (time, then sequence)."""
    return sorted((e for part in parts for e in part), key=lambda e: entry_order(e.id))


class Reader(Generic[E]):
    """One consumer ``consumer`` of the group ``group`` on every stream in ``streams``,
    its entries decoded by ``decode``."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        streams: Sequence[str],
        group: str,
        consumer: str,
        decode: Decoder[E],
        *,
        start: str = "$",
    ) -> None:
        self.redis = redis
        self.decode = decode
        self.streams = tuple(streams)
        self.group = group
        self.consumer = consumer
        #: Where a new group starts: ``$`` (only what comes next) or ``0`` (all retained).
        self.start = start
        #: Times the group was found missing and made again (see :meth:`take_lost`).
        self.lost_groups = 0

    async def ensure(self, stream: str | None = None) -> bool:
        """Create the group on every stream (or one) where it is missing; True if it was
        missing anywhere (a new group, or Redis lost it: e.g. restarted empty)."""
        created = False
        for key in (stream,) if stream else self.streams:
            start, read = await self._position(key)
            try:
                await self.redis.xgroup_create(
                    key, self.group, id=start, mkstream=True, entries_read=read
                )
                created = True
            except rex.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        return created

    async def _regroup(self, key: str) -> None:
        """The group vanished from a stream (Redis restarted empty, the stream was deleted):
        make it again and remember that what was between is lost."""
        await self.ensure(key)
        self.lost_groups += 1

    def take_lost(self) -> bool:
        """True (once) when a group had to be made again since the last call."""
        lost, self.lost_groups = self.lost_groups > 0, 0
        return lost

    async def _position(self, key: str) -> tuple[str, int | None]:
        """Where a new group starts, with its entries-read count when known: a group made
        at "$" starts at the last id, having "read" every entry added so far (one XINFO
        answer for both, so :meth:`behind` never counts the entries from before it)."""
        if self.start != "$":
            return self.start, None
        try:
            info = cast(dict[Any, Any], await self.redis.xinfo_stream(key))
        except rex.ResponseError:
            return "$", 0  # no stream yet
        return _text(_get(info, "last-generated-id")), int(_get(info, "entries-added") or 0)

    async def _per_stream(self, call: Any) -> list[list[E]]:
        if len(self.streams) == 1:
            return [await call(self.streams[0])]
        return list(await asyncio.gather(*(call(key) for key in self.streams)))

    async def read(self, count: int, block_ms: int) -> list[E]:
        """Up to ``count`` new entries per stream, waiting up to ``block_ms`` for the first;
        a stream whose group vanished gets it back (from ``start``) and answers nothing."""

        async def one(key: str) -> list[E]:
            try:
                reply = await self.redis.xreadgroup(
                    self.group, self.consumer, {key: ">"}, count=count, block=block_ms or None
                )
            except rex.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._regroup(key)
                return []
            return self._decode(reply)

        return merged(await self._per_stream(one))

    def _decode(self, reply: Any) -> list[E]:
        # RESP2 answers [[stream, entries]]; RESP3 {stream: [entries]}.
        pairs = reply.items() if isinstance(reply, Mapping) else (reply or [])
        out: list[E] = []
        for key, raw in pairs:
            out.extend(self.decode(_text(key), raw))
        return out

    async def claim(self, min_idle_ms: int, count: int = 1000) -> tuple[list[E], int]:
        """Take over the group's entries pending longer than ``min_idle_ms`` (another
        consumer read them and died): ``(entries, lost)`` where ``lost`` counts pending
        entries the stream no longer holds (trimmed before anyone acknowledged them)."""
        lost = 0

        async def one(key: str) -> list[E]:
            nonlocal lost
            out: list[E] = []
            start = "0-0"
            while True:
                try:
                    reply = await self.redis.xautoclaim(
                        key, self.group, self.consumer, min_idle_ms, start_id=start, count=count
                    )
                except rex.ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    await self._regroup(key)
                    return out
                start = _text(reply[0])
                out.extend(self.decode(key, reply[1]))
                if len(reply) > 2 and reply[2]:
                    lost += len(reply[2])
                if start == "0-0":
                    return out

        entries = merged(await self._per_stream(one))
        return entries, lost

    async def pending_mine(self, count: int = 1000) -> list[E]:
        """Entries this consumer read before and did not acknowledge (e.g. before a restart
        under the same name): ``XREADGROUP ... 0``."""

        async def one(key: str) -> list[E]:
            try:
                reply = await self.redis.xreadgroup(
                    self.group, self.consumer, {key: "0"}, count=count
                )
            except rex.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._regroup(key)
                return []
            return self._decode(reply)

        return merged(await self._per_stream(one))

    async def ack(self, entries: Iterable[E]) -> None:
        by_stream: dict[str, list[str]] = {}
        for e in entries:
            by_stream.setdefault(e.stream, []).append(e.id)
        for key, ids in by_stream.items():
            await self.redis.xack(key, self.group, *ids)

    async def behind(self) -> bool:
        """True when entries the group never read were trimmed away: its last-delivered id
        is older than the stream's first entry and more entries were added since than the
        stream still holds. Checked before a read; entries trimmed between the check and
        the read are caught by the next check only if the group falls behind again."""
        results = await asyncio.gather(*(self._behind(key) for key in self.streams))
        return any(results)

    async def _behind(self, key: str) -> bool:
        try:
            info = cast(dict[Any, Any], await self.redis.xinfo_stream(key))
            groups = cast(list[dict[Any, Any]], await self.redis.xinfo_groups(key))
        except rex.ResponseError:
            return False  # no stream yet: nothing was lost
        group = next((g for g in groups if _text(_get(g, "name")) == self.group), None)
        length = int(_get(info, "length") or 0)
        first = _get(info, "first-entry")
        if group is None or not first:
            return False
        last = entry_order(_text(_get(group, "last-delivered-id")))
        if last >= entry_order(_text(first[0])):
            return False
        added = int(_get(info, "entries-added") or 0)
        read = _get(group, "entries-read")
        unread = added - int(read) if read is not None else added
        return unread > length


class GroupReader(Reader[StreamEntry]):
    """A reader of the change stream(s): entries are the store's batches (field ``d``)."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        start: str = "$",
    ) -> None:
        super().__init__(redis, streams, group, consumer, decode_entries, start=start)


def _get(mapping: Mapping[Any, Any], name: str) -> Any:
    if name in mapping:
        return mapping[name]
    return mapping.get(name.encode())
