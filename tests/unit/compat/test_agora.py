"""tests/backends/compat_agora.py on the memory store."""

from tests.backends.compat_agora import *  # noqa: F403
