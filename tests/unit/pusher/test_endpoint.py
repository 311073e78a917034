"""``/app/{key}`` with a plain websocket client: the wire shapes, refusals and limits that
pusher-js does not show directly. One hub on the memory store."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hub.model.pusher_auth import channel_auth
from hub.ops.config import Settings
from tests.support.inproc import InProcessHub
from tests.support.pusher import APP_ID, APP_KEY, APP_SECRET, sdk

TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessHub]:
    folder = tmp_path_factory.mktemp("pusher")
    apps = folder / "apps.json"
    apps.write_text(
        json.dumps(
            [
                {"id": APP_ID, "key": APP_KEY, "secret": APP_SECRET, "member_limit": 2},
                {
                    "id": "77",
                    "key": "quiet-key",
                    "secret": "quiet-secret-0123",
                    "client_events": False,
                },
            ]
        )
    )
    process = InProcessHub({"HUB_PUSHER_APPS_FILE": str(apps)}).start()
    try:
        yield process
    finally:
        process.stop()
    process.assert_no_tracebacks()


class Client:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.socket_id = ""

    async def recv(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT_S))
        return frame

    async def until(self, event: str) -> dict[str, Any]:
        while True:
            frame = await self.recv()
            if frame["event"] == event:
                return frame

    async def send(self, event: str, data: Any, channel: str | None = None) -> None:
        frame: dict[str, Any] = {"event": event, "data": data}
        if channel:
            frame["channel"] = channel
        await self.ws.send(json.dumps(frame))

    async def subscribe_presence(self, channel: str, user: str) -> dict[str, Any]:
        data = json.dumps({"user_id": user, "user_info": {"name": user}})
        auth = channel_auth(APP_KEY, APP_SECRET, self.socket_id, channel, data)
        await self.send(
            "pusher:subscribe", {"channel": channel, "auth": auth, "channel_data": data}
        )
        while True:
            frame = await self.recv()
            if frame["event"] in (
                "pusher_internal:subscription_succeeded",
                "pusher:subscription_error",
            ):
                return frame


@pytest.fixture
async def client(hub: InProcessHub) -> AsyncIterator[Any]:
    opened: list[ClientConnection] = []

    async def open_(
        key: str = APP_KEY, query: str = "?protocol=7&client=js&version=8.4.0"
    ) -> Client:
        ws = await connect(f"ws://127.0.0.1:{hub.port}/app/{key}{query}")
        opened.append(ws)
        c = Client(ws)
        return c

    async def ready(key: str = APP_KEY) -> Client:
        c = await open_(key)
        hello = await c.recv()
        assert hello["event"] == "pusher:connection_established"
        c.socket_id = json.loads(hello["data"])["socket_id"]
        return c

    open_.ready = ready  # type: ignore[attr-defined]
    yield open_
    for ws in opened:
        await ws.close()


async def test_connection_established_is_pushers_shape(client):
    c = await client(query="?protocol=6&client=python&version=0.8")
    hello = await c.recv()
    assert hello["event"] == "pusher:connection_established"
    assert isinstance(hello["data"], str)
    data = json.loads(hello["data"])
    assert re.fullmatch(r"\d+\.\d+", data["socket_id"])
    assert data["activity_timeout"] == 120
    await c.send("pusher:ping", {})
    assert (await c.recv())["event"] == "pusher:pong"
    await c.send("pusher:subscribe", {"channel": "plain"})
    ok = await c.recv()
    assert ok == {
        "event": "pusher_internal:subscription_succeeded",
        "channel": "plain",
        "data": "{}",
    }


@pytest.mark.parametrize(
    ("key", "query", "code"),
    [
        ("no-such-key", "?protocol=7", 4001),
        (APP_KEY, "", 4008),
        (APP_KEY, "?protocol=3", 4007),
        (APP_KEY, "?protocol=seven", 4007),
    ],
)
async def test_refusals_use_pushers_close_codes(client, key, query, code):
    c = await client(key, query)
    error = await c.recv()
    assert error["event"] == "pusher:error" and error["data"]["code"] == code
    with pytest.raises(ConnectionClosed):
        await c.recv()
    assert c.ws.close_code == code


async def test_member_limit_refuses_the_next_user_but_not_a_second_tab(client):
    first, tab, second, third = [await client.ready() for _ in range(4)]
    channel = "presence-small"
    assert (await first.subscribe_presence(channel, "u1"))["event"].endswith("succeeded")
    assert (await second.subscribe_presence(channel, "u2"))["event"].endswith("succeeded")
    assert (await tab.subscribe_presence(channel, "u1"))["event"].endswith("succeeded")
    refused = await third.subscribe_presence(channel, "u3")
    assert refused["event"] == "pusher:subscription_error"
    assert refused["data"]["status"] == 4100
    # The refused user holds no place: when u2 leaves, u3 gets in.
    await second.send("pusher:unsubscribe", {"channel": channel})
    joined = await first.until("pusher_internal:member_removed")
    assert json.loads(joined["data"]) == {"user_id": "u2"}
    ok = await third.subscribe_presence(channel, "u3")
    assert json.loads(ok["data"])["presence"]["count"] == 2


async def test_bad_input_from_one_client_harms_nobody_else(client, hub):
    victim = await client.ready()
    await victim.send("pusher:subscribe", {"channel": "shared"})
    await victim.until("pusher_internal:subscription_succeeded")
    rogue = await client.ready()
    for junk in (
        "nope",
        "[]",
        '{"event": 5}',
        json.dumps({"event": "pusher:subscribe"}),
        json.dumps({"event": "pusher:subscribe", "data": {"channel": "a b"}}),
        json.dumps({"event": "client-x", "channel": "shared", "data": {}}),
    ):
        await rogue.ws.send(junk)
        assert (await rogue.recv())["event"] == "pusher:error", junk
    # Leaving a channel it never joined is a no-op; the connection still answers.
    await rogue.send("pusher:unsubscribe", {"channel": "zz"})
    await rogue.send("pusher:ping", {})
    assert (await rogue.recv())["event"] == "pusher:pong"
    quiet = await client.ready("quiet-key")
    data = channel_auth("quiet-key", "quiet-secret-0123", quiet.socket_id, "private-q")
    await quiet.send("pusher:subscribe", {"channel": "private-q", "auth": data})
    await quiet.until("pusher_internal:subscription_succeeded")
    await quiet.send("client-hi", {}, "private-q")
    assert "not enabled" in (await quiet.until("pusher:error"))["data"]["message"]
    # One byte over the hub's frame limit (HUB_MAX_FRAME_BYTES, shared with /ws).
    await rogue.ws.send("x" * (Settings().max_frame_bytes + 1))
    with pytest.raises(ConnectionClosed):
        await rogue.until("never")
    assert rogue.ws.close_code == 1009
    client_sdk = sdk(hub.port)
    client_sdk.trigger("shared", "still-here", {"ok": True})
    got = await victim.until("still-here")
    assert json.loads(got["data"]) == {"ok": True}
