"""Hubs for the compatibility API tests, and helpers to talk to them.

The hubs are served in process (tests/support/inproc.py), on the memory store in the unit
tier and on the session Redis (or Cluster) in the integration tier: ``backend_name`` comes
from the tier (tests/conftest.py), and each tier's conftest brings these fixtures to the
suites in tests/backends/compat_*.py. One hub serves a whole test module (``hub``);
tests keep out of each other's way with unique user names (:func:`uid`) and filters. A
test that needs an empty hub (listing or deleting "the oldest users") asks for
``fresh_hub``. Users get roles, tags and a type the way an app gives them: claims in the
token of their first connection.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.support import eventually
from tests.support.hubproc import ADMIN_HEADERS, user_token
from tests.support.inproc import InProcessHub
from tests.support.wsclient import WsClient, connect_user

#: A grace of 0: a user whose socket closes is offline at once (no waiting in tests).
HUB_ENV = {"HUB_OFFLINE_GRACE_S": "0"}


def uid(label: str = "u") -> str:
    """A user name no other test uses (lowercase letters, digits and -, Agora-valid)."""
    return f"{label}-{uuid.uuid4().hex[:10]}"


def _run(env: dict[str, str]) -> Iterator[InProcessHub]:
    hub = InProcessHub({**HUB_ENV, **env}).start()
    try:
        yield hub
    finally:
        hub.stop()
    hub.assert_no_tracebacks()


def _store_env(request: pytest.FixtureRequest, backend_name: str) -> dict[str, str]:
    """The hub's store: memory, or the session Redis (or Cluster) under a prefix of its own."""
    if backend_name == "memory":
        return {}
    fixture = "redis_url" if backend_name == "redis" else "cluster_url"
    redis_url: str = request.getfixturevalue(fixture)
    prefix = f"c{uuid.uuid4().hex[:10]}:"
    return {"HUB_STORE": redis_url, "HUB_KEY_PREFIX": prefix, "HUB_CHANNEL": f"{prefix}p"}


@pytest.fixture(scope="module")
def hub(request: pytest.FixtureRequest, backend_name: str) -> Iterator[InProcessHub]:
    """One hub for the module, on this tier's store."""
    yield from _run(_store_env(request, backend_name))


@pytest.fixture
def fresh_hub(request: pytest.FixtureRequest, backend_name: str) -> Iterator[InProcessHub]:
    """A hub of this test alone (no users yet), on this tier's store."""
    yield from _run(_store_env(request, backend_name))


@pytest.fixture
async def http(hub: InProcessHub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=10.0) as client:
        yield client


@pytest.fixture
async def sockets() -> AsyncIterator[list[WsClient]]:
    """Websocket clients a test opened, closed at its end."""
    opened: list[WsClient] = []
    yield opened
    for client in opened:
        await client.close()


async def connect(hub: InProcessHub, sockets: list[WsClient], user: str, **claims: Any) -> WsClient:
    """Connect ``user`` (registered from its token's claims on first connect)."""
    client = await connect_user(hub.ws_url, user_token(user, **claims))
    sockets.append(client)
    return client


async def wait_offline(http: httpx.AsyncClient, user: str) -> None:
    """Poll until the hub reports ``user`` offline (its socket's close was handled)."""

    async def offline() -> bool:
        response = await http.get(f"/o/a/users/{user}/status", headers=ADMIN_HEADERS)
        return bool(response.json().get("data") == {user: "offline"})

    await eventually(offline)
