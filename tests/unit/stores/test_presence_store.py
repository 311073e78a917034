"""The store contract (tests/backends/presence_store.py) on the memory store."""

from tests.backends.presence_store import *  # noqa: F403
