"""The room windows suite (tests/backends/rooms_windows.py) on the memory store."""

from tests.backends.rooms_windows import *  # noqa: F403
