"""Shared fixtures of the Pusher tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pusher import Driver, Helper, close_sdks, helper


@pytest.fixture(autouse=True)
def _close_sdk_sessions() -> Iterator[None]:
    """PyPI's SDK keeps a requests session per client: closed after each test."""
    yield
    close_sdks()


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    """The Node process that drives pusher-js, Laravel Echo and the npm SDK."""
    d = Driver(tmp_path / "driver.log")
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def hooks() -> Iterator[Helper]:
    """The app's auth endpoints and webhook receiver (the hub port is not needed)."""
    with helper(0) as server:
        yield server
