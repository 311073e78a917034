"""A draining hub answers a new websocket handshake with HTTP 503 and ``Retry-After``
before any upgrade, on ``/ws`` (the hub's engine, and the app's ASGI path under stock
uvicorn) and on the Pusher endpoint ``/app/{key}``: a proxy can still move the client to a
live hub, which a 1012 after the upgrade no longer allows.

Each hub is served in process and drained as SIGTERM drains it (``Node.drain``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import websockets
from websockets.asyncio.client import connect

from hub.node.node import DRAIN_RETRY_AFTER_S
from tests.support.inproc import InProcessHub
from tests.support.pusher import APP_KEY, APPS_ENV


@pytest.fixture(params=["engine", "asgi"])
def draining(request: pytest.FixtureRequest) -> Iterator[InProcessHub]:
    """A hub with a Pusher app, served by the hub's engine or by stock uvicorn's websockets,
    whose node is draining."""
    asgi_ws = "websockets-sansio" if request.param == "asgi" else None
    hub = InProcessHub({"HUB_PUSHER_APPS": APPS_ENV}, asgi_ws=asgi_ws).start()
    try:
        hub.call(hub.node.drain)
        yield hub
    finally:
        hub.stop()
    hub.assert_no_tracebacks()


@pytest.mark.parametrize("path", ["/ws", f"/app/{APP_KEY}?protocol=7"])
async def test_a_draining_hub_answers_the_handshake_503_with_retry_after(
    draining: InProcessHub, path: str
) -> None:
    """The handshake gets 503 and Retry-After, never a 101 followed by a close."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{draining.port}{path}", open_timeout=10):
            pass
    response = refused.value.response
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(DRAIN_RETRY_AFTER_S)
