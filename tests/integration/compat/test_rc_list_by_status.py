"""tests/backends/compat_rc_list_by_status.py on Redis and Redis Cluster."""

from tests.backends.compat_rc_list_by_status import *  # noqa: F403
