"""The Pusher service of one node: local sockets, channel transitions, events and reaping.

Every subscribe and unsubscribe goes through :class:`~hub.stores.channels.store.ChannelState`;
the transitions it reports (first/last connection of a user, first/last subscriber) are
published on the bus by this node only, as frames, and become webhooks here. A socket on a
presence channel is also a hub connection of the member's ``user_id`` (``store.connect``
with this node's id, registered with the node so drain, kick, reconcile and restore treat it
like a ``/ws`` socket), and the channel's members are mirrored into the hub room of the
same name.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.delivery.pusher import Webhooks
from hub.node.node import Node
from hub.ops.apps import App, Apps
from hub.ops.config import Settings
from hub.session.pusher import PusherSession
from hub.stores.channels.store import Bus, ChannelState, Left
from hub.stores.presence.base import LiveConnection, Profile, StoreUnavailable
from hub.wire import pusher as p

log = logging.getLogger("hub.stores.channels")

#: Hub close codes (kick, ban) that mean the store already dropped the connection.
_DROPPED = (4003, 4004)


class Transport(Protocol):
    """What the service needs of a socket (the websocket endpoint implements it)."""

    def send(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


@dataclass
class Socket:
    """One Pusher connection as the service tracks it."""

    app: App
    session: PusherSession
    transport: Transport
    #: channels whose subscription_succeeded is not sent yet: bus messages wait here.
    waiting: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: user id -> (its hub connection, how many presence channels use it)
    hub: dict[str, tuple[HubConnection, int]] = field(default_factory=dict)
    closed: bool = False

    @property
    def id(self) -> str:
        return self.session.socket_id


class HubConnection:
    """A pusher socket seen as a hub connection of one user (``node.Session``)."""

    def __init__(self, socket: Socket, conn: str, profile: Profile) -> None:
        self.socket = socket
        self.conn = conn
        self.user = profile.id
        self.profile = profile
        self.dropped = False

    def live(self) -> LiveConnection:
        return LiveConnection(self.conn, self.profile, "online")

    async def close(self, code: int, reason: str = "") -> None:
        if code in _DROPPED:
            self.dropped = True
        # A drain (1012) asks the client to come back at once; Pusher's range for that.
        pusher_code = code if 4000 <= code < 4300 else p.Close.GENERIC_RECONNECT
        await self.socket.transport.close(pusher_code, reason)


def room_of(channel: str) -> str:
    """The hub room that mirrors a presence channel."""
    return channel


class PusherService:
    def __init__(
        self,
        settings: Settings,
        node: Node,
        apps: Apps,
        channels: ChannelState,
        bus: Bus,
        webhooks: Webhooks,
    ) -> None:
        self.settings = settings
        self.node = node
        self.apps = apps
        self.channels = channels
        self.bus = bus
        self.webhooks = webhooks
        self.sockets: dict[str, Socket] = {}
        self.local: dict[tuple[str, str], dict[str, Socket]] = {}
        self._prefix = str(secrets.randbelow(9 * 10**8) + 10**8)
        self._seq = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        self._pending_leaves: deque[tuple[App, str, str]] = deque()
        self.activity_timeout_s = settings.pusher_activity_timeout_s

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.channels.start()
        await self.bus.start()
        await self.webhooks.start()
        self._tasks = [
            asyncio.create_task(self._consume(), name="pusher-bus"),
            asyncio.create_task(self._liveness(), name="pusher-liveness"),
        ]
        await self._until_listening()
        for app in self.apps:
            with contextlib.suppress(StoreUnavailable):
                # A restart under the same node id: the previous life's subscriptions died.
                await self._reap(app, self.node.id)
                await self.channels.heartbeat(app.id, self.node.id, self.settings.node_ttl_ms)

    async def stop(self) -> None:
        sockets = list(self.sockets.values())
        await asyncio.gather(
            *(s.transport.close(p.Close.GENERIC_RECONNECT, "node restarting") for s in sockets),
            return_exceptions=True,
        )
        deadline = time.monotonic() + 2.0
        while self.sockets and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for app in self.apps:
            with contextlib.suppress(StoreUnavailable):
                await self._reap(app, self.node.id)
                await self.channels.forget_node(app.id, self.node.id)
        await self.webhooks.stop()
        await self.bus.close()
        await self.channels.close()

    async def _until_listening(self) -> None:
        """Publish a probe until our own bus reader hears it (at most 5 s): events published
        before the subscription is live would be lost."""
        deadline = time.monotonic() + 5.0
        while not self._listening.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(StoreUnavailable):
                await self.bus.publish({"k": "probe", "n": self.node.id})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listening.wait(), 0.05)
        if not self._listening.is_set():
            log.warning("pusher bus not confirmed within 5 s; events may be lost until it is")

    def new_socket_id(self) -> str:
        return f"{self._prefix}.{next(self._seq)}"

    # -- sockets -----------------------------------------------------------------------

    def opened(self, socket: Socket) -> None:
        self.sockets[socket.id] = socket

    async def closed(self, socket: Socket) -> None:
        """The socket ended: leave every channel, end its hub connections."""
        socket.closed = True
        self.sockets.pop(socket.id, None)
        channels = list(socket.session.channels) + list(socket.waiting)
        socket.session.channels.clear()
        for channel in channels:
            await self._leave(socket, channel)
        for user in list(socket.hub):
            await self._end_hub(socket, user, force=True)

    async def subscribe(self, socket: Socket, channel: str, member: p.Member | None) -> None:
        app = socket.app
        key = (app.id, channel)
        socket.waiting[channel] = []
        self.local.setdefault(key, {})[socket.id] = socket
        user_id = member.user_id if member else ""
        info = p.dumps(member.user_info if member else None)
        try:
            if member is not None:
                await self._begin_hub(socket, member)
            joined = await self.channels.subscribe(
                app.id, channel, socket.id, self.node.id, user_id, info, app.member_limit
            )
        except StoreUnavailable:
            self._unlocal(socket, channel)
            socket.session.refused(channel)
            if member is not None:
                await self._end_hub(socket, member.user_id)
            socket.transport.send(
                p.subscription_error(channel, "service unavailable", 503, "ServiceUnavailable")
            )
            return
        if joined.status < 0:
            self._unlocal(socket, channel)
            socket.session.refused(channel)
            if member is not None:
                await self._end_hub(socket, member.user_id)
            socket.transport.send(
                p.subscription_error(
                    channel,
                    f"the channel has reached its limit of {app.member_limit} members",
                    4100,
                    "LimitReached",
                )
            )
            return
        if socket.closed:
            # The socket closed meanwhile: its cleanup did not see this subscription.
            await self._leave(socket, channel)
            return
        members: dict[str, str] | None = None
        if member is not None:
            members = await self.channels.members_json(app.id, channel)
            frame = p.presence_succeeded(channel, members)
        else:
            frame = p.subscription_succeeded(channel)
        socket.session.subscribed(channel, member)
        socket.transport.send(frame)
        for message in socket.waiting.pop(channel, []):
            if members is not None:
                # Member events the list already reflects would be told twice.
                added, removed = message.get("ma"), message.get("mr")
                if added is not None and added in members:
                    continue
                if removed is not None and removed not in members:
                    continue
            self._deliver(socket, message)
        if joined.occupied:
            await self.webhooks.append(app.id, [{"name": "channel_occupied", "channel": channel}])
        if joined.added and member is not None:
            await self._publish(
                app,
                channel,
                p.member_added(channel, member.user_id, member.user_info),
                exclude=socket.id,
                added=member.user_id,
            )
            await self.webhooks.append(
                app.id, [{"name": "member_added", "channel": channel, "user_id": member.user_id}]
            )
            await self._sync_room(app, channel, member.user_id)

    async def unsubscribe(self, socket: Socket, channel: str) -> None:
        await self._leave(socket, channel)

    async def _leave(self, socket: Socket, channel: str) -> None:
        app = socket.app
        self._unlocal(socket, channel)
        socket.waiting.pop(channel, None)
        try:
            left = await self.channels.unsubscribe(app.id, channel, socket.id)
        except StoreUnavailable:
            # Retried by the liveness loop: a ghost member must not outlive its socket.
            self._pending_leaves.append((app, channel, socket.id))
            left = None
        if left is not None:
            await self._transitions(app, channel, left)
        if left is not None and left.user_id and left.user_id in socket.hub:
            await self._end_hub(socket, left.user_id)

    async def _transitions(self, app: App, channel: str, left: Left) -> None:
        if not left.removed:
            return
        if left.member_removed:
            await self._publish(
                app, channel, p.member_removed(channel, left.user_id), removed=left.user_id
            )
            await self.webhooks.append(
                app.id, [{"name": "member_removed", "channel": channel, "user_id": left.user_id}]
            )
            await self._sync_room(app, channel, left.user_id)
        if left.vacated:
            await self.webhooks.append(app.id, [{"name": "channel_vacated", "channel": channel}])

    def _unlocal(self, socket: Socket, channel: str) -> None:
        key = (socket.app.id, channel)
        subs = self.local.get(key)
        if subs is not None:
            subs.pop(socket.id, None)
            if not subs:
                del self.local[key]

    # -- one presence truth ------------------------------------------------------------

    async def _begin_hub(self, socket: Socket, member: p.Member) -> None:
        user = member.user_id
        current = socket.hub.get(user)
        if current is not None:
            socket.hub[user] = (current[0], current[1] + 1)
            return
        info = member.user_info if isinstance(member.user_info, dict) else {}
        name = info.get("name")
        profile = Profile(id=user, name=name if isinstance(name, str) else "")
        conn = HubConnection(socket, f"{self.node.id}.pusher.{socket.id}.{user}", profile)
        socket.hub[user] = (conn, 1)
        self.node.connecting.add(conn.conn)
        try:
            await self.node.store.connect(self.node.id, conn.conn, profile, "online")
            self.node.add(conn)
        except StoreUnavailable:
            del socket.hub[user]
            raise
        finally:
            self.node.connecting.discard(conn.conn)

    async def _end_hub(self, socket: Socket, user: str, *, force: bool = False) -> None:
        current = socket.hub.get(user)
        if current is None:
            return
        conn, uses = current
        if uses > 1 and not force:
            socket.hub[user] = (conn, uses - 1)
            return
        del socket.hub[user]
        self.node.remove(conn)
        await self.node.connection_closed(conn)

    async def _sync_room(self, app: App, channel: str, user: str) -> None:
        """Make the hub room agree with the channel's members (whatever order the
        transitions of several nodes reach it in)."""
        rooms = self.node.rooms
        if rooms is None:
            return
        try:
            if await self.channels.has_member(app.id, channel, user):
                await rooms.add_member(room_of(channel), user)
            else:
                await rooms.remove_member(room_of(channel), user)
        except StoreUnavailable:
            log.warning("room %s not updated for %s: store unavailable", channel, user)

    # -- events ------------------------------------------------------------------------

    async def client_event(
        self, socket: Socket, channel: str, event: str, data: Any, user_id: str | None
    ) -> None:
        extra = {"user_id": user_id} if user_id is not None else {}
        frame = p.encode(event, data, channel, **extra)
        await self._publish(socket.app, channel, frame, exclude=socket.id)
        hook: dict[str, Any] = {
            "name": "client_event",
            "channel": channel,
            "event": event,
            "data": data if isinstance(data, str) else p.dumps(data),
            "socket_id": socket.id,
        }
        if user_id is not None:
            hook["user_id"] = user_id
        await self.webhooks.append(socket.app.id, [hook])

    async def trigger(
        self, app: App, channels: list[str], event: str, data: str, exclude: str | None
    ) -> None:
        """An event from the HTTP API, to every subscriber on every node."""
        for channel in channels:
            await self._publish(app, channel, p.encode(event, data, channel), exclude=exclude)

    async def terminate(self, app: App, user: str) -> None:
        await self.bus.publish({"k": "t", "a": app.id, "u": user})

    async def _publish(
        self,
        app: App,
        channel: str,
        frame: str,
        *,
        exclude: str | None = None,
        added: str | None = None,
        removed: str | None = None,
    ) -> None:
        message: dict[str, Any] = {"k": "e", "a": app.id, "c": channel, "f": frame}
        if exclude:
            message["x"] = exclude
        if added is not None:
            message["ma"] = added
        if removed is not None:
            message["mr"] = removed
        try:
            await self.bus.publish(message)
        except StoreUnavailable:
            log.warning("event on %s not published: store unavailable", channel)

    def _deliver(self, socket: Socket, message: dict[str, Any]) -> None:
        if message.get("x") != socket.id:
            socket.transport.send(message["f"])

    async def _consume(self) -> None:
        while True:
            try:
                async for message in self.bus.messages():
                    if message is not None and message.get("k") == "probe":
                        if message.get("n") == self.node.id:
                            self._listening.set()
                    elif message is None:
                        await self._resync()
                    elif message.get("k") == "e":
                        self._dispatch(message)
                    elif message.get("k") == "t":
                        await self._terminate_local(str(message.get("a")), str(message.get("u")))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pusher bus failed; resubscribing")
                await asyncio.sleep(0.5)

    def _dispatch(self, message: dict[str, Any]) -> None:
        subs = self.local.get((str(message.get("a")), str(message.get("c"))))
        if not subs:
            return
        channel = str(message["c"])
        for socket in list(subs.values()):
            waiting = socket.waiting.get(channel)
            if waiting is not None:
                waiting.append(message)
            else:
                self._deliver(socket, message)

    async def _terminate_local(self, app_id: str, user: str) -> None:
        targets = [s for s in self.sockets.values() if s.app.id == app_id and user in s.hub]
        await asyncio.gather(
            *(s.transport.close(p.Close.UNAUTHORIZED, "terminated by the app") for s in targets),
            return_exceptions=True,
        )

    async def _resync(self) -> None:
        """The bus lost messages: every local presence subscriber gets a fresh member list."""
        for (app_id, channel), subs in list(self.local.items()):
            if p.kind(channel) != "presence":
                continue
            try:
                members = await self.channels.members_json(app_id, channel)
            except StoreUnavailable:
                continue
            frame = p.presence_succeeded(channel, members)
            for socket in subs.values():
                if channel not in socket.waiting:
                    socket.transport.send(frame)

    # -- liveness ----------------------------------------------------------------------

    async def _liveness(self) -> None:
        while True:
            started = time.monotonic()
            for app in self.apps:
                try:
                    await self._beat(app)
                except StoreUnavailable:
                    pass
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("pusher liveness step failed")
            await asyncio.sleep(max(0.0, self.settings.sweep_s - (time.monotonic() - started)))

    async def _beat(self, app: App) -> None:
        while self._pending_leaves:
            papp, channel, socket_id = self._pending_leaves[0]
            left = await self.channels.unsubscribe(papp.id, channel, socket_id)
            self._pending_leaves.popleft()
            await self._transitions(papp, channel, left)
        known = await self.channels.heartbeat(app.id, self.node.id, self.settings.node_ttl_ms)
        if not known:
            await self._restore(app)
        for node in await self.channels.expired_nodes(app.id):
            if node != self.node.id:
                await self._reap(app, node)
                await self.channels.forget_node(app.id, node)
                log.info("reaped the pusher subscriptions of node %s", node)

    async def _reap(self, app: App, node: str) -> None:
        for channel, socket_id in await self.channels.node_subscriptions(app.id, node):
            left = await self.channels.unsubscribe(app.id, channel, socket_id)
            await self._transitions(app, channel, left)

    async def _restore(self, app: App) -> None:
        """Our subscriptions were reaped (we were too slow): put them back."""
        restored = 0
        for socket in list(self.sockets.values()):
            if socket.app.id != app.id:
                continue
            for channel, member in list(socket.session.channels.items()):
                user_id = member.user_id if member else ""
                info = p.dumps(member.user_info if member else None)
                joined = await self.channels.subscribe(
                    app.id, channel, socket.id, self.node.id, user_id, info, 2**31
                )
                restored += 1
                if joined.added and member is not None:
                    await self._publish(
                        app,
                        channel,
                        p.member_added(channel, member.user_id, member.user_info),
                        added=member.user_id,
                    )
                    await self._sync_room(app, channel, member.user_id)
        if restored:
            log.warning("pusher subscriptions had been reaped; restored %d", restored)
