"""Room input and caps (tests/backends/rooms_limits.py) on Redis and Redis Cluster."""

from tests.backends.rooms_limits import *  # noqa: F403
