"""The Pusher wire on the node: sockets, channels, member events, triggers and their upkeep.

:class:`ChannelService` is the Pusher wire's :class:`~hub.session.driver.Handler`: the
session rules (:mod:`hub.session.rules_pusher`) check a frame, this carries it out against
the channel store (:mod:`hub.stores.channels`) and the node. It keeps, per app and channel,
the sockets of this node subscribed to it, and delivers every event of the channel feed to
them: the same frame object for every socket, so it is framed once and costs each socket
one ``transport.write`` (the same path as a ``/ws`` delta).

- **One presence truth.** A socket on a presence channel is a hub connection of the
  member's ``user_id`` (:class:`~hub.node.connection.UserConnection`), attached through the
  node's admission like a ``/ws`` socket, so drain, kick, reconcile and restore treat it
  alike; the channel's members are mirrored into the hub room of the same name (retried
  until it agrees, so a store error never leaves the two apart).
- **Exact member events.** ``subscription_succeeded`` carries the member list at a version
  (:mod:`hub.stores.channels.base`); feed events of the channel that arrive while the
  subscription is in flight wait, and member events at or below the list's version are
  dropped as already told. Subscribers joining the same channel at the same time share one
  read of the list and one encoding of the frame.
- **Users.** A ``pusher:signin`` makes the socket a hub connection of that user (the same
  :class:`~hub.node.connection.UserConnection` its presence memberships use), reachable by
  server-to-user events (``#server-to-user-<id>``, published on the channel feed like any
  channel's) and by ``terminate_connections``; its watchlist is kept by
  :mod:`hub.node.watchlists`.
- **Cache channels** keep their last event from the HTTP API in the store (30 minutes); a
  new subscriber gets it right after ``subscription_succeeded``, or ``pusher:cache_miss``
  (and the cluster one ``cache_miss`` webhook per miss window).
- **Subscription counts** (the app's ``subscription_count`` option) are told once a tick by
  :mod:`hub.node.counts`.
- **Upkeep** runs in the node's loops: :meth:`ChannelService.beat` once per sweep
  (heartbeat per app, reaping of dead nodes' subscriptions, re-subscribing after this node
  was reaped, retries of what a store error interrupted), :meth:`ChannelService.on_event`
  for every feed event.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from hub.model.auth import Claims
from hub.node.connection import Busy, UserConnection
from hub.node.counts import SubscriptionCounts
from hub.node.node import Node
from hub.node.shared import Shared, SharedReads
from hub.node.watchlists import Watcher, Watchlists
from hub.ops.apps import App, Apps
from hub.ops.config import Settings
from hub.session.core import Limits
from hub.session.driver import Driver, Refused, WorkFailed
from hub.session.rules_pusher import (
    NOT_SUBSCRIBED,
    ClientEvent,
    PusherRules,
    SignIn,
    Subscribe,
    Unsubscribe,
)
from hub.stores.channels.base import (
    Cached,
    ChannelEvent,
    ChannelFeedEvent,
    ChannelGap,
    ChannelStore,
    CountChange,
    Left,
    MemberChange,
    Members,
    Probe,
    Terminate,
)
from hub.stores.presence.base import Profile, StoreUnavailable
from hub.wire import pusher as p
from hub.wire.hub import ErrorCode
from hub.wire.pusher_webhook import retention_ms

log = logging.getLogger("hub.pusher")

#: Frames a second a Pusher socket may send, and how many at once (a client subscribing to
#: hundreds of channels on connect), before its reading is throttled.
RATE_PER_S = 100.0
BURST = 1000.0
#: How long the service waits to hear its own probe on the feed at start.
LISTEN_S = 5.0
#: How often the store's record of this node's subscriptions is checked against its
#: sockets (and at the next sweep after a store error, whose outcome is unknown).
RECONCILE_S = 30.0
#: How long a cache channel keeps its last event (Pusher: up to 30 minutes).
CACHE_TTL_MS = 30 * 60 * 1000
#: After a cache miss is reported, further misses of the channel are not, for this long
#: (so a burst of subscribers to an empty cache channel makes one ``cache_miss`` webhook).
CACHE_MISS_WINDOW_MS = 10_000


def pusher_close(code: int) -> int:
    """A hub close code as a Pusher one: Pusher's own range stays; a drain (1012) and
    anything else asks pusher-js to reconnect at once."""
    return code if 4000 <= code < 4300 else p.CloseCode.GENERIC_RECONNECT


class PusherSocket:
    """What the service keeps of one Pusher connection (its driver's ``state``)."""

    __slots__ = ("app", "counts", "driver", "id", "members", "seen", "terminated", "user",
                 "waiting", "watcher")  # fmt: skip

    def __init__(self, app: App, socket_id: str, driver: Driver) -> None:
        self.app = app
        self.id = socket_id
        self.driver = driver
        #: The user this socket signed in as, and its watchlist.
        self.user: str | None = None
        self.watcher: Watcher | None = None
        #: channel -> the subscription count it was last told.
        self.counts: dict[str, int] = {}
        #: Closed by ``terminate_connections``: its users go offline without the grace.
        self.terminated = False
        #: channels whose subscription is in flight: their feed events wait here.
        self.waiting: dict[str, list[ChannelEvent | MemberChange]] = {}
        #: presence channel -> the member version of the list this socket was given.
        self.seen: dict[str, int] = {}
        #: user id -> (its hub connection, how many presence channels use it).
        self.members: dict[str, tuple[UserConnection, int]] = {}

    @property
    def rules(self) -> PusherRules:
        rules = self.driver.session.rules
        assert isinstance(rules, PusherRules)
        return rules


def room_of(channel: str) -> str:
    """The hub room that mirrors a presence channel."""
    return channel


class ChannelService:
    """The Pusher wire of one node."""

    def __init__(
        self,
        settings: Settings,
        node: Node,
        apps: Apps,
        store: ChannelStore,
        webhooks: Any,
        watchlists: Watchlists,
    ) -> None:
        self.settings = settings
        self.local: dict[tuple[str, str], dict[str, PusherSocket]] = {}
        self.node = node
        self.apps = apps
        self.store = store
        self.webhooks = webhooks
        self._hooking: set[asyncio.Task[None]] = set()
        #: How long each app's webhook events are kept (0: the app has no webhook).
        self._hooks_ms = {app.id: retention_ms(app, settings.webhook_retry_s) for app in apps}
        self.watchlists = watchlists
        self.counts = SubscriptionCounts(
            settings.tick_ms / 1000, self.local.get, self._report_count
        )
        self.limits = Limits(
            secret="",
            max_frame_bytes=settings.max_frame_bytes,
            rate_per_s=RATE_PER_S,
            burst=BURST,
            hello_timeout_s=settings.hello_timeout_s,
            window_s=settings.window_s,
        )
        self.outbox_frames = max(1024, settings.outbox_frames * 4)
        self.activity_timeout_s = settings.pusher_activity_timeout_s
        self.sockets: dict[str, PusherSocket] = {}
        self.lists: SharedReads[tuple[str, str], Members] = SharedReads(lambda: 0)
        self._prefix = str(secrets.randbelow(9 * 10**8) + 10**8)
        self._seq = itertools.count(1)
        self._listening = asyncio.Event()
        self._pending_leaves: deque[tuple[App, str, str]] = deque()
        self._pending_rooms: set[tuple[str, str, str]] = set()
        self._next_reconcile = time.monotonic() + RECONCILE_S
        #: A store call failed: it may have taken effect all the same (a timeout).
        self._unsure = False

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """After the node started (its loops read the channel feed)."""
        await self.store.start()
        await self.webhooks.start()
        await self._until_listening()
        for app in self.apps:
            with contextlib.suppress(StoreUnavailable):
                # A restart under the same node id: the previous life's subscriptions died.
                await self._reap(app, self.node.id)
                await self.store.heartbeat(app.id, self.node.id, self.settings.node_ttl_ms)

    async def stop(self) -> None:
        for sock in list(self.sockets.values()):
            sock.driver.close(p.CloseCode.GENERIC_RECONNECT, "node restarting")
        deadline = time.monotonic() + 2.0
        while self.sockets and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for app in self.apps:
            with contextlib.suppress(StoreUnavailable):
                await self._reap(app, self.node.id)
                await self.store.forget_node(app.id, self.node.id)
        self.counts.flush()  # the webhooks of the last changes, before they stop
        self.counts.close()
        self.watchlists.close()
        await self.webhooks.stop()
        await self.store.close()

    async def _until_listening(self) -> None:
        """Publish a probe until this node's feed hears it (at most LISTEN_S): events
        published before the subscription is live would be lost."""
        deadline = time.monotonic() + LISTEN_S
        while not self._listening.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(StoreUnavailable):
                await self.store.publish(Probe(self.node.id))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listening.wait(), 0.05)
        if not self._listening.is_set():
            log.warning("pusher feed not confirmed within 5 s; events may be lost until it is")

    # -- the transport's questions -----------------------------------------------------

    def rules_for(
        self, key: str, protocol: list[str] | None, now: float
    ) -> tuple[tuple[int, str] | None, PusherRules | None]:
        """The rules of a new socket on ``/app/{key}?protocol=...``, or why it is refused."""
        app = self.apps.by_key.get(key)
        if app is None:
            return (p.CloseCode.APP_UNKNOWN, "App key not known to this hub"), None
        if not protocol:
            return (p.CloseCode.NO_PROTOCOL, "No protocol version supplied"), None
        raw = protocol[0]
        try:
            version = int(raw)
        except ValueError:
            version = -1
        if version not in p.PROTOCOLS:
            message = f"Unsupported protocol version {raw[:16]!r} (5 to 7 are served)"
            return (p.CloseCode.UNSUPPORTED_PROTOCOL, message), None
        return None, PusherRules(app, self.new_socket_id(), self.activity_timeout_s)

    def new_socket_id(self) -> str:
        return f"{self._prefix}.{next(self._seq)}"

    # -- the driver's handler ----------------------------------------------------------

    async def admit(self, driver: Driver, claims: Claims | None) -> str:
        rules = driver.session.rules
        assert isinstance(rules, PusherRules)
        if self.node.draining:
            raise Refused(p.CloseCode.GENERIC_RECONNECT, "node restarting")
        sock = PusherSocket(rules.app, rules.socket_id, driver)
        driver.state = sock
        self.sockets[sock.id] = sock
        driver.admitted = True
        return sock.id

    async def run(self, driver: Driver, work: Any) -> None:
        sock = driver.state
        assert isinstance(sock, PusherSocket)
        if isinstance(work, Subscribe):
            await self.subscribe(sock, work.channel, work.member)
        elif isinstance(work, Unsubscribe):
            await self._leave(sock, work.channel)
        elif isinstance(work, ClientEvent):
            await self.client_event(sock, work)
        elif isinstance(work, SignIn):
            await self.sign_in(sock, work.user)

    async def resync(self, driver: Driver) -> None:
        return None  # a full outbox closes a Pusher socket (4100): nothing to resync

    async def detach(self, driver: Driver) -> None:
        """The socket ended: leave every channel, end its hub connections."""
        sock = driver.state
        assert isinstance(sock, PusherSocket)
        self.sockets.pop(sock.id, None)
        channels = list(sock.rules.channels) + list(sock.waiting)
        sock.rules.channels.clear()
        for channel in channels:
            await self._leave(sock, channel)
        if sock.user is not None:
            self._unlocal(sock, p.user_channel(sock.user))
        if sock.watcher is not None:
            self.watchlists.unwatch(sock.watcher)
            sock.watcher = None
        for user in list(sock.members):
            await self._end_member(sock, user, force=True)

    # -- subscriptions -----------------------------------------------------------------

    async def subscribe(
        self, sock: PusherSocket, channel: str, member: p.ChannelMember | None
    ) -> None:
        app = sock.app
        key = (app.id, channel)
        sock.waiting[channel] = []
        self.local.setdefault(key, {})[sock.id] = sock
        user_id = member.user_id if member else ""
        info = p.dumps(member.user_info if member else None)
        counts = app.counts(channel)
        try:
            if member is not None:
                await self._begin_member(sock, member)
            joined = await self.store.subscribe(
                app.id, channel, sock.id, self.node.id, user_id, info, app.member_limit,
                self._hooks_ms[app.id], counts,
            )  # fmt: skip
        except Busy:
            # Admission is full: the client comes back (pusher-js reconnects and resubscribes).
            await self._undo(sock, channel, member)
            sock.driver.close(p.CloseCode.GENERIC_RECONNECT, "hub busy, reconnect")
            return
        except StoreUnavailable:
            # The subscription may have landed all the same (a timeout): reconciliation
            # removes what no socket of this node backs.
            self._unsure = True
            await self._undo(sock, channel, member)
            raise
        if joined.status < 0:
            await self._undo(sock, channel, member)
            limit = app.member_limit
            raise WorkFailed(
                ErrorCode.LIMIT, f"the channel has reached its limit of {limit} members"
            )
        if sock.driver.lost:
            # The socket closed meanwhile: its cleanup did not see this subscription.
            await self._leave(sock, channel)
            return
        if counts and joined.status == 1:
            self.counts.changed(key, joined.subscriptions)
        cached: Cached | None = None
        if p.is_cache(channel):
            try:
                cached = await self.store.cache_get(app.id, channel, CACHE_MISS_WINDOW_MS)
            except StoreUnavailable:
                await self._leave(sock, channel)
                raise
        if member is not None:
            try:
                listed = await self._member_list(app.id, channel, joined.version)
            except StoreUnavailable:
                await self._leave(sock, channel)
                raise
            sock.seen[channel] = listed.value.version
            frame: str = listed.encode("frame", lambda m: p.presence_succeeded(channel, m.info))
        else:
            frame = p.subscription_succeeded(channel)
        sock.driver.send(frame)
        waiting = sock.waiting.pop(channel, [])
        if cached is not None:
            self._cached(sock, channel, cached, waiting)
        for event in waiting:
            self._deliver(sock, event)
        if counts:
            self.counts.joined(key)
        if joined.occupied:
            await self._transition(app, {"name": "channel_occupied", "channel": channel})
        if joined.added and member is not None:
            added = {"name": "member_added", "channel": channel, "user_id": user_id}
            await self._transition(app, added)
            await self._sync_room(app, channel, user_id)

    def _cached(
        self,
        sock: PusherSocket,
        channel: str,
        cached: Cached,
        waiting: list[ChannelEvent | MemberChange],
    ) -> None:
        """A new subscriber of a cache channel: its last event, or ``pusher:cache_miss``."""
        if cached.frame is None:
            sock.driver.send(p.cache_miss(channel))
            if cached.first_miss:
                self._hook_soon(sock.app, {"name": "cache_miss", "channel": channel})
            return
        # Published while the subscription was in flight: it comes with the waiting
        # events, in their order, and not twice.
        if not any(isinstance(e, ChannelEvent) and e.cache_id == cached.event_id for e in waiting):
            sock.driver.send(cached.frame)

    async def _undo(self, sock: PusherSocket, channel: str, member: p.ChannelMember | None) -> None:
        """A subscription that did not happen leaves nothing behind."""
        self._unlocal(sock, channel)
        sock.waiting.pop(channel, None)
        if member is not None:
            await self._end_member(sock, member.user_id)

    async def _member_list(self, app: str, channel: str, at_least: int) -> Shared[Members]:
        """The member list at ``at_least`` or later, read once for everyone joining now."""
        return await self.lists.get(
            (app, channel),
            lambda: self.store.members(app, channel),
            fresh=lambda shared: shared.value.version >= at_least,
        )

    async def _leave(self, sock: PusherSocket, channel: str) -> None:
        app = sock.app
        self._unlocal(sock, channel)
        sock.waiting.pop(channel, None)
        sock.seen.pop(channel, None)
        try:
            left = await self.store.unsubscribe(
                app.id, channel, sock.id, self._hooks_ms[app.id], app.counts(channel)
            )
        except StoreUnavailable:
            # Retried by the node's loop: a ghost member must not outlive its socket.
            self._pending_leaves.append((app, channel, sock.id))
            left = None
        if left is not None:
            await self._transitions(app, channel, left)
            if left.user_id and left.user_id in sock.members:
                await self._end_member(sock, left.user_id)

    async def _transitions(self, app: App, channel: str, left: Left) -> None:
        if not left.removed:
            return
        if app.counts(channel):
            self.counts.changed((app.id, channel), left.subscriptions)
        if left.member_removed:
            removed = {"name": "member_removed", "channel": channel, "user_id": left.user_id}
            await self._transition(app, removed)
            await self._sync_room(app, channel, left.user_id)
        if left.vacated:
            await self._transition(app, {"name": "channel_vacated", "channel": channel})

    def _unlocal(self, sock: PusherSocket, channel: str) -> None:
        key = (sock.app.id, channel)
        sock.counts.pop(channel, None)
        subs = self.local.get(key)
        if subs is not None:
            subs.pop(sock.id, None)
            if not subs:
                del self.local[key]
                self.lists.forget(key)
                self.counts.forget(key)

    # -- one presence truth ------------------------------------------------------------

    async def _begin_member(self, sock: PusherSocket, member: p.ChannelMember) -> None:
        user = member.user_id
        current = sock.members.get(user)
        if current is not None:
            sock.members[user] = (current[0], current[1] + 1)
            return
        info = member.user_info if isinstance(member.user_info, dict) else {}
        name = info.get("name")
        profile = Profile(id=user, name=name if isinstance(name, str) else "")
        conn = UserConnection(
            f"{self.node.id}.pusher.{sock.id}.{user}", profile, sock.driver, map_close=pusher_close
        )
        sock.members[user] = (conn, 1)
        try:
            await self.node.attach(conn)
        except BaseException:
            del sock.members[user]
            raise

    async def _end_member(self, sock: PusherSocket, user: str, *, force: bool = False) -> None:
        current = sock.members.get(user)
        if current is None:
            return
        conn, uses = current
        if uses > 1 and not force:
            sock.members[user] = (conn, uses - 1)
            return
        del sock.members[user]
        await self.node.detach(conn, grace=not sock.terminated)

    async def _sync_room(self, app: App, channel: str, user: str) -> None:
        """Make the hub room agree with the channel's members (whatever order the
        transitions of several nodes reach it in); retried by :meth:`beat` on failure."""
        rooms = self.node.rooms
        if rooms is None:
            return
        try:
            if await self.store.has_member(app.id, channel, user):
                await rooms.add_member(room_of(channel), user)
            else:
                await rooms.remove_member(room_of(channel), user)
        except StoreUnavailable:
            self._pending_rooms.add((app.id, channel, user))
        else:
            self._pending_rooms.discard((app.id, channel, user))

    # -- users -------------------------------------------------------------------------

    async def sign_in(self, sock: PusherSocket, user: p.UserData) -> None:
        """A verified ``pusher:signin``: the socket becomes a hub connection of the user,
        reachable by its server-to-user events, then learns its watchlist's state."""
        try:
            await self._begin_member(sock, p.ChannelMember(user.id, user.user_info))
        except Busy:
            sock.driver.close(p.CloseCode.GENERIC_RECONNECT, "hub busy, reconnect")
            return
        watcher: Watcher | None = None
        if user.watchlist:
            try:
                watcher = await self.watchlists.watch(user.watchlist, sock.driver.deliver)
            except StoreUnavailable:
                await self._end_member(sock, user.id)
                raise
        sock.user = user.id
        sock.watcher = watcher
        self.local.setdefault((sock.app.id, p.user_channel(user.id)), {})[sock.id] = sock
        sock.driver.send(p.signin_success(user.raw))
        if watcher is not None:
            # No await since the read: no change can fall between it and this.
            self.watchlists.start(watcher)

    # -- events ------------------------------------------------------------------------

    async def client_event(self, sock: PusherSocket, work: ClientEvent) -> None:
        subscribed = self.local.get((sock.app.id, work.channel), {})
        if sock.id not in subscribed or work.channel in sock.waiting:
            # Sent while its subscription was in flight, and that did not take effect. (The
            # node's record, not the rules': an unsubscribe queued behind this event may have
            # left the rules already.)
            raise WorkFailed(ErrorCode.FORBIDDEN, NOT_SUBSCRIBED)
        extra = {"user_id": work.user_id} if work.user_id is not None else {}
        frame = p.encode(work.event, work.data, work.channel, **extra)
        await self.store.publish(ChannelEvent(sock.app.id, work.channel, frame, sock.id))
        hook: dict[str, Any] = {
            "name": "client_event",
            "channel": work.channel,
            "event": work.event,
            "data": work.data if isinstance(work.data, str) else p.dumps(work.data),
            "socket_id": sock.id,
        }
        if work.user_id is not None:
            hook["user_id"] = work.user_id
        await self._hook(sock.app, hook)

    async def trigger(
        self, app: App, channels: list[str], event: str, data: str, exclude: str | None
    ) -> None:
        """An event from the HTTP API, to every subscriber on every node."""
        for channel in channels:
            frame = p.encode(event, data, channel)
            cache_id = ""
            if p.is_cache(channel):
                # Kept before it is published: a subscriber reading the cache after the
                # event reached its node's feed finds it (and is not sent it twice).
                cache_id = secrets.token_hex(8)
                await self.store.cache_put(app.id, channel, cache_id, frame, CACHE_TTL_MS)
            await self.store.publish(ChannelEvent(app.id, channel, frame, exclude or "", cache_id))

    async def terminate(self, app: App, user: str) -> None:
        await self.store.publish(Terminate(app.id, user))

    async def _hook(self, app: App, event: dict[str, Any]) -> None:
        """A webhook event made here (client_event...): recorded for the app's endpoints."""
        await self.webhooks.append(app.id, [event])

    def _hook_soon(self, app: App, event: dict[str, Any]) -> None:
        """:meth:`_hook` from code that cannot wait for it (a tick's callback)."""
        task = asyncio.get_running_loop().create_task(self._hook(app, event))
        self._hooking.add(task)
        task.add_done_callback(self._hooking.discard)

    async def _transition(self, app: App, event: dict[str, Any]) -> None:
        """A transition's webhook event: the store recorded it in the same step as the
        transition when it can (Redis); else it is recorded now."""
        if not self.store.records_hooks:
            await self._hook(app, event)

    def _report_count(self, app_id: str, channel: str, count: int) -> None:
        app = self.apps.by_id.get(app_id)
        if app is not None:
            hook = {"name": "subscription_count", "channel": channel}
            self._hook_soon(app, {**hook, "subscription_count": count})

    # -- the feed (from the node's loop) -------------------------------------------------

    async def on_event(self, event: ChannelFeedEvent) -> None:
        if isinstance(event, ChannelEvent | MemberChange):
            subs = self.local.get((event.app, event.channel))
            if not subs:
                return
            channel = event.channel
            for sock in subs.values():
                waiting = sock.waiting.get(channel)
                if waiting is not None:
                    waiting.append(event)
                else:
                    self._deliver(sock, event)
        elif isinstance(event, CountChange):
            self.counts.heard((event.app, event.channel), event.count)
        elif isinstance(event, Terminate):
            for sock in list(self.sockets.values()):
                if sock.app.id == event.app and event.user in sock.members:
                    # A forced disconnect, as a kick: no offline grace.
                    sock.terminated = True
                    sock.driver.close(p.CloseCode.UNAUTHORIZED, "terminated by the app")
        elif isinstance(event, Probe):
            if event.node == self.node.id:
                self._listening.set()
        elif isinstance(event, ChannelGap):
            await self._resync()

    def _deliver(self, sock: PusherSocket, event: ChannelEvent | MemberChange) -> None:
        if event.exclude == sock.id:
            return
        if isinstance(event, MemberChange):
            seen = sock.seen.get(event.channel)
            if seen is not None and event.version <= seen:
                return  # already in the member list this socket was given
            if not event.frame:
                if event.info is None:
                    event.frame = p.member_removed(event.channel, event.user_id)
                else:
                    event.frame = p.member_added_raw(event.channel, event.user_id, event.info)
        sock.driver.deliver(event.frame)

    async def _resync(self) -> None:
        """The feed lost events: every local presence subscriber gets a fresh member list,
        and every counted channel its count as the store holds it now."""
        self.lists.forget()
        for (app_id, channel), subs in list(self.local.items()):
            app = self.apps.by_id.get(app_id)
            if app is not None and app.counts(channel):
                with contextlib.suppress(StoreUnavailable):
                    # Read after the fact: a count published just before it could still
                    # arrive after it; the next change of the channel corrects that.
                    count = await self.store.subscription_count(app_id, channel)
                    self.counts.heard((app_id, channel), count)
            if p.kind(channel) != "presence":
                continue
            try:
                members = await self.store.members(app_id, channel)
            except StoreUnavailable:
                continue
            frame = p.presence_succeeded(channel, members.info)
            for sock in list(subs.values()):
                if channel not in sock.waiting:
                    sock.seen[channel] = members.version
                    sock.driver.send(frame)

    # -- upkeep (from the node's liveness loop) ------------------------------------------

    async def beat(self) -> None:
        """One sweep: retries, heartbeat per app, restore after a reap, reap dead nodes."""
        while self._pending_leaves:
            app, channel, socket_id = self._pending_leaves[0]
            left = await self.store.unsubscribe(
                app.id, channel, socket_id, self._hooks_ms[app.id], app.counts(channel)
            )
            self._pending_leaves.popleft()
            await self._transitions(app, channel, left)
        for app_id, channel, user in list(self._pending_rooms):
            owner = self.apps.by_id.get(app_id)
            if owner is not None:
                await self._sync_room(owner, channel, user)
        reconcile = self._unsure or time.monotonic() >= self._next_reconcile
        if reconcile:
            self._unsure = False
            self._next_reconcile = time.monotonic() + RECONCILE_S
        for app in self.apps:
            known = await self.store.heartbeat(app.id, self.node.id, self.settings.node_ttl_ms)
            if not known:
                await self._restore(app)
            elif reconcile:
                await self._reconcile(app)
            for node in await self.store.expired_nodes(app.id):
                if node != self.node.id:
                    await self._reap(app, node)
                    await self.store.forget_node(app.id, node)
                    log.info("reaped the pusher subscriptions of node %s", node)

    async def _reconcile(self, app: App) -> int:
        """Remove subscriptions the store holds for this node but no socket backs (a
        subscribe that timed out and landed all the same); returns how many went."""
        gone = 0
        for channel, socket_id in await self.store.node_subscriptions(app.id, self.node.id):
            sock = self.sockets.get(socket_id)
            if sock is not None and (channel in sock.rules.channels or channel in sock.waiting):
                continue
            left = await self.store.unsubscribe(
                app.id, channel, socket_id, self._hooks_ms[app.id], app.counts(channel)
            )
            await self._transitions(app, channel, left)
            gone += left.removed
        if gone:
            log.warning("removed %d stored pusher subscriptions no socket backs", gone)
        return gone

    async def _reap(self, app: App, node: str) -> None:
        for channel, socket_id in await self.store.node_subscriptions(app.id, node):
            left = await self.store.unsubscribe(
                app.id, channel, socket_id, self._hooks_ms[app.id], app.counts(channel)
            )
            await self._transitions(app, channel, left)

    async def _restore(self, app: App) -> None:
        """This node's subscriptions were reaped (it was cut off too long): put them back."""
        restored = 0
        for sock in list(self.sockets.values()):
            if sock.app.id != app.id:
                continue
            for channel, member in list(sock.rules.channels.items()):
                user_id = member.user_id if member else ""
                info = p.dumps(member.user_info if member else None)
                counts = app.counts(channel)
                joined = await self.store.subscribe(
                    app.id, channel, sock.id, self.node.id, user_id, info, 2**31,
                    self._hooks_ms[app.id], counts,
                )  # fmt: skip
                if counts and joined.status == 1:
                    self.counts.changed((app.id, channel), joined.subscriptions)
                restored += 1
                if joined.added and member is not None:
                    await self._sync_room(app, channel, member.user_id)
        if restored:
            log.warning("pusher subscriptions had been reaped; restored %d", restored)

    def feed(self) -> AsyncIterator[ChannelFeedEvent]:
        """The channel feed, read by the node's loop (which calls :meth:`on_event`)."""
        return self.store.events()

    async def drain(self) -> None:
        """The node drains: every Pusher socket is asked to reconnect elsewhere (until they
        have closed; the node bounds the wait)."""
        socks = list(self.sockets.values())
        for sock in socks:
            sock.driver.close(p.CloseCode.GENERIC_RECONNECT, "node restarting")
        await asyncio.gather(*(sock.driver.ended() for sock in socks))
