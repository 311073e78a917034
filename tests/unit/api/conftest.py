"""Fixtures the REST tests share; each module brings its own ``hub`` (its settings)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.hubproc import user_token
from tests.support.inproc import Hub
from tests.support.wsclient import WsClient, connect_user


@pytest.fixture
async def http(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the module's hub (no proxy from the environment)."""
    async with httpx.AsyncClient(base_url=hub.url, timeout=10, trust_env=False) as client:
        yield client


@pytest.fixture
async def watcher(hub: Hub) -> AsyncIterator[WsClient]:
    """A socket subscribed to everyone: the tests' view of each change and its ``at``."""
    user = f"watcher-{uuid.uuid4().hex[:8]}"
    client = await connect_user(hub.ws_url, user_token(user), subscribe=True)
    try:
        yield client
    finally:
        await client.close()
