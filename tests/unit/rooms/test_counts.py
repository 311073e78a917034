"""The room counts suite (tests/backends/rooms_counts.py) on the memory store."""

from tests.backends.rooms_counts import *  # noqa: F403
