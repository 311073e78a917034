"""10,000 members in one presence channel (the default limit; Pusher's is 100).

9,999 members join through the hub's channel state (the same atomic subscribe a socket's
subscription runs), the 10,000th with a real websocket: its subscription_succeeded lists
all of them; one more user is refused with Pusher's 4100 status, while a second tab of a
member still gets in. Timings and sizes are measured by bench/pusher_presence.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from hub.model.pusher_auth import channel_auth
from hub.ops.apps import DEFAULT_MEMBER_LIMIT
from hub.stores.channels.redis import RedisChannels
from tests.support.inproc import InProcessHub
from tests.support.pusher import APP_ID, APP_KEY, APP_SECRET, APPS_ENV

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def hub(redis_url: str, prefix: str) -> Iterator[InProcessHub]:
    process = InProcessHub(
        {
            "HUB_STORE": redis_url,
            "HUB_KEY_PREFIX": prefix,
            "HUB_CHANNEL": f"{prefix}presence",
            "HUB_PUSHER_APPS": APPS_ENV,
        },
    ).start()
    try:
        yield process
    finally:
        process.stop()
    process.assert_no_tracebacks()


async def _subscribe(ws: ClientConnection, channel: str, user: str) -> dict[str, Any]:
    socket_id = json.loads(json.loads(await ws.recv())["data"])["socket_id"]
    data = json.dumps({"user_id": user, "user_info": {"name": user}})
    await ws.send(
        json.dumps(
            {
                "event": "pusher:subscribe",
                "data": {
                    "channel": channel,
                    "channel_data": data,
                    "auth": channel_auth(APP_KEY, APP_SECRET, socket_id, channel, data),
                },
            }
        )
    )
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if frame["event"] in (
            "pusher_internal:subscription_succeeded",
            "pusher:subscription_error",
        ):
            return frame


async def test_ten_thousand_members(hub, redis_url, prefix):
    assert DEFAULT_MEMBER_LIMIT >= 10_000
    channel = "presence-stadium"
    state = RedisChannels(redis_url, prefix, f"{prefix}fill")
    await state.start()
    try:
        for start in range(0, 9_999, 500):
            await asyncio.gather(
                *(
                    state.subscribe(
                        APP_ID,
                        channel,
                        f"9.{n}",
                        "filler",
                        f"fan-{n}",
                        json.dumps({"n": n}),
                        DEFAULT_MEMBER_LIMIT,
                    )
                    for n in range(start, min(9_999, start + 500))
                )
            )
    finally:
        await state.close()
    url = f"ws://127.0.0.1:{hub.port}/app/{APP_KEY}?protocol=7"
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connect(url, max_size=2**24)) for _ in range(3)]
        ok = await _subscribe(sockets[0], channel, "last-fan")
        assert ok["event"] == "pusher_internal:subscription_succeeded"
        presence = json.loads(ok["data"])["presence"]
        assert presence["count"] == 10_000 == len(presence["ids"]) == len(presence["hash"])
        assert presence["hash"]["fan-1234"] == {"n": 1234}
        assert "last-fan" in presence["ids"]
        # Full: a second tab of a member gets in, a new user does not.
        tab = await _subscribe(sockets[1], channel, "fan-0")
        assert tab["event"] == "pusher_internal:subscription_succeeded"
        refused = await _subscribe(sockets[2], channel, "one-too-many")
        assert refused["event"] == "pusher:subscription_error", refused
        assert refused["data"]["status"] == 4100
