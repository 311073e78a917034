"""The room index contract (tests/backends/presence_rooms.py) on Redis and Redis Cluster."""

from tests.backends.presence_rooms import *  # noqa: F403
