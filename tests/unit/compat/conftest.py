"""The compatibility API fixtures (tests/backends/compat.py) for this tier's store."""

from tests.backends.compat import *  # noqa: F403
