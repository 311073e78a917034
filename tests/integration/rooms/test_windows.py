"""The room windows suite (tests/backends/rooms_windows.py) on Redis and Redis Cluster."""

from tests.backends.rooms_windows import *  # noqa: F403
