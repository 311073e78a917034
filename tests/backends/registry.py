"""Registry fixtures on every backend: memory, a real Redis, a real Redis Cluster.

Each test owns a fresh key prefix and channel (``key_prefix``), so the session servers
are shared without flushing. ``make_registry`` may be called twice to get two "nodes" on
the same backend (two Redis clients, or one shared memory registry). The tier directories'
conftest modules bring these fixtures to tests/backends/registry_*.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hub.ops.config import Settings
from hub.stores.registry import Registry, open_registry

RegistryFactory = Callable[..., Awaitable[Registry]]


@pytest.fixture
def backend_url(request: pytest.FixtureRequest, backend_name: str) -> str:
    """The store URL of this run's backend (``backend_name`` comes from the tier)."""
    name = backend_name
    if name == "memory":
        return "memory://"
    fixture = "redis_url" if name == "redis" else "cluster_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def make_registry(backend_url: str, key_prefix: str) -> AsyncIterator[RegistryFactory]:
    """Registries on the backend sharing one prefix, as hub nodes share one Redis."""
    made: list[Registry] = []
    shared: Registry | None = None

    async def make(*, window_ms: int = 600_000) -> Registry:
        nonlocal shared
        if backend_url.startswith("memory://") and shared is not None:
            return shared
        settings = Settings(
            store=backend_url,
            key_prefix=key_prefix,
            channel=f"{key_prefix}presence",
            window_s=window_ms / 1000,
        )
        registry = open_registry(settings)
        await registry.start()
        made.append(registry)
        shared = registry
        return registry

    yield make
    for registry in made:
        await registry.close()


@pytest.fixture
async def registry(make_registry: RegistryFactory) -> Registry:
    return await make_registry()
