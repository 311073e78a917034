"""tests/backends/compat_iflychat.py on Redis and Redis Cluster."""

from tests.backends.compat_iflychat import *  # noqa: F403
