"""The channel state contract (tests/backends/pusher_channels.py) on the memory store."""

from tests.backends.pusher_channels import *  # noqa: F403
