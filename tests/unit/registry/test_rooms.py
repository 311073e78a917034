"""The registry contract for rooms (tests/backends/registry_rooms.py) on the memory store."""

from tests.backends.registry_rooms import *  # noqa: F403
