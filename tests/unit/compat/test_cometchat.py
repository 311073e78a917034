"""tests/backends/compat_cometchat.py on the memory store."""

from tests.backends.compat_cometchat import *  # noqa: F403
