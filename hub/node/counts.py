"""Subscription counts of Pusher channels: told to this node's subscribers once a tick.

With an app's ``subscription_count`` option, every subscribe and unsubscribe of a public or
private channel publishes the channel's count on the channel feed, in the same atomic step
as the change (:mod:`hub.stores.channels.base`), so every node hears the counts in the
order they happened and the last one heard is the current one, across every hub. This
keeps that last count per channel with subscribers here and, at most once a tick, sends
``pusher_internal:subscription_count`` to each subscriber that was not told it yet (one
frame object for all of them). A new subscriber is told at the next tick.

The node that made a change also reports it as a ``subscription_count`` webhook, the
newest count of its own changes once a tick per channel (the webhooks take Pusher's
batching from there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from hub.session.driver import Driver
from hub.wire import pusher as p

Key = tuple[str, str]  # (app id, channel)


class Subscriber(Protocol):
    """A socket as the counts see it."""

    @property
    def driver(self) -> Driver: ...

    @property
    def waiting(self) -> Mapping[str, Any]:
        """Channels whose subscription is still in flight."""

    @property
    def counts(self) -> dict[str, int]:
        """Channel -> the count it was last told."""


class SubscriptionCounts:
    """The counts of the channels this node's sockets subscribe to."""

    def __init__(
        self,
        tick_s: float,
        subscribers: Callable[[Key], Mapping[str, Subscriber] | None],
        report: Callable[[str, str, int], None],
    ) -> None:
        self.tick_s = tick_s
        self.subscribers = subscribers
        #: Called with (app id, channel, count) for this node's own changes, once a tick.
        self.report = report
        self.latest: dict[Key, int] = {}
        self.dirty: set[Key] = set()
        self.made: dict[Key, int] = {}
        self._timer: asyncio.TimerHandle | None = None

    def heard(self, key: Key, count: int) -> None:
        """A count from the feed."""
        if self.subscribers(key):
            self.latest[key] = count
            self.dirty.add(key)
            self._schedule()

    def joined(self, key: Key) -> None:
        """A subscription completed here: tell it the count at the next tick."""
        self.dirty.add(key)
        self._schedule()

    def changed(self, key: Key, count: int) -> None:
        """This node made the change (a subscribe, leave or reap): report it."""
        self.made[key] = count
        self._schedule()

    def forget(self, key: Key) -> None:
        """No subscriber of the channel is left here."""
        self.latest.pop(key, None)
        self.dirty.discard(key)

    def _schedule(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.tick_s, self.flush)

    def flush(self) -> None:
        self._timer = None
        dirty, self.dirty = self.dirty, set()
        for key in dirty:
            count = self.latest.get(key)
            subs = self.subscribers(key)
            if count is None or not subs:
                continue
            channel = key[1]
            frame: str | None = None
            for sock in subs.values():
                if channel in sock.waiting or sock.counts.get(channel) == count:
                    continue
                if frame is None:
                    frame = p.subscription_count(channel, count)
                sock.counts[channel] = count
                sock.driver.deliver(frame)
        made, self.made = self.made, {}
        for (app, channel), count in made.items():
            self.report(app, channel, count)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
