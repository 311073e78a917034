"""The room fixtures (tests/backends/rooms.py) for this tier's store."""

from tests.backends.rooms import *  # noqa: F403
