"""Pusher channel state across every hub node, and the feed that carries channel events.

``open_channels(settings)`` picks the backend from the store URL: in memory for
``memory://``, else Redis (or Redis Cluster) beside the presence store.
"""

from __future__ import annotations

from hub.ops.config import Settings
from hub.stores.channels.base import ChannelStore


def open_channels(settings: Settings) -> ChannelStore:
    if settings.store.startswith("memory://"):
        from hub.stores.channels.memory import MemoryChannels

        return MemoryChannels()
    from hub.stores.channels.redis import RedisChannels

    return RedisChannels(settings.store, settings.key_prefix, f"{settings.channel}:pusher")
