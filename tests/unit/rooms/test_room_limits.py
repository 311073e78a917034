"""Room input and caps (tests/backends/rooms_limits.py) on the memory store."""

from tests.backends.rooms_limits import *  # noqa: F403
