"""The room counts suite (tests/backends/rooms_counts.py) on Redis and Redis Cluster."""

from tests.backends.rooms_counts import *  # noqa: F403
