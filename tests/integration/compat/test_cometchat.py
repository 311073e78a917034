"""tests/backends/compat_cometchat.py on Redis and Redis Cluster."""

from tests.backends.compat_cometchat import *  # noqa: F403
