"""The app's ASGI ``/ws`` under stock uvicorn (not ``presence-hub serve``'s engine) keeps
the same rules, because both drive the one pure session."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import websockets
from websockets.asyncio.client import connect

from tests.support.hubproc import user_token
from tests.support.inproc import InProcessHub


@pytest.fixture(scope="module")
def asgi_url() -> Iterator[str]:
    hub = InProcessHub(asgi_ws="websockets-sansio").start()
    try:
        yield hub.ws_url
    finally:
        hub.stop()
    hub.assert_no_tracebacks()


async def test_asgi_ws_answers_as_the_engine_does(asgi_url: str):
    """hello -> ready; sub -> snapshot + ack; a bad op and an unknown unsub are errors with
    their refs; ping -> pong."""
    user = f"asgi-{uuid.uuid4().hex[:6]}"
    async with connect(asgi_url) as ws:
        await ws.send(json.dumps({"op": "hello", "token": user_token(user)}))
        assert json.loads(await ws.recv())["op"] == "ready"
        await ws.send(json.dumps({"op": "sub", "users": [user], "ref": 1}))
        snap = json.loads(await ws.recv())
        assert snap["op"] == "snapshot" and [u["id"] for u in snap["users"]] == [user]
        assert json.loads(await ws.recv()) == {"op": "ack", "ref": 1}
        await ws.send(json.dumps({"op": "dance", "ref": 2}))
        err = json.loads(await ws.recv())
        assert err["code"] == "unknown_op" and err["ref"] == 2
        await ws.send(json.dumps({"op": "unsub", "all": True, "ref": 3}))
        err = json.loads(await ws.recv())
        assert err["code"] == "not_subscribed" and err["ref"] == 3
        await ws.send(json.dumps({"op": "ping", "ref": 4}))
        assert json.loads(await ws.recv()) == {"op": "pong", "ref": 4}


async def test_asgi_ws_closes_4001_when_the_first_frame_is_not_hello(asgi_url: str):
    """The hello-first rule holds on the ASGI path too."""
    async with connect(asgi_url) as ws:
        await ws.send(json.dumps({"op": "sub", "all": True}))
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4001
        assert ws.close_reason == "the first frame must be hello with a token"
