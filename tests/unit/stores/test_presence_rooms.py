"""The room index contract (tests/backends/presence_rooms.py) on the memory store."""

from tests.backends.presence_rooms import *  # noqa: F403
