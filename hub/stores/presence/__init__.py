"""Stores: where presence lives. ``open_store(settings)`` picks the backend from its URL."""

from __future__ import annotations

from hub.ops.config import ConfigError, Settings
from hub.stores.presence.base import PresenceStore, StoreUnavailable

__all__ = ["PresenceStore", "StoreUnavailable", "open_store"]


def open_store(settings: Settings) -> PresenceStore:
    """``memory://`` (default), ``redis://`` / ``rediss://`` / ``unix://``, or
    ``redis+cluster://host:port[,host:port...]``."""
    url = settings.store
    if url.startswith("memory://"):
        from hub.stores.presence.memory import MemoryStore

        return MemoryStore(
            window_ms=settings.window_ms,
            grace_ms=settings.grace_ms,
            show_last_seen=settings.last_seen == "everyone",
        )
    if url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
        from hub.stores.presence.redis import RedisStore

        store: PresenceStore = RedisStore.from_settings(settings)
        return store
    raise ConfigError(
        f"HUB_STORE must start with memory://, redis://, rediss://, unix:// or "
        f"redis+cluster://, got {url!r}"
    )
