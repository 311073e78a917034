"""Rooms across two nodes (tests/backends/rooms_presence.py) on the memory store: one hub
seen twice."""

from tests.backends.rooms_presence import *  # noqa: F403
