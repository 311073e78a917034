"""The room watchlists suite (tests/backends/rooms_watchlists.py) on Redis and Redis Cluster."""

from tests.backends.rooms_watchlists import *  # noqa: F403
