"""Fixtures shared by every suite.

Redis in tests is a real ``redis-server`` (never an in-process imitation), started from
PATH on a free port once per session; a missing binary fails the run. Tests isolate
themselves with a fresh key prefix and channel (:func:`key_prefix`) instead of flushing, so
a session server can be shared. The three-master cluster starts only when a test asks
for ``cluster_url``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.redis_server import ClusterServers, RedisServer, start_cluster, start_server


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
