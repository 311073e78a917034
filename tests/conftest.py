"""The test tiers, and the fixtures shared by every suite.

A test's tier is the directory it lives in, set here and nowhere else: ``tests/unit`` (no
subprocess, Redis, Chromium or Node: ``scripts/test --fast``), ``tests/integration`` (a real
Redis, servers in this process) and ``tests/system`` (hub processes, nginx, Chromium, the
npm clients). Each test gets its tier as a marker (``-m unit``). A suite that runs on every
store backend lives once in ``tests/backends/`` and is collected by a module in each tier
that runs it; the ``backend_name`` it asks for is parametrized here with that tier's
backends, so its memory half is a unit test and its Redis halves integration tests.

Redis in tests is a real ``redis-server`` (never an in-process imitation), started from
PATH on a free port once per session; a missing binary fails the run. Tests isolate
themselves with a fresh key prefix and channel (:func:`key_prefix`) instead of flushing, so
a session server can be shared. The three-master cluster starts only when a test asks
for ``cluster_url``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import ClusterServers, RedisServer, start_cluster, start_server

TESTS = Path(__file__).parent
TIERS = ("unit", "integration", "system")
#: The store backends a backend suite runs on, per tier (with the marks each one needs).
TIER_BACKENDS = {
    "unit": [pytest.param("memory", id="memory")],
    "integration": [
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
        pytest.param("redis-cluster", id="redis-cluster",
                     marks=[pytest.mark.redis, pytest.mark.cluster]),
    ],
}  # fmt: skip


def tier_of(path: Path) -> str:
    """``unit``, ``integration`` or ``system``: the tier directory ``path`` is under. A test
    outside them counts as ``system``, so ``--fast`` never runs something it cannot vouch for."""
    parts = path.resolve().relative_to(TESTS).parts
    return parts[0] if parts and parts[0] in TIERS else "system"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_name" in metafunc.fixturenames:
        backends = TIER_BACKENDS.get(tier_of(metafunc.definition.path))
        if backends is None:
            raise pytest.UsageError(
                f"{metafunc.definition.nodeid}: a backend suite runs from tests/unit or "
                "tests/integration (tests/conftest.py TIER_BACKENDS)"
            )
        # Module scope: a module's tests run backend by backend, so a module-scoped hub on
        # one backend is started once.
        metafunc.parametrize("backend_name", backends, scope="module")


#: Fixtures that start or reach a redis-server: never in the unit tier.
REDIS_FIXTURES = {"redis_server", "redis_url", "redis_cluster", "cluster_url"}


def fixturenames(item: pytest.Item) -> set[str]:
    return set(getattr(item, "fixturenames", ()))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item.path)
        item.add_marker(tier)
        wants = REDIS_FIXTURES & fixturenames(item)
        if tier == "unit" and wants:
            raise pytest.UsageError(f"{item.nodeid} is in tests/unit but asks for {wants}")
        # A backend suite's test runs once per tier's backends; one that ignores the backend
        # would run in every tier, the same test twice.
        module = getattr(getattr(item, "function", None), "__module__", "")
        if module.startswith("tests.backends.") and "backend_name" not in fixturenames(item):
            raise pytest.UsageError(f"{item.nodeid} comes from {module} but runs on no backend")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One standalone redis-server for the whole session."""
    server = start_server()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[ClusterServers]:
    """A three-master Redis Cluster for the whole session, started on first use."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(scope="session")
def cluster_url(redis_cluster: ClusterServers) -> str:
    """``redis+cluster://host:port,host:port,host:port``."""
    return redis_cluster.url


@pytest.fixture
def key_prefix() -> str:
    """A key prefix (and channel stem) no other test uses: isolation without FLUSHDB."""
    return f"t{uuid.uuid4().hex[:12]}:"
