"""tests/backends/compat_agora.py on Redis and Redis Cluster."""

from tests.backends.compat_agora import *  # noqa: F403
