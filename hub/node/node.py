"""A hub node: one process's live connections, its fan-out and its duties to the cluster.

The node consumes the store feed (batches to fan-out, control messages to its sockets,
gaps to cursor recovery), heartbeats into the store and sweeps (expired graces, dead
nodes) every ``sweep_s``, and on SIGTERM drains: close every socket with 1012, then hand its
connections to the grace so users who reconnect elsewhere do not flap.

Recovery is by cursor: the node remembers the newest cursor the feed gave it. After a gap
it asks the store for everything changed since then (minus a small slack, as deltas are
idempotent states); outside the window, or when the store lost its data (a heartbeat that
finds the node unknown), every subscriber gets a fresh snapshot instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from hub.model.auth import Claims
from hub.model.presence import Entry, infer_chosen
from hub.node.fanout import Fanout
from hub.ops.config import Settings
from hub.stores.presence.base import (
    Batch,
    Control,
    Gap,
    LiveConnection,
    PresenceStore,
    StoreUnavailable,
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
    """A session as the rooms see it: only its user matters."""

    user: str


class RoomService(Protocol):
    """The rooms as the websocket layer uses them (implemented by :class:`hub.node.rooms.Rooms`)."""

    async def snapshot(self, room: str, since: int | None) -> tuple[list[Entry], bool, int]: ...

    async def join(self, session: Member, room: str) -> None: ...

    async def leave(self, session: Member, room: str) -> None: ...

    async def add_member(self, room: str, user: str) -> bool: ...

    async def remove_member(self, room: str, user: str) -> bool: ...


@dataclass(frozen=True)
class Core:
    """What the services built before the node need of it: settings, store and fan-out."""

    settings: Settings
    store: PresenceStore
    fanout: Fanout


class Session(Protocol):
    """A live connection as the node sees it (implemented by the websocket layer)."""

    conn: str
    user: str
    dropped: bool

    def live(self) -> LiveConnection: ...

    async def close(self, code: int, reason: str = "") -> None: ...


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
        self.fanout = fanout or Fanout(settings.tick_ms)
        #: The hello check, the REST check and the rooms (None: everyone admitted, no rooms).
        self.gate = gate
        self.rest_gate = rest_gate
        self.rooms = rooms
        self.sessions: dict[str, Session] = {}
        # Connections whose store registration is in flight (not yet in ``sessions``).
        self.connecting: set[str] = set()
        # The newest entry seen for each user with a socket here: what a restore puts back.
        self.last_seen: dict[str, Entry] = {}
        self._next_reconcile = time.monotonic() + RECONCILE_S
        self.by_user: dict[str, set[str]] = {}
        self.cursor = 0
        self.stats = NodeStats()
        self.draining = False
        self._tasks: list[asyncio.Task[None]] = []
        self._registered = False
        self._control_hooks: list[Callable[[Control], Awaitable[None]]] = []
        self._batch_hooks: list[Callable[[Batch], None]] = []
        self._close_hooks: list[Callable[[Session], Awaitable[None]]] = []
        self._pending_disconnects: list[tuple[str, str]] = []

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        await self.store.start()
        with contextlib.suppress(StoreUnavailable):
            # A process restarted under the same HUB_NODE_ID (systemd, a container restarted
            # in its pod) heartbeats before its old TTL runs out, so no sweep would ever reap
            # the connections of its previous life: they died with it. Hand them to the
            # grace before this life registers anything.
            await self.store.remove_node(self.id, grace=True)
            await self.store.heartbeat(self.id, self.settings.node_ttl_ms)
            self._registered = True
            self.cursor = await self.store.now()
        self._tasks = [
            asyncio.create_task(self._consume(), name="hub-feed"),
            asyncio.create_task(self._liveness(), name="hub-liveness"),
            asyncio.create_task(self._expiries(), name="hub-expiries"),
            asyncio.create_task(self.fanout.run(), name="hub-fanout"),
        ]

    async def stop(self) -> None:
        if not self.draining:
            await self.drain()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.store.close()

    async def drain(self) -> None:
        """SIGTERM: close sockets with 1012, give the connections to the grace."""
        if self.draining:
            return
        self.draining = True
        sessions = list(self.sessions.values())
        closes = asyncio.gather(
            *(s.close(CloseCode.RESTARTING, "node restarting") for s in sessions),
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

    def add(self, session: Session) -> None:
        self.sessions[session.conn] = session
        self.by_user.setdefault(session.user, set()).add(session.conn)

    def remove(self, session: Session) -> None:
        self.sessions.pop(session.conn, None)
        conns = self.by_user.get(session.user)
        if conns is not None:
            conns.discard(session.conn)
            if not conns:
                del self.by_user[session.user]
                self.last_seen.pop(session.user, None)

    def remember(self, entry: Entry) -> None:
        """Keep the newest entry of a user who has a socket on this node."""
        uid = entry["id"]
        if uid in self.by_user:
            cur = self.last_seen.get(uid)
            if cur is None or entry["at"] >= cur["at"]:
                self.last_seen[uid] = entry

    def on_close(self, hook: Callable[[Session], Awaitable[None]]) -> None:
        self._close_hooks.append(hook)

    async def connection_closed(self, session: Session, *, grace: bool = True) -> None:
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
                        if self.by_user:
                            for entry in event.users:
                                self.remember(entry)
                        for hook in self._batch_hooks:
                            hook(event)
                    elif isinstance(event, Control):
                        await self.close_user(event.user, event.code, event.reason)
                        for chook in self._control_hooks:
                            await chook(event)
                    elif isinstance(event, Gap):
                        self.stats.gaps += 1
                        await self.recover()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("feed failed; resubscribing")
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
        if changes.full:
            self.resync()
        else:
            self.fanout.feed([u.entry() for u in changes.users], changes.cursor)
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
                known = await self.store.heartbeat(self.id, self.settings.node_ttl_ms)
                self.stats.store_latency_s = time.monotonic() - started
                if not known and self._registered and not self.draining:
                    await self._restore()
                self._registered = True
                await self._retry_disconnects()
                if time.monotonic() >= self._next_reconcile:
                    await self.reconcile()
                await self.store.sweep()
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

    async def _restore_choices(self, sessions: list[Session]) -> None:
        """Put back each local user's chosen status and text, as far as this node can tell
        from the last entry it saw (exact when all the user's sockets are here)."""
        states: dict[str, list[str]] = {}
        for session in sessions:
            states.setdefault(session.user, []).append(session.live().state)
        now = await self.store.now()
        for user, user_states in states.items():
            last = self.last_seen.get(user)
            if last is None:
                continue
            chosen = infer_chosen(last["status"], user_states)
            text, until = last["text"], last.get("until")
            if until is not None and until <= now + 50:
                # Due (or too close to be accepted again): restore what the expiry leaves.
                chosen, text, until = "online", "", None
            if chosen != "online" or text:
                await self.store.set_status(user, status=chosen, text=text, until=until)

    async def _restore(self) -> None:
        """The store forgot this node (restart without persistence, or we were reaped)."""
        sessions = list(self.sessions.values())
        live = [s.live() for s in sessions]
        await self.store.restore(self.id, live)
        await self._restore_choices(sessions)
        # A socket that closed while the restore ran may have reached the store before the
        # restore registered it again, which would leave a ghost: disconnect those once more
        # (idempotent; the liveness loop does it right after, and retries it on failure).
        self._pending_disconnects += [
            (s.conn, s.user) for s in sessions if s.conn not in self.sessions
        ]
        self.stats.restores += 1
        log.warning("store had lost this node; re-registered %d connections", len(live))
        # Other nodes re-register within one sweep; resync after that so snapshots hold
        # everyone who is really online.
        loop = asyncio.get_running_loop()
        loop.call_later(self.settings.sweep_s * 1.5, self.resync)
