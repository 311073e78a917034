"""The registry fixtures (tests/backends/registry.py) for this tier's backends."""

from tests.backends.registry import *  # noqa: F403
