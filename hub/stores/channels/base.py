"""The channel store contract: Pusher channel state across every hub node.

A channel store holds, per app and channel, which sockets (on which node) are subscribed
and, on presence channels, each member's connection count and ``user_info``. Each
subscribe and unsubscribe is one atomic step that reports the transitions it made (first
subscriber, a user's first or last connection, last subscriber), so exactly one node (the
one that made it) acts on each, however many nodes there are.

**Transitions and their webhook events are one step.** A store that records hooks (Redis)
appends ``channel_occupied``, ``member_added``, ``member_removed`` and ``channel_vacated``
to the app's webhook stream in the same script as the transition.

**Member events are ordered by a version.** Every app has one counter; each change of a
channel's members increments it, and the same atomic step publishes the change
(:class:`MemberChange`) on the feed with that version. A member list is read together with
the counter (:meth:`ChannelStore.members`). So a subscriber's ``subscription_succeeded``
(the list at version ``W``) and the member events it receives after it are one
consistent sequence: events at or below ``W`` are already in the list, events above it are
not; no member twice, none missed, on one node or many.

The store also carries the channel feed: events to deliver (:class:`ChannelEvent`, from
the HTTP API or client events), member changes, subscription counts and the termination of
a user's connections, to every node (Redis pub/sub; in-process on ``memory://``).

**Subscription counts are ordered like member events.** A subscribe or unsubscribe asked
to count (the app's ``subscription_count`` option) publishes the channel's new number of
subscriptions (:class:`CountChange`) in the same atomic step, so every node hears the
counts in the order they happened and the last one it heard is the current one.

**Cache channels** keep their last event (:meth:`ChannelStore.cache_put`, with a time to
live) for new subscribers; a read that finds none says whether it is the first miss of a
short window (:meth:`ChannelStore.cache_get`), so one ``cache_miss`` webhook goes out for
a burst of subscribers, whichever nodes they are on.

Nodes heartbeat per app; any node reaps the subscriptions of a node whose heartbeat
expired, one unsubscribe at a time, and as each is idempotent only one reaper acts on each
transition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Joined:
    status: int  # 1 subscribed, 0 already was, -1 over the member limit
    occupied: bool
    added: bool
    #: The app's member version after this step (a member list at this version or later
    #: holds this subscription's member).
    version: int = 0
    #: The channel's subscriptions after this step, on every node.
    subscriptions: int = 0


@dataclass(frozen=True, slots=True)
class Left:
    removed: bool
    user_id: str
    member_removed: bool
    vacated: bool
    version: int = 0
    subscriptions: int = 0


NOT_SUBSCRIBED = Left(False, "", False, False)


@dataclass(frozen=True, slots=True)
class Members:
    """A presence channel's members at one version: user id -> ``user_info`` JSON text."""

    version: int
    info: dict[str, str]


@dataclass(frozen=True, slots=True)
class Cached:
    """What a cache channel holds: its last event (``frame``, None when there is none, and
    the ``event_id`` it was published with); on a miss, whether this read is the first of
    the miss window (it alone reports the miss)."""

    frame: str | None
    event_id: str = ""
    first_miss: bool = False


@dataclass(slots=True)
class ChannelEvent:
    """An event for a channel's subscribers (``frame``: the Pusher frame, JSON text),
    except the socket ``exclude``; ``cache_id`` names it on a cache channel (a subscriber
    given it from the cache does not get it twice)."""

    app: str
    channel: str
    frame: str
    exclude: str = ""
    cache_id: str = ""


@dataclass(slots=True)
class MemberChange:
    """A presence channel's member added (``info``: its ``user_info`` JSON text) or removed
    (``info`` None), at ``version``; not told to the socket ``exclude`` (the joiner)."""

    app: str
    channel: str
    version: int
    user_id: str
    info: str | None
    exclude: str = ""
    #: The Pusher frame, made once per node by whoever delivers it first.
    frame: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class CountChange:
    """A channel's number of subscriptions, on every node, after a change."""

    app: str
    channel: str
    count: int


@dataclass(frozen=True, slots=True)
class Terminate:
    """Close every socket of ``user`` in ``app`` on every node."""

    app: str
    user: str


@dataclass(frozen=True, slots=True)
class Probe:
    """Published by a node to learn that its own feed is live (it hears it back)."""

    node: str


@dataclass(frozen=True, slots=True)
class ChannelGap:
    """The channel feed lost events: every presence subscriber needs a fresh list."""


ChannelFeedEvent = ChannelEvent | MemberChange | CountChange | Terminate | Probe | ChannelGap


class ChannelStore(Protocol):
    """Pusher channel state; ``node`` and ``socket`` ids are opaque strings."""

    @property
    def records_hooks(self) -> bool:
        """True when subscribe and unsubscribe append their transitions' webhook events
        themselves, in the same step (``hooks_ms`` > 0: kept that long); else the caller
        records them."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(
        self,
        app: str,
        channel: str,
        socket: str,
        node: str,
        user_id: str,
        user_info: str,
        limit: int,
        hooks_ms: int = 0,
        counts: bool = False,
    ) -> Joined:
        """Subscribe ``socket``; on a presence channel (``user_id`` given) a user's first
        connection is a member added, published at a new version. With ``counts``, a new
        subscription publishes the channel's count."""

    async def unsubscribe(
        self, app: str, channel: str, socket: str, hooks_ms: int = 0, counts: bool = False
    ) -> Left:
        """Unsubscribe ``socket`` (idempotent); a user's last connection is a member
        removed, published at a new version. With ``counts``, a removed subscription
        publishes the channel's count."""

    async def members(self, app: str, channel: str) -> Members:
        """The members of a presence channel and the version they are at, in one step."""

    async def member_count(self, app: str, channel: str) -> int: ...

    async def has_member(self, app: str, channel: str, user_id: str) -> bool: ...

    async def subscription_count(self, app: str, channel: str) -> int: ...

    async def occupied(self, app: str) -> list[str]: ...

    async def heartbeat(self, app: str, node: str, ttl_ms: int) -> bool:
        """False when the app did not list the node (new, or reaped)."""

    async def expired_nodes(self, app: str) -> list[str]: ...

    async def node_subscriptions(self, app: str, node: str) -> list[tuple[str, str]]:
        """(channel, socket id) of every subscription the node holds."""

    async def forget_node(self, app: str, node: str) -> None: ...

    async def cache_put(
        self, app: str, channel: str, event_id: str, frame: str, ttl_ms: int
    ) -> None:
        """Keep ``frame`` as the channel's last event for ``ttl_ms``; a miss window ends."""

    async def cache_get(self, app: str, channel: str, miss_ms: int) -> Cached:
        """The channel's last event; on a miss, the first read opens a window of
        ``miss_ms`` in which later misses are not first."""

    async def publish(self, event: ChannelEvent | Terminate | Probe) -> None:
        """Send an event to every node's feed."""

    def events(self) -> AsyncIterator[ChannelFeedEvent]:
        """This node's channel feed; a :class:`ChannelGap` after lost events."""
        ...
