"""The registry: users (accounts) and rooms. ``open_registry(settings)`` picks the backend
that matches the presence store's URL."""

from __future__ import annotations

from hub.ops.config import Settings
from hub.stores.registry.base import Registry

__all__ = ["Registry", "open_registry"]


def open_registry(settings: Settings) -> Registry:
    """In memory beside ``memory://``, in the same Redis (or Cluster) otherwise."""
    if settings.store.startswith("memory://"):
        from hub.stores.registry.memory import MemoryRegistry

        return MemoryRegistry(window_ms=settings.window_ms)
    from hub.stores.registry.redis import RedisRegistry

    registry: Registry = RedisRegistry.from_settings(settings)
    return registry
