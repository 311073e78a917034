"""``presence-hub serve`` with generated keys prints a Pusher app that works as printed."""

from __future__ import annotations

import json
import re

from websockets.asyncio.client import connect

from hub.model.pusher_auth import channel_auth
from tests.support.hubproc import start_hub


async def test_serve_prints_a_ready_development_app(tmp_path):
    hub = start_hub(tmp_path, {"HUB_SECRET": "", "HUB_ADMIN_KEY": ""})
    try:
        log = hub.log()
        found = re.search(r"Pusher app for development: id (\S+), key (\S+), secret (\S+)", log)
        assert found, log
        _, key, secret = found.groups()
        assert f'new Pusher("{key}"' in log and f"wsPort: {hub.port}" in log
        async with connect(f"ws://127.0.0.1:{hub.port}/app/{key}?protocol=7") as ws:
            socket_id = json.loads(json.loads(await ws.recv())["data"])["socket_id"]
            await ws.send(
                json.dumps(
                    {
                        "event": "pusher:subscribe",
                        "data": {
                            "channel": "private-dev",
                            "auth": channel_auth(key, secret, socket_id, "private-dev"),
                        },
                    }
                )
            )
            ok = json.loads(await ws.recv())
            assert ok["event"] == "pusher_internal:subscription_succeeded"
    finally:
        hub.stop()
    # The same app after a restart: it comes from the saved development keys.
    again = start_hub(tmp_path, {"HUB_SECRET": "", "HUB_ADMIN_KEY": ""}, name="again")
    try:
        assert f"key {key}, secret {secret}" in again.log()
    finally:
        again.stop()
