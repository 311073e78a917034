"""The Redis store: many hub processes share one Redis or one Redis Cluster.

Every mutating call is one ``EVALSHA`` of a Lua script from ``hub/stores/presence/lua/`` (the shared
``common.lua`` helpers are prepended, mirroring :mod:`hub.model.presence`), so each connect,
disconnect or status change is one atomic round trip stamped on the Redis clock (``TIME``).
The script itself publishes the batch of visible changes, msgpack-encoded, on the presence
channel and appends it to the durable change stream (the last KEYS entry of every such
script: see :mod:`hub.stores.presence.keys`); writes that change nothing publish nothing. Users are
spread over hash-tagged buckets (see :mod:`hub.stores.presence.keys`) so that, on a cluster, each
script touches one slot; calls that span users (changes, sweep, reaping a node) run one
script per bucket and merge.
Every Redis failure surfaces as :class:`~hub.stores.presence.base.StoreUnavailable`, with
short socket timeouts so nothing hangs; scripts reload themselves after Redis restarts empty
(NOSCRIPT).
"""

from __future__ import annotations

import asyncio
import logging
import os
import traceback
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from contextlib import aclosing, contextmanager
from functools import cache
from importlib import resources
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

import msgpack
import redis
from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff

from hub.model.presence import Entry, check_until
from hub.model.roster import Counts, Part, absent_entry, user_of
from hub.model.text import InvalidText
from hub.ops.config import ConfigError, Settings
from hub.stores.feed import GAP, Subscription
from hub.stores.presence.base import (
    Batch,
    Changes,
    Choice,
    Control,
    Event,
    Gap,
    LiveConnection,
    Liveness,
    Moves,
    Profile,
    RoomMove,
    Slice,
    StoreUnavailable,
    UserView,
)
from hub.stores.presence.keys import BucketKeys, Keys, control_channel, moves_channel
from hub.stores.presence.select import At, Below, select

log = logging.getLogger(__name__)

#: Connect and read timeout: a dead Redis answers StoreUnavailable in seconds, not never.
TIMEOUT_S = 2.0
#: Redis connections (commands in flight) per store. redis-py's default pools fail at once
#: with "Too many connections" past 100, which turned a reconnect storm into 1013s, failed
#: heartbeats and 503s; past this many, calls wait their turn (up to TIMEOUT_S) instead.
POOL_CONNECTIONS = 128
#: Retries of a cluster command (each after reloading the slot table).
CLUSTER_RETRIES = 3
#: Graces ended per script call; a sweep loops while a bucket has more due.
GRACE_BATCH = 1000
#: Status expiries applied per script call; the same loop.
EXPIRY_BATCH = 1000
#: An answer to changes() with more users than this is read in chunks of READ_CHUNK users,
#: each one short script call, instead of in one call that would block Redis.
INLINE_ROWS = 256
READ_CHUNK = 500
#: Chunked reads in flight per store.
READS_IN_FLIGHT = 4
#: Connections reaped per script call (an HSCAN COUNT, so approximate).
REAP_BATCH = 1000
#: A dead node stays listed, and reaped by every sweep, this long after its expiry.
FORGET_NODE_AFTER_MS = 60_000
#: restore calls (one per user) in flight while a node re-registers its connections.
RESTORE_CONCURRENCY = 16

SCRIPTS = (
    "connect",
    "disconnect",
    "activity",
    "set_status",
    "set_profile",
    "drop_user",
    "heartbeat",
    "restore",
    "nodes_expired",
    "node_reaped",
    "reap",
    "expire_grace",
    "expire_status",
    "changes",
    "users",
    "room_add",
    "room_remove",
    "room_counts",
    "room_range",
    "room_probe",
)
#: Users per room_add / room_remove call, and keys per room_range read of a many-bucket
#: store before their rows are read (in READ_CHUNK calls).
ROOM_CHUNK = 500

#: Errors that mean "Redis cannot serve now"; anything else (a script error) is a bug.
#: Matched by class: redis-py turns each error reply's code into one (LOADING ->
#: BusyLoadingError, MOVED -> MovedError, ...), whatever wording a release gives it.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    rex.ConnectionError,  # also BusyLoadingError (LOADING), MaxConnectionsError
    rex.TimeoutError,
    rex.ClusterError,  # also ClusterDownError (CLUSTERDOWN), MasterDownError (MASTERDOWN)
    rex.TryAgainError,  # TRYAGAIN
    rex.ReadOnlyError,  # READONLY: a replica promoted mid-failover
    rex.AskError,  # ASK, and MovedError (MOVED): a failover redirects faster than we follow
    rex.RedisClusterException,  # also SlotNotCoveredError
    rex.OutOfMemoryError,
    OSError,
    TimeoutError,
)
#: Error codes of replies that mean the same but have no class in redis-py: BUSY (a script
#: past its time limit). The code is the reply's first word, by the protocol itself.
_TRANSIENT_CODES = frozenset({"BUSY"})
#: What redis-py's own code raises while a cluster client reconnects under a failover: one
#: command's CLUSTERDOWN closes every connection of the client, so the others in flight fail
#: with AttributeError ('NoneType' object has no attribute 'writelines'), RuntimeError
#: (unable to perform operation on <TCPTransport closed=True>), IndexError or KeyError from
#: a half-built slot table. Raised from inside redis-py, they mean "cannot serve now";
#: raised from the hub's own code they are bugs and pass through.
_CLIENT_FAILURES: tuple[type[BaseException], ...] = (
    AttributeError, RuntimeError, IndexError, KeyError, EOFError,
)  # fmt: skip
_REDIS_PACKAGE = os.path.dirname(redis.__file__) + os.sep

T = TypeVar("T")


@contextmanager
def unavailable() -> Iterator[None]:
    """Turn a Redis failure into StoreUnavailable; let programming errors through."""
    try:
        yield
    except UnicodeEncodeError as exc:
        # Text that is not valid Unicode reached the client's encoder: bad input, refused
        # (a ValueError naming the problem), never a crash. Entry points check before this.
        raise InvalidText("value", f"text must be valid Unicode: {exc.reason}") from None
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"redis: {exc}") from exc
    except rex.ResponseError as exc:
        if _reply_code(exc) in _TRANSIENT_CODES:
            raise StoreUnavailable(f"redis: {exc}") from exc
        raise
    except _CLIENT_FAILURES as exc:
        if _raised_in_redis_py(exc):
            raise StoreUnavailable(f"redis client: {type(exc).__name__}: {exc}") from exc
        raise


def _reply_code(exc: rex.ResponseError) -> str:
    """The error code of the reply behind ``exc`` (``BUSY``, ``ERR``, ...): recent redis-py
    releases keep it as ``status_code``, older ones leave it as the message's first word."""
    code = getattr(exc, "status_code", None)
    if isinstance(code, str) and code:
        return code
    return str(exc).split(" ", 1)[0]


def _raised_in_redis_py(exc: BaseException) -> bool:
    """True when the innermost frames of ``exc`` are redis-py's (or asyncio's under it)."""
    frames = list(traceback.walk_tb(exc.__traceback__))
    for frame, _ in reversed(frames):
        name = frame.f_code.co_filename
        if name.startswith(_REDIS_PACKAGE):
            return True
        if "asyncio" not in name and "uvloop" not in name:
            return False
    return False


@cache
def script_source(name: str) -> str:
    """A script's text with the shared helpers in front (read once per process)."""
    folder = resources.files("hub.stores.presence").joinpath("lua")
    common = folder.joinpath("common.lua").read_text(encoding="utf-8")
    return common + "\n" + folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")


def cluster_nodes(url: str) -> tuple[list[tuple[str, int]], str | None, str | None]:
    """``redis+cluster://[user:pass@]host:port[,host:port...]`` -> nodes, username, password."""
    rest = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    username = password = None
    if "@" in rest:
        auth, rest = rest.rsplit("@", 1)
        user, _, secret = auth.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    nodes = []
    for part in rest.split(","):
        parsed = urlsplit(f"//{part}")
        if not parsed.hostname:
            raise ConfigError(f"HUB_STORE cluster nodes must be host:port, got {part!r} in {url!r}")
        nodes.append((parsed.hostname, parsed.port or 6379))
    return nodes, username, password


def _view(row: Sequence[Any], show_last_seen: bool = True) -> UserView:
    """A user row as the scripts return it (common.lua ``row``)."""
    return UserView(
        id=row[0],
        username=row[1],
        name=row[2],
        status=row[3],
        text=row[4],
        at=int(row[5]),
        chosen=row[6],
        avatar=row[7],
        utc_offset=float(row[8]),
        last_login=int(row[9]),
        connections=int(row[10]),
        last_seen=int(row[11] or 0) if show_last_seen else 0,
        until=int(row[12] or 0),
        hide_last_seen=row[13] == "1",
    )


def _tag(b: BucketKeys) -> str:
    """A bucket's name in :class:`Moves` and parts: its hash tag (the clock key's stem)."""
    return b.clock[: -len(":clock")]


def _utc(value: float) -> str:
    return repr(float(value))


async def _all(calls: Sequence[Awaitable[T]]) -> list[T]:
    """Await every call; raise the first failure only once all finished (no orphans)."""
    if len(calls) == 1:
        return [await calls[0]]
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)


def command_client(url: str) -> Redis | RedisCluster:
    """A client for commands and scripts on ``url`` (a Redis or a cluster).

    At most POOL_CONNECTIONS commands in flight; more wait for a connection (up to
    TIMEOUT_S) instead of failing at once, so a reconnect storm queues rather than errs.
    One retry on a fresh connection: a pooled socket may be dead after a Redis restart;
    more would only delay StoreUnavailable while Redis is really down."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": TIMEOUT_S,
        "socket_connect_timeout": TIMEOUT_S,
        "retry": Retry(NoBackoff(), 1),
    }
    if not url.startswith("redis+cluster://"):
        pool = BlockingConnectionPool.from_url(
            url, max_connections=POOL_CONNECTIONS, timeout=TIMEOUT_S, **options
        )
        return Redis.from_pool(pool)
    nodes, username, password = cluster_nodes(url)
    # On a cluster this is the client's own retry (its per-node connections never retry):
    # a ConnectionError, TimeoutError or CLUSTERDOWN makes it reload the slot table from any
    # live node and try again. A master's failover takes a few seconds (detection plus the
    # replica's election); a few retries with backoff ride out its start and then find the
    # promoted replica, without holding a call much longer than TIMEOUT_S.
    options["retry"] = Retry(ExponentialBackoff(cap=0.5, base=0.05), CLUSTER_RETRIES)
    return _QueuedCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        username=username,
        password=password,
        **options,
    )


def subscription(url: str, channels: Sequence[str], what: str) -> Subscription:
    """A pub/sub subscription on ``url``; on a cluster, any node hears every PUBLISH."""
    nodes: list[tuple[str, int]] | None = None
    username = password = None
    if url.startswith("redis+cluster://"):
        nodes, username, password = cluster_nodes(url)
    return Subscription(
        url,
        channels,
        what=what,
        timeout_s=TIMEOUT_S,
        cluster_nodes=nodes,
        username=username,
        password=password,
    )


#: How far before a cursor a multi-bucket read starts (see :meth:`RedisStore.changes`).
SKEW_SLACK_MS = 1_000


class _QueuedCluster(RedisCluster):
    """A RedisCluster whose commands wait for a free connection instead of failing.

    Its per-node pools raise MaxConnectionsError when full; at most POOL_CONNECTIONS commands
    are in flight here, so no node's pool ever is."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_connections=POOL_CONNECTIONS, **kwargs)
        self._in_flight = asyncio.Semaphore(POOL_CONNECTIONS)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._in_flight:
            return await super().execute_command(*args, **kwargs)


class RedisStore:
    """A :class:`~hub.stores.presence.base.PresenceStore` in Redis or Redis Cluster."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "hub:",
        channel: str = "hub:presence",
        window_ms: int = 600_000,
        grace_ms: int = 5_000,
        buckets: int = 0,
        show_last_seen: bool = True,
    ) -> None:
        self.url = url
        self.cluster = url.startswith("redis+cluster://")
        self.window_ms = window_ms
        self.grace_ms = grace_ms
        self.keys = Keys(key_prefix, buckets or (16 if self.cluster else 1), cluster=self.cluster)
        self.channel = channel
        self.control = control_channel(channel)
        self.moves = moves_channel(channel)
        self._channel_b = channel.encode()
        self._control_b = self.control.encode()
        self._moves_b = self.moves.encode()
        self._window = str(window_ms)
        self._closed = False
        self._feeds: set[Subscription] = set()
        self._reads = asyncio.Semaphore(READS_IN_FLIGHT)
        self._redis: Redis | RedisCluster = self._client()
        self.show_last_seen = show_last_seen
        # HUB_LAST_SEEN reaches the scripts as a constant in front of common.lua.
        policy = f"local LAST_SEEN = {'true' if show_last_seen else 'false'}\n"
        source = {name: policy + script_source(name) for name in SCRIPTS}
        reg = self._redis.register_script
        self._connect = reg(source["connect"])
        self._disconnect = reg(source["disconnect"])
        self._activity = reg(source["activity"])
        self._set_status = reg(source["set_status"])
        self._set_profile = reg(source["set_profile"])
        self._drop_user = reg(source["drop_user"])
        self._heartbeat = reg(source["heartbeat"])
        self._restore = reg(source["restore"])
        self._nodes_expired = reg(source["nodes_expired"])
        self._node_reaped = reg(source["node_reaped"])
        self._reap = reg(source["reap"])
        self._expire_grace = reg(source["expire_grace"])
        self._expire_status = reg(source["expire_status"])
        self._changes = reg(source["changes"])
        self._users = reg(source["users"])
        self._room_add = reg(source["room_add"])
        self._room_remove = reg(source["room_remove"])
        self._room_counts = reg(source["room_counts"])
        self._room_range = reg(source["room_range"])
        self._room_probe = reg(source["room_probe"])
        self._scripts = [source[name] for name in SCRIPTS]

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStore:
        return cls(
            settings.store,
            key_prefix=settings.key_prefix,
            channel=settings.channel,
            window_ms=settings.window_ms,
            grace_ms=settings.grace_ms,
            buckets=settings.buckets,
            show_last_seen=settings.last_seen == "everyone",
        )

    def _client(self) -> Redis | RedisCluster:
        return command_client(self.url)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        with unavailable():
            if isinstance(self._redis, RedisCluster):
                await self._redis.initialize()
            # Loading up front fails fast on a Redis without Lua; later NOSCRIPTs reload.
            for text in self._scripts:
                await self._redis.script_load(text)
        # A store that starts on empty buckets records that its data begins now; cursors
        # from before then get snapshots (changes.lua also sets a missing epoch, conservatively).
        await self.epoch()

    async def close(self) -> None:
        self._closed = True
        for sub in list(self._feeds):
            await sub.close()
        await self._redis.aclose()

    async def now(self) -> int:
        with unavailable():
            seconds, micros = await self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    # -- connections -------------------------------------------------------------

    async def connect(self, node: str, conn: str, profile: Profile, state: str) -> UserView:
        b = self.keys.bucket_of(profile.id)
        uid = profile.id
        with unavailable():
            row = await self._connect(
                keys=[b.user + uid, b.conns + uid, b.idx, b.on, b.grace, b.clock, b.names,
                      b.node + node, b.stream],
                args=[uid, conn, node, state, profile.username, profile.username.lower(),
                      profile.name, profile.avatar,
                      _utc(profile.utc_offset) if profile.utc_offset else "",
                      self._window, self.channel],
            )  # fmt: skip
        return _view(row, self.show_last_seen)

    async def disconnect(self, node: str, conn: str, user: str, *, grace: bool = True) -> None:
        b = self.keys.bucket_of(user)
        with unavailable():
            await self._disconnect(
                keys=[b.user + user, b.conns + user, b.idx, b.on, b.grace, b.clock,
                      b.node + node, b.stream],
                args=[conn, self.grace_ms if grace else 0, self._window, self.channel],
            )  # fmt: skip

    async def activity(self, node: str, conn: str, user: str, state: str) -> bool:
        b = self.keys.bucket_of(user)
        with unavailable():
            known = await self._activity(
                keys=[b.user + user, b.conns + user, b.idx, b.on, b.grace, b.clock, b.stream],
                args=[conn, state, self._window, self.channel],
            )
        return bool(known)

    async def set_status(
        self,
        user: str,
        *,
        status: str | None = None,
        text: str | None = None,
        until: int | None = None,
        hide_last_seen: bool | None = None,
    ) -> UserView | None:
        if until is not None:
            check_until(until, await self.now())
        b = self.keys.bucket_of(user)
        hide = "" if hide_last_seen is None else "1" if hide_last_seen else "0"
        with unavailable():
            row = await self._set_status(
                keys=[b.user + user, b.conns + user, b.idx, b.on, b.grace, b.clock,
                      b.expiries, b.stream],
                args=[status or "", "0" if text is None else "1", text or "",
                      self._window, self.channel, "" if until is None else str(until), hide],
            )  # fmt: skip
        return None if row is None else _view(row, self.show_last_seen)

    async def expire_statuses(self) -> None:
        now = await self.now()

        async def bucket(b: BucketKeys) -> None:
            # Most sweeps find nothing due: a look at the earliest expiry costs Redis a
            # fraction of a script call (the script decides again, atomically, on its own
            # clock; one a few ms early by clock skew waits for the next sweep).
            with unavailable():
                first = await self._redis.zrange(b.expiries, 0, 0, withscores=True)
            if not first or float(first[0][1]) > now:
                return
            examined = EXPIRY_BATCH
            while examined >= EXPIRY_BATCH:
                with unavailable():
                    examined = await self._expire_status(
                        keys=[b.idx, b.on, b.grace, b.clock, b.expiries, b.stream],
                        args=[b.user, b.conns, EXPIRY_BATCH, self._window, self.channel],
                    )

        await _all([bucket(b) for b in self.keys.buckets])

    async def set_profile(self, profile: Profile, *, create: bool = True) -> UserView | None:
        b = self.keys.bucket_of(profile.id)
        uid = profile.id
        with unavailable():
            row = await self._set_profile(
                keys=[b.user + uid, b.conns + uid, b.idx, b.on, b.grace, b.clock, b.names,
                      b.stream],
                args=[uid, profile.username, profile.username.lower(), profile.name,
                      profile.avatar, _utc(profile.utc_offset), "1" if create else "0",
                      self._window, self.channel],
            )  # fmt: skip
        return None if row is None else _view(row, self.show_last_seen)

    async def drop_user(self, user: str) -> None:
        b = self.keys.bucket_of(user)
        with unavailable():
            await self._drop_user(
                keys=[b.user + user, b.conns + user, b.idx, b.on, b.grace, b.clock, b.stream],
                args=[b.node, self._window, self.channel],
            )

    # -- nodes ---------------------------------------------------------------------

    async def heartbeat(self, node: str, ttl_ms: int, *, epoch: int | None) -> Liveness:
        with unavailable():
            known = await self._heartbeat(
                keys=[self.keys.nodes, self.keys.reaped], args=[node, ttl_ms]
            )
        # The epochs are read after the heartbeat: a Redis that restarts between the two
        # shows here (the heartbeat may have said known), never the other way round.
        if epoch is not None and await self._lost_since(epoch):
            return Liveness.LOST
        return Liveness.KNOWN if known else Liveness.REAPED

    async def _lost_since(self, epoch: int) -> bool:
        """True when some bucket's data began after ``epoch`` (or has no epoch: it is gone)."""

        async def one(b: BucketKeys) -> bool:
            with unavailable():
                value = await self._redis.get(b.epoch)
            return value is None or int(value) > epoch

        return any(await _all([one(b) for b in self.keys.buckets]))

    async def nodes_alive(self) -> int:
        """Nodes whose heartbeat has not expired (for the ``hub_nodes_alive`` metric)."""
        now = await self.now()
        with unavailable():
            return int(await self._redis.zcount(self.keys.nodes, now, "+inf"))

    async def node_connections(self, node: str) -> dict[str, str]:
        async def one(b: BucketKeys) -> dict[str, str]:
            with unavailable():
                raw = await self._redis.hgetall(b.node + node)
            return {_str(k): _str(v) for k, v in raw.items()}

        found: dict[str, str] = {}
        for part in await _all([one(b) for b in self.keys.buckets]):
            found.update(part)
        return found

    async def epoch(self) -> int:
        """When the data began: the latest bucket epoch (set now where one is missing)."""
        now = await self.now()

        async def one(b: BucketKeys) -> int:
            with unavailable():
                old = await self._redis.set(b.epoch, now, nx=True, get=True)
            return now if old is None else int(old)

        return max(await _all([one(b) for b in self.keys.buckets]))

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
        gate = asyncio.Semaphore(RESTORE_CONCURRENCY)

        async def one(uid: str, conns: list[LiveConnection]) -> None:
            b = self.keys.bucket_of(uid)
            profile = conns[0].profile
            choice = chosen.get(uid)
            offer = ["0", "", "", "0", "0"] if choice is None else [
                "1", choice.status, choice.text, str(choice.until), str(choice.seen_at),
            ]  # fmt: skip
            pairs = [value for item in conns for value in (item.conn, item.state)]
            async with gate:
                with unavailable():
                    await self._restore(
                        keys=[b.user + uid, b.conns + uid, b.idx, b.on, b.grace, b.clock,
                              b.names, b.node + node, b.expiries, b.epoch, b.stream],
                        args=[uid, node, self._window, self.channel, profile.username,
                              profile.username.lower(), profile.name, profile.avatar,
                              _utc(profile.utc_offset) if profile.utc_offset else "",
                              str(epoch), *offer, *pairs],
                    )  # fmt: skip

        if by_user:
            await _all([one(uid, conns) for uid, conns in by_user.items()])

    async def sweep(self) -> None:
        with unavailable():
            expired = await self._nodes_expired(keys=[self.keys.nodes])
        for node in expired[::2]:
            await self._reap_node(node, grace_ms=0)
            with unavailable():
                await self._node_reaped(
                    keys=[self.keys.nodes, self.keys.reaped], args=[node, FORGET_NODE_AFTER_MS]
                )
        await _all([self._expire_bucket(b) for b in self.keys.buckets])

    async def _expire_bucket(self, b: BucketKeys) -> None:
        examined = GRACE_BATCH
        while examined >= GRACE_BATCH:
            with unavailable():
                examined = await self._expire_grace(
                    keys=[b.idx, b.on, b.grace, b.clock, b.stream],
                    args=[b.user, b.conns, GRACE_BATCH, self._window, self.channel],
                )

    async def remove_node(self, node: str, *, grace: bool) -> None:
        await self._reap_node(node, grace_ms=self.grace_ms if grace else 0)
        with unavailable():
            await self._node_reaped(keys=[self.keys.nodes, self.keys.reaped], args=[node, 0])

    async def _reap_node(self, node: str, *, grace_ms: int) -> None:
        async def reap(b: BucketKeys) -> None:
            cursor = "0"
            while True:
                with unavailable():
                    cursor = await self._reap(
                        keys=[b.node + node, b.idx, b.on, b.grace, b.clock, b.stream],
                        args=[b.user, b.conns, grace_ms, self._window, self.channel,
                              cursor, REAP_BATCH],
                    )  # fmt: skip
                if cursor == "0":
                    return

        await _all([reap(b) for b in self.keys.buckets])

    # -- queries -----------------------------------------------------------------

    async def changes(self, since: int | None) -> Changes:
        since_arg = "" if since is None else str(int(since))
        start = since_arg
        if since is not None and len(self.keys.buckets) > 1:
            # Buckets on different cluster masters stamp with their own TIME; a cursor from
            # one may run ahead of a later stamp on another. Reading a little earlier costs
            # a few duplicate states (harmless) and never misses one.
            start = str(int(since) - SKEW_SLACK_MS)
        replies = await self._changes_all(since_arg, "", start)
        if len({reply[0] for reply in replies}) > 1:
            # Buckets read their clocks a moment apart and disagreed at the window's edge;
            # a snapshot is a correct answer to any cursor.
            replies = await self._changes_all(since_arg, "full", start)
        full = bool(replies[0][0])
        users: list[UserView] = []
        later: list[Awaitable[list[UserView]]] = []
        for b, reply in zip(self.keys.buckets, replies, strict=True):
            if reply[2]:
                users.extend(_view(row, self.show_last_seen) for row in reply[3:])
            else:
                later.append(self._read(b, reply[3:]))
        # Large answers are read after the cursor was taken, a chunk per call, so no single
        # script blocks Redis for long. A user read that way may be newer than the cursor
        # (seen again later: harmless) or offline by now (its change is at or after the
        # cursor, so the next delta has it): a snapshot leaves those out.
        for chunk in await _all(later) if later else []:
            users.extend(u for u in chunk if not full or u.status != "offline")
        if len(replies) > 1:
            users.sort(key=lambda user: user.at)
        # The smallest bucket clock: a later change anywhere is stamped at or above it, so a
        # consumer resuming from it may see an entry twice (harmless), never miss one.
        cursor = min(int(reply[1]) for reply in replies)
        return Changes(users=users, cursor=cursor, full=full)

    async def _changes_all(self, since: str, mode: str, start: str) -> list[list[Any]]:
        async def one(b: BucketKeys) -> list[Any]:
            with unavailable():
                reply = await self._changes(
                    keys=[b.idx, b.on, b.clock, b.epoch],
                    args=[b.user, b.conns, since, self._window, mode, INLINE_ROWS, start],
                )
            return cast(list[Any], reply)

        return await _all([one(b) for b in self.keys.buckets])

    async def _read(self, b: BucketKeys, ids: Sequence[str]) -> list[UserView]:
        """Users of one bucket, READ_CHUNK per script call; unknown ones left out."""

        async def chunk(members: Sequence[str]) -> list[Any]:
            async with self._reads:
                with unavailable():
                    reply = await self._users(keys=[b.clock], args=[b.user, b.conns, *members])
            return cast(list[Any], reply)

        chunks = [ids[n : n + READ_CHUNK] for n in range(0, len(ids), READ_CHUNK)]
        replies = await _all([chunk(members) for members in chunks])
        show = self.show_last_seen
        return [_view(row, show) for reply in replies for row in reply if row is not None]

    async def users(self, ids: Sequence[str]) -> list[UserView]:
        if not ids:
            return []
        groups: dict[int, tuple[BucketKeys, list[str]]] = {}
        for uid in dict.fromkeys(ids):
            b = self.keys.bucket_of(uid)
            groups.setdefault(id(b), (b, []))[1].append(uid)
        found = {
            user.id: user
            for chunk in await _all([self._read(b, members) for b, members in groups.values()])
            for user in chunk
        }
        return [found[uid] for uid in ids if uid in found]

    async def get(self, user: str) -> UserView | None:
        found = await self.users([user])
        return found[0] if found else None

    async def find_username(self, username: str) -> str | None:
        lname = username.lower()

        async def one(b: BucketKeys) -> str | None:
            with unavailable():
                return cast(str | None, await self._redis.hget(b.names, lname))

        # Usernames are indexed in their user's bucket, so every bucket is asked.
        hits = await _all([one(b) for b in self.keys.buckets])
        return next((hit for hit in hits if hit is not None), None)

    # -- the room index --------------------------------------------------------------

    def _by_bucket(self, users: Sequence[str]) -> list[tuple[BucketKeys, list[str]]]:
        groups: dict[int, tuple[BucketKeys, list[str]]] = {}
        for uid in dict.fromkeys(users):
            b = self.keys.bucket_of(uid)
            groups.setdefault(id(b), (b, []))[1].append(uid)
        return [
            (b, members[n : n + ROOM_CHUNK])
            for b, members in groups.values()
            for n in range(0, len(members), ROOM_CHUNK)
        ]

    async def room_add(self, room: str, users: Sequence[str]) -> int:
        async def one(b: BucketKeys, members: list[str]) -> int:
            args = [room, self.channel, b.user, *members]
            with unavailable():
                return int(await self._room_add(keys=[b.clock], args=args))

        return sum(await _all([one(b, m) for b, m in self._by_bucket(users)])) if users else 0

    async def room_remove(self, room: str, users: Sequence[str]) -> int:
        async def one(b: BucketKeys, members: list[str]) -> int:
            args = [room, self.channel, *members]
            with unavailable():
                return int(await self._room_remove(keys=[b.clock], args=args))

        return sum(await _all([one(b, m) for b, m in self._by_bucket(users)])) if users else 0

    async def room_counts(self, room: str | None) -> dict[str, Part]:
        async def one(b: BucketKeys) -> Part:
            with unavailable():
                return _part(await self._room_counts(keys=[b.clock], args=[room or ""]))

        parts = await _all([one(b) for b in self.keys.buckets])
        return {_tag(b): part for b, part in zip(self.keys.buckets, parts, strict=True)}

    async def _range(self, b: BucketKeys, room: str, mode: str, at: str, count: int,
                     rows: bool) -> tuple[Part, int, bool, list[str], list[Any]]:  # fmt: skip
        """One bucket's ``room_range``: (part, below, exhausted, keys, rows)."""
        with unavailable():
            reply = await self._room_range(
                keys=[b.clock],
                args=[room, mode, at, count, "1" if rows else "0", b.user, b.conns],
            )
        part = _part(reply[0:5])
        below, n = int(reply[5]), int(reply[6])
        keys = [str(k) for k in reply[7 : 7 + n]]
        exhausted = below + n >= part.counts.total
        return part, below, exhausted, keys, list(reply[7 + n :])

    def _items(self, keys: list[str], rows: list[Any]) -> list[tuple[str, Entry]]:
        show = self.show_last_seen
        return [
            (key, _view(row, show).entry() if row else absent_entry(user_of(key)))
            for key, row in zip(keys, rows, strict=True)
        ]

    async def room_slice(self, room: str, start: int, count: int) -> Slice:
        buckets = self.keys.buckets
        if len(buckets) == 1:
            b = buckets[0]
            part, below, exhausted, keys, rows = await self._range(
                b, room, "rank", str(max(start, 0)), count, True
            )
            return Slice(below, self._items(keys, rows), exhausted, {_tag(b): part})
        first = ""
        if start > 0:
            parts = await self.room_counts(room)
            sizes = [parts[_tag(b)].counts.total for b in buckets]
            first = await select(start, sizes, self._probe_at(room), self._probe_below(room)) or ""
            if not first:
                return Slice(sum(sizes), [], True, parts)  # past the last member
        return await self._merged(room, "from", first, count)

    async def room_after(self, room: str, key: str, count: int) -> Slice:
        buckets = self.keys.buckets
        if len(buckets) == 1:
            b = buckets[0]
            part, below, exhausted, keys, rows = await self._range(
                b, room, "after", key, count, True
            )
            return Slice(below, self._items(keys, rows), exhausted, {_tag(b): part})
        return await self._merged(room, "after", key, count)

    async def _merged(self, room: str, mode: str, at: str, count: int) -> Slice:
        """Every bucket's next ``count`` keys from ``at``, merged; then the rows of those
        kept. Each bucket answers at once, so the slice's start is exact for its keys."""
        buckets = self.keys.buckets
        replies = await _all([self._range(b, room, mode, at, count, False) for b in buckets])
        merged = sorted(key for reply in replies for key in reply[3])
        kept = merged[:count]
        at_end = len(merged) <= count and all(reply[2] for reply in replies)
        views = {v.id: v for v in await self.users([user_of(k) for k in kept])}
        items = [
            (key, views[uid].entry() if (uid := user_of(key)) in views else absent_entry(uid))
            for key in kept
        ]
        start = sum(reply[1] for reply in replies)
        parts = {_tag(b): reply[0] for b, reply in zip(buckets, replies, strict=True)}
        return Slice(start, items, at_end, parts)

    def _probe_at(self, room: str) -> At:
        async def at(ranks: Sequence[int | None]) -> list[str | None]:
            async def one(b: BucketKeys, rank: int | None) -> str | None:
                if rank is None:
                    return None
                with unavailable():
                    reply = await self._room_probe(keys=[b.clock], args=[room, "at", rank])
                return str(reply[0]) if reply and reply[0] else None

            return await _all([one(b, r) for b, r in zip(self.keys.buckets, ranks, strict=True)])

        return at

    def _probe_below(self, room: str) -> Below:
        async def below(keys: Sequence[str]) -> list[list[int]]:
            async def one(b: BucketKeys) -> list[int]:
                with unavailable():
                    reply = await self._room_probe(keys=[b.clock], args=[room, "below", *keys])
                return [int(n) for n in reply]

            return await _all([one(b) for b in self.keys.buckets])

        return below

    # -- feed ----------------------------------------------------------------------

    async def publish_control(self, message: Control) -> None:
        payload = msgpack.packb(
            {"user": message.user, "code": message.code, "reason": message.reason}
        )
        with unavailable():
            await self._redis.publish(self.control, payload)

    def subscription(self, channels: Sequence[str], what: str) -> Subscription:
        """A pub/sub subscription on this store's Redis, closed with the store."""
        sub = subscription(self.url, channels, what)
        self._feeds.add(sub)
        return sub

    async def events(self) -> AsyncIterator[Event]:
        sub = self.subscription([self.channel, self.control, self.moves], "presence feed")
        try:
            async with aclosing(sub.messages()) as messages:
                async for item in messages:
                    if item is GAP:
                        yield Gap()
                        continue
                    assert isinstance(item, tuple)
                    event = self._decode(*item)
                    if event is not None:
                        yield event
        finally:
            self._feeds.discard(sub)
            await sub.close()

    def _decode(self, channel: bytes, data: bytes) -> Event | None:
        try:
            payload = msgpack.unpackb(data, raw=False)
            if channel == self._control_b:
                return Control(
                    user=str(payload["user"]),
                    code=int(payload["code"]),
                    reason=str(payload.get("reason", "")),
                )
            if channel == self._moves_b:
                return _moves(payload)
            return Batch(cursor=int(payload["cursor"]), users=cast(list[Entry], payload["users"]))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # Another service may publish on the channel; a bad message is not fatal.
            log.warning("ignored a malformed message on %r: %s", channel, exc)
            return None


def _part(values: Sequence[Any]) -> Part:
    """``{seq, online, away, busy, total}`` as the scripts answer it."""
    seq, online, away, busy, total = values
    return Part(int(seq), Counts(int(online), int(away), int(busy), int(total)))


def _moves(payload: dict[str, Any]) -> Moves:
    """A ``<channel>:moves`` message (common.lua ``publish_moves``)."""
    rooms = [
        RoomMove(str(m[0]), str(m[1]), str(m[2]), str(m[3]), _part(m[4:9]))
        for m in payload.get("rooms") or ()
    ]
    totals = payload.get("totals")
    return Moves(
        cursor=int(payload["cursor"]),
        bucket=str(payload["bucket"]),
        rooms=rooms,
        users=cast(list[Entry], list(payload.get("users") or ())),
        totals=None if not totals else _part(totals),
    )


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
