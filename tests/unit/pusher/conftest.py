"""Shared fixtures of the Pusher tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.pusher import close_sdks


@pytest.fixture(autouse=True)
def _close_sdk_sessions() -> Iterator[None]:
    """PyPI's SDK keeps a requests session per client: closed after each test."""
    yield
    close_sdks()
