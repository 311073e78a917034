"""The room sdk views suite (tests/backends/rooms_sdk_views.py) on Redis and Redis Cluster."""

from tests.backends.rooms_sdk_views import *  # noqa: F403
