"""The registry contract for users (tests/backends/registry_users.py) on the memory store."""

from tests.backends.registry_users import *  # noqa: F403
