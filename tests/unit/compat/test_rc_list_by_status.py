"""tests/backends/compat_rc_list_by_status.py on the memory store."""

from tests.backends.compat_rc_list_by_status import *  # noqa: F403
