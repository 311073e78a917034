"""tests/backends/compat_iflychat.py on the memory store."""

from tests.backends.compat_iflychat import *  # noqa: F403
