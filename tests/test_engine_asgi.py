"""The app's ASGI ``/ws`` under stock uvicorn (not ``presence-hub serve``'s engine) keeps
the same rules, because both drive the one pure session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.support.hubproc import TEST_ADMIN_KEY, TEST_SECRET, free_port, user_token

SERVE = (
    "import uvicorn\n"
    "from hub.ops.app import create_app\n"
    "from hub.ops.config import Settings\n"
    "s = Settings.from_env()\n"
    "uvicorn.run(create_app(s), host='127.0.0.1', port=s.port, ws='websockets-sansio',"
    " lifespan='on', log_level='warning')\n"
)


@pytest.fixture(scope="module")
def asgi_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    tmp = tmp_path_factory.mktemp("asgi")
    env = {**os.environ, "HUB_SECRET": TEST_SECRET, "HUB_ADMIN_KEY": TEST_ADMIN_KEY,
           "HUB_PORT": str(port), "HUB_STORE": "memory://", "XDG_STATE_HOME": str(tmp)}  # fmt: skip
    env.pop("PORT", None)
    log = (tmp / "uvicorn.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", SERVE], env=env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, Path(tmp / "uvicorn.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "uvicorn not ready in 20 s"
            time.sleep(0.05)  # a poll interval, not a synchronisation: the loop has a deadline
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


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
