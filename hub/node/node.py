"""A hub node: one process's live connections, its fan-out and its duties to the cluster.

The node consumes the store feed (batches to fan-out, control messages to its sockets,
gaps to cursor recovery), heartbeats into the store and sweeps (expired graces, dead
nodes) every ``sweep_s``, and on SIGTERM drains: close every socket with 1012, then hand its
connections to the grace so users who reconnect elsewhere do not flap.

Recovery is by cursor: the node remembers the newest cursor the feed gave it. After a gap
it asks the store for everything changed since then (minus a small slack, as deltas are
idempotent states); outside the window, or after the node re-registered its connections,
every subscriber gets a fresh snapshot instead.

The store is the truth for what users chose. A heartbeat that finds the node reaped (cut off
past its TTL) makes it re-register its connections and nothing else; only when the store
lost its data (the store epoch moved) does the node offer back what it remembers of its
users' choices, and the store takes each only where it holds none newer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.model.auth import Claims
from hub.model.presence import Entry, infer_chosen
from hub.node.connection import Pacer, UserConnection
from hub.node.fanout import Fanout
from hub.node.views import Views
from hub.ops.config import Settings
from hub.ops.tasks import cancel_requested, stop_tasks
from hub.stores.presence.base import (
    Batch,
    Choice,
    Control,
    Gap,
    LiveConnection,
    Liveness,
    Moves,
    PresenceStore,
    StoreUnavailable,
    UserView,
)
from hub.wire.hub import CloseCode

log = logging.getLogger("hub.node")

#: How often a node checks the store's record of its connections against its sockets.
RECONCILE_S = 30.0

#: How far before the last seen cursor a gap recovery reads (store clocks of cluster
#: shards may differ by a little; re-reading a state is harmless).
RECOVERY_SLACK_MS = 2_000
#: How often a node applies due status expiries (``until``): at most this late, plus the
#: coalescing tick, so an expiry is published within a second of its time.
EXPIRY_SWEEP_S = 0.5
#: How long a drain waits for its sockets' close handshakes before handing the connections
#: to the grace (the closes go on meanwhile): a client that reads nothing can hold its close
#: for many seconds, and the hand-off must not wait for it.
DRAIN_CLOSE_S = 2.0
#: ``Retry-After`` (seconds) on the 503 a draining node answers a new websocket handshake
#: with: a proxy moves the client to a live node at once, a direct client waits this long.
DRAIN_RETRY_AFTER_S = 1


class HelloGate(Protocol):
    """The hello check: None to admit the token's user, else (close code, reason)."""

    async def __call__(self, claims: Claims) -> tuple[int, str] | None: ...


class RestGate(Protocol):
    """The REST check: why a user token of ``user`` is refused, or None to let it pass."""

    async def __call__(self, user: str) -> str | None: ...


class Member(Protocol):
    """What joins a room (a connection: only its user matters)."""

    @property
    def user(self) -> str: ...


class RoomService(Protocol):
    """The rooms as the websocket layer uses them (implemented by :class:`hub.node.rooms.Rooms`)."""

    async def snapshot(self, room: str, since: int | None) -> tuple[list[Entry], bool, int]: ...

    async def join(self, session: Member, room: str) -> None: ...

    async def leave(self, session: Member, room: str) -> None: ...

    async def add_member(self, room: str, user: str) -> bool: ...

    async def remove_member(self, room: str, user: str) -> bool: ...

    async def member_count(self, room: str) -> int: ...


@dataclass(frozen=True)
class Core:
    """What the services built before the node need of it: settings, store and fan-out."""

    settings: Settings
    store: PresenceStore
    fanout: Fanout


class Attached(Protocol):
    """A connection attached to the node (a :class:`hub.node.connection.UserConnection`)."""

    @property
    def conn(self) -> str: ...

    @property
    def user(self) -> str: ...

    @property
    def dropped(self) -> bool: ...

    def live(self) -> LiveConnection: ...

    async def close(self, code: int, reason: str = "") -> None: ...

    async def ended(self) -> None: ...


class Upkeep(Protocol):
    """A wire's share of the node's loops (the Pusher wire's channels): its feed, read by
    the node's feed loop, and its step of every liveness sweep."""

    def feed(self) -> AsyncIterator[Any]: ...

    async def on_event(self, event: Any) -> None: ...

    async def beat(self) -> None: ...

    async def drain(self) -> None: ...


@dataclass
class NodeStats:
    store_errors: int = 0
    gaps: int = 0
    resyncs: int = 0
    restores: int = 0
    reconciled: int = 0
    store_latency_s: float = 0.0
    store_ok: bool = True
    last_ok: float = field(default_factory=time.monotonic)


class Node:
    """Wires the store feed, fan-out and live sessions of one hub process."""

    def __init__(
        self,
        settings: Settings,
        store: PresenceStore,
        *,
        fanout: Fanout | None = None,
        gate: HelloGate | None = None,
        rest_gate: RestGate | None = None,
        rooms: RoomService | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.id = settings.node_id
        self.fanout = fanout or Fanout(settings.tick_ms, Views(store))
        #: The hello check, the REST check and the rooms (None: everyone admitted, no rooms).
        self.gate = gate
        self.rest_gate = rest_gate
        self.rooms = rooms
        self.sessions: dict[str, Attached] = {}
        # Connections whose store registration is in flight (not yet in ``sessions``).
        self.connecting: set[str] = set()
        # The newest entry seen for each user with a socket here: what this node offers back
        # of their choices to a store that lost its data (never the product's "last seen").
        self.remembered: dict[str, Entry] = {}
        # The store epoch this node's registrations belong to (None until first read), and
        # the re-registration a heartbeat asked for and no restore completed yet.
        self.epoch: int | None = None
        self._owed: Liveness | None = None
        self._next_reconcile = time.monotonic() + RECONCILE_S
        self.by_user: dict[str, set[str]] = {}
        self.cursor = 0
        self.stats = NodeStats()
        self.draining = False
        #: Paces store registrations, so a storm of arrivals queues instead of timing out.
        self.admission = Pacer()
        self._conns = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        #: The other wires' shares of this node's loops (set before :meth:`start`).
        self.upkeeps: list[Upkeep] = []
        self._registered = False
        self._control_hooks: list[Callable[[Control], Awaitable[None]]] = []
        self._batch_hooks: list[Callable[[Batch], None]] = []
        self._recover_hooks: list[Callable[[], None]] = []
        self._close_hooks: list[Callable[[Attached], Awaitable[None]]] = []
        self._pending_disconnects: list[tuple[str, str]] = []

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        await self.store.start()
        with contextlib.suppress(StoreUnavailable):
            # A process restarted under the same HUB_NODE_ID (systemd, a container restarted
            # in its pod) heartbeats before its old TTL runs out, so no sweep would ever reap
            # the connections of its previous life: they died with it. Hand them to the
            # grace before this life registers anything.
            self.epoch = await self.store.epoch()
            await self.store.remove_node(self.id, grace=True)
            await self.store.heartbeat(self.id, self.settings.node_ttl_ms, epoch=self.epoch)
            self._registered = True
            self.cursor = await self.store.now()
        self._tasks = [
            asyncio.create_task(self._consume(), name="hub-feed"),
            asyncio.create_task(self._liveness(), name="hub-liveness"),
            asyncio.create_task(self._expiries(), name="hub-expiries"),
            asyncio.create_task(self.fanout.run(), name="hub-fanout"),
            *(asyncio.create_task(self._follow(u), name="hub-wire-feed") for u in self.upkeeps),
        ]

    async def stop(self) -> None:
        if not self.draining:
            await self.drain()
        await stop_tasks(self._tasks)
        self._tasks = []
        await self.store.close()

    async def drain(self) -> None:
        """SIGTERM: close sockets with 1012, give the connections to the grace."""
        if self.draining:
            return
        self.draining = True
        sessions = list(self.sessions.values())

        async def close(s: Attached) -> None:
            await s.close(CloseCode.RESTARTING, "node restarting")
            await s.ended()

        closes = asyncio.gather(
            *(close(s) for s in sessions),
            *(u.drain() for u in self.upkeeps),
            return_exceptions=True,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(closes), DRAIN_CLOSE_S)
        try:
            await self.store.remove_node(self.id, grace=True)
        except StoreUnavailable:
            log.warning("drain: store unreachable; the node will be reaped after its TTL")
        log.info("drained", extra={"connections": len(sessions)})

    # -- sessions ------------------------------------------------------------------

    def new_conn(self) -> str:
        """A connection id no other connection of the cluster has."""
        return f"{self.id}.{next(self._conns)}"

    async def attach(self, c: UserConnection) -> UserView:
        """Register a user connection in the store (through :attr:`admission`, which may
        raise :class:`~hub.node.connection.Busy`); from its return on, the node holds it."""
        async with self.admission:
            self.connecting.add(c.conn)
            try:
                view = await self.store.connect(self.id, c.conn, c.profile, c.state)
                self.add(c)
                self.remember(view.entry())
            finally:
                self.connecting.discard(c.conn)
        return view

    async def detach(self, c: UserConnection, *, grace: bool = True) -> None:
        """A user connection ended: the user goes offline after the grace (or at once)."""
        self.remove(c)
        await self.connection_closed(c, grace=grace)

    def add(self, session: Attached) -> None:
        self.sessions[session.conn] = session
        self.by_user.setdefault(session.user, set()).add(session.conn)

    def remove(self, session: Attached) -> None:
        self.sessions.pop(session.conn, None)
        conns = self.by_user.get(session.user)
        if conns is not None:
            conns.discard(session.conn)
            if not conns:
                del self.by_user[session.user]
                self.remembered.pop(session.user, None)

    def remember(self, entry: Entry) -> None:
        """Keep the newest entry of a user who has a socket on this node."""
        uid = entry["id"]
        if uid in self.by_user:
            cur = self.remembered.get(uid)
            if cur is None or entry["at"] >= cur["at"]:
                self.remembered[uid] = entry

    def on_close(self, hook: Callable[[Attached], Awaitable[None]]) -> None:
        self._close_hooks.append(hook)

    async def connection_closed(self, session: Attached, *, grace: bool = True) -> None:
        """A socket ended: hand its connection to the grace (unless kicked or draining, or
        ``grace`` is false: a client that signed out)."""
        for hook in self._close_hooks:
            with contextlib.suppress(StoreUnavailable):
                await hook(session)
        if self.draining or session.dropped:
            return
        try:
            await self.store.disconnect(self.id, session.conn, session.user, grace=grace)
        except StoreUnavailable:
            # Retried by the liveness loop, so an outage cannot leave a ghost behind.
            self._pending_disconnects.append((session.conn, session.user))
        except (OSError, RuntimeError) as exc:
            # The Redis client can fail outside StoreUnavailable while an outage closes its
            # transport under it; that is the same outage, retried the same way.
            log.warning("disconnect failed (%s); retried by the liveness loop", exc)
            self._pending_disconnects.append((session.conn, session.user))

    async def _retry_disconnects(self) -> None:
        while self._pending_disconnects:
            conn, user = self._pending_disconnects[0]
            await self.store.disconnect(self.id, conn, user, grace=True)
            self._pending_disconnects.pop(0)

    def on_control(self, hook: Callable[[Control], Awaitable[None]]) -> None:
        self._control_hooks.append(hook)

    def on_batch(self, hook: Callable[[Batch], None]) -> None:
        self._batch_hooks.append(hook)

    def on_recover(self, hook: Callable[[], None]) -> None:
        """Called after the feed lost messages and the fan-out caught up: a hook that keeps
        state from the batches reads it again."""
        self._recover_hooks.append(hook)

    async def close_user(self, user: str, code: int, reason: str) -> int:
        """Close this node's sockets of ``user``; returns how many."""
        conns = [self.sessions[c] for c in self.by_user.get(user, ()) if c in self.sessions]
        await asyncio.gather(*(s.close(code, reason) for s in conns), return_exceptions=True)
        return len(conns)

    # -- the feed ------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            try:
                async for event in self.store.events():
                    if isinstance(event, Batch):
                        if event.cursor > self.cursor:
                            self.cursor = event.cursor
                        self.fanout.feed(event.users, event.cursor)
                        self.fanout.observe(event)
                        if self.by_user:
                            for entry in event.users:
                                self.remember(entry)
                        for hook in self._batch_hooks:
                            hook(event)
                    elif isinstance(event, Control):
                        await self.close_user(event.user, event.code, event.reason)
                        for chook in self._control_hooks:
                            await chook(event)
                    elif isinstance(event, Moves):
                        self.fanout.observe(event)
                    elif isinstance(event, Gap):
                        self.stats.gaps += 1
                        self.fanout.lost()
                        await self.recover()
                        for rhook in self._recover_hooks:
                            rhook()
            except asyncio.CancelledError:
                raise
            except Exception:
                if cancel_requested():
                    raise asyncio.CancelledError from None
                log.exception("feed failed; resubscribing")
                await asyncio.sleep(0.5)

    async def _follow(self, upkeep: Upkeep) -> None:
        """A wire's feed, read by the node like its own: every event to the wire, and a
        resubscription after a failure."""
        while True:
            try:
                async for event in upkeep.feed():
                    await upkeep.on_event(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                if cancel_requested():
                    raise asyncio.CancelledError from None
                log.exception("wire feed failed; resubscribing")
                await asyncio.sleep(0.5)

    async def recover(self) -> None:
        """Catch up after lost feed messages, from the index by cursor."""
        since = self.cursor - RECOVERY_SLACK_MS if self.cursor else None
        for attempt in range(50):
            try:
                changes = await self.store.changes(since)
                break
            except StoreUnavailable:
                await asyncio.sleep(min(1.0, 0.1 * (attempt + 1)))
        else:
            self.resync()
            return
        entries = [u.entry() for u in changes.users]
        if self.by_user:
            for entry in entries:
                self.remember(entry)
        if changes.full:
            self.resync()
        else:
            self.fanout.feed(entries, changes.cursor)
        self.cursor = max(self.cursor, changes.cursor)

    def resync(self) -> None:
        self.stats.resyncs += 1
        self.fanout.resync_all()

    # -- liveness --------------------------------------------------------------------

    async def _liveness(self) -> None:
        interval = self.settings.sweep_s
        # A draining node removed itself from the store: a heartbeat now would register it
        # again, and a restore would put back the connections the drain just handed over.
        while not self.draining:
            started = time.monotonic()
            try:
                if self.epoch is None:
                    self.epoch = await self.store.epoch()
                liveness = await self.store.heartbeat(
                    self.id, self.settings.node_ttl_ms, epoch=self.epoch
                )
                self.stats.store_latency_s = time.monotonic() - started
                if liveness is not Liveness.KNOWN and self._registered:
                    self._owe(liveness)
                self._registered = True
                if self._owed is not None and not self.draining:
                    await self._restore(self._owed)
                    self._owed = None
                await self._retry_disconnects()
                if time.monotonic() >= self._next_reconcile:
                    await self.reconcile()
                await self.store.sweep()
                for upkeep in self.upkeeps:
                    await upkeep.beat()
                if not self.stats.store_ok:
                    log.info("store reachable again")
                self.stats.store_ok = True
                self.stats.last_ok = time.monotonic()
            except StoreUnavailable as exc:
                self.stats.store_errors += 1
                if self.stats.store_ok:
                    log.warning("store unreachable: %s", exc)
                self.stats.store_ok = False
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("liveness step failed")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def _expiries(self) -> None:
        """Apply due status expiries; every node does, the store applies each once.

        Its own loop, as the sweep's cadence (up to 1 s) would publish an expiry late;
        failures are the liveness loop's to report."""
        interval = min(EXPIRY_SWEEP_S, self.settings.sweep_s)
        while not self.draining:
            started = time.monotonic()
            try:
                await self.store.expire_statuses()
            except StoreUnavailable:
                pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("status expiry step failed")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def reconcile(self) -> int:
        """Remove connections the store holds for this node but no socket backs.

        They come from a disconnect lost on the way (a store failover with asynchronous
        replication, a reply timeout on a script that did run): left alone they would be
        ghosts for as long as this node lives. A connection whose store call is still in
        flight is in ``connecting``, so it is never taken for one. Returns how many went.
        """
        self._next_reconcile = time.monotonic() + RECONCILE_S
        stored = await self.store.node_connections(self.id)
        live = set(self.sessions) | self.connecting
        live.update(conn for conn, _ in self._pending_disconnects)
        ghosts = [(conn, user) for conn, user in stored.items() if conn not in live]
        for conn, user in ghosts:
            await self.store.disconnect(self.id, conn, user, grace=True)
        if ghosts:
            self.stats.reconciled += len(ghosts)
            log.warning("removed %d stored connections no socket backs", len(ghosts))
        return len(ghosts)

    def _owe(self, liveness: Liveness) -> None:
        """Keep a restore owed until one completes: the next heartbeat answers KNOWN even
        when this restore fails half-way. A loss outranks a reap."""
        if self._owed is None or liveness is Liveness.LOST:
            self._owed = liveness

    def _choices(self, sessions: list[Attached], live: list[LiveConnection]) -> list[Choice]:
        """What each local user chose, as far as this node can tell from the newest entry it
        saw (exact when all the user's sockets are here), versioned by that entry's ``at``."""
        states: dict[str, list[str]] = {}
        for session, item in zip(sessions, live, strict=True):
            states.setdefault(session.user, []).append(item.state)
        choices = []
        for user, user_states in states.items():
            entry = self.remembered.get(user)
            if entry is not None:
                chosen = infer_chosen(entry["status"], user_states)
                choices.append(
                    Choice(user, chosen, entry["text"], entry["at"], entry.get("until", 0))
                )
        return choices

    async def _restore(self, liveness: Liveness) -> None:
        """Re-register this node's connections: a sweep reaped them (the node was cut off
        past its TTL), or the store lost its data (restart without persistence).

        After a reap the store kept every user's choice, so nothing but the connections
        goes back. After a loss the node also offers what it remembers of its users'
        choices; the store takes each only where it lost it and holds none newer."""
        assert self.epoch is not None
        epoch = await self.store.epoch()  # before the writes: a later loss moves it again
        sessions = list(self.sessions.values())
        live = [s.live() for s in sessions]
        choices = self._choices(sessions, live) if liveness is Liveness.LOST else []
        await self.store.restore(self.id, live, epoch=self.epoch, choices=choices)
        self.epoch = epoch
        # A socket that closed while the restore ran may have reached the store before the
        # restore registered it again, which would leave a ghost: disconnect those once more
        # (idempotent; the liveness loop does it right after, and retries it on failure).
        self._pending_disconnects += [
            (s.conn, s.user) for s in sessions if s.conn not in self.sessions
        ]
        self.stats.restores += 1
        what = "lost its data" if liveness is Liveness.LOST else "reaped this node"
        log.warning("the store %s; re-registered %d connections", what, len(live))
        # Other nodes re-register within one sweep; resync after that so snapshots hold
        # everyone who is really online.
        loop = asyncio.get_running_loop()
        loop.call_later(self.settings.sweep_s * 1.5, self.resync)
