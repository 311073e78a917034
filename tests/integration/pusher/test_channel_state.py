"""The channel state contract (tests/backends/pusher_channels.py) on Redis and Redis Cluster."""

from tests.backends.pusher_channels import *  # noqa: F403
