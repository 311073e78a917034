"""The room sdk views suite (tests/backends/rooms_sdk_views.py) on the memory store."""

from tests.backends.rooms_sdk_views import *  # noqa: F403
