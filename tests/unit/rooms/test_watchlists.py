"""The room watchlists suite (tests/backends/rooms_watchlists.py) on the memory store."""

from tests.backends.rooms_watchlists import *  # noqa: F403
